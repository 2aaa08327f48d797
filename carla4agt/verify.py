"""``carla4agt verify``: alignment and integrity checks."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.fileio import write_atomic
from carla4agt_data.verify import verify


@click.command("verify", short_help="Check alignment and integrity of a raw folder or .h5.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every finding to this JSON file.")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of tag pixels that may differ between appearances (raw folders).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes checking layouts in parallel.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.pass_context
def verify_cmd(ctx: click.Context, path: Path, json_path: Path | None, tolerance: float,
               workers: int, progress: bool) -> None:
    """Check that every layout's appearances share one pixel-perfect label map.

    PATH is a raw folder or a .h5 dataset. Exit code 0 when every check passes, 1 when any
    fails, 2 for usage errors.
    """
    report = verify(path, tolerance=tolerance, workers=workers, progress=progress)
    click.echo(report.summary())
    if json_path is not None:
        write_atomic(json_path, report.to_json())
        click.echo(f"Wrote {json_path}.")
    if not report.ok:
        ctx.exit(1)
