"""``carla4agt verify``: alignment and integrity checks."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.fileio import write_atomic
from carla4agt_data.verify import verify

# What a plain `carla4agt generate` writes in the current folder (older runs: ./dataset.h5).
DEFAULT_PATHS = (Path("raw/dataset.h5"), Path("dataset.h5"), Path("raw"))


@click.command("verify", short_help="Check alignment and integrity of a raw folder or .h5.")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every finding to this JSON file.")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of tag pixels that may differ between appearances (raw folders).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes checking layouts in parallel.")
@click.option("--strict", is_flag=True,
              help="Count warnings (suspicions too thin to call) as failures: exit code 1.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.pass_context
def verify_cmd(ctx: click.Context, paths: tuple[Path, ...], json_path: Path | None,
               tolerance: float, workers: int, strict: bool, progress: bool) -> None:
    """Check that every layout's appearances share one pixel-perfect label map.

    PATHS are raw folders or .h5 datasets. Without any, verify checks what a plain
    `carla4agt generate` in this folder produced: its dataset and its raw folder. Exit code 0
    when every check passes (warnings are listed but pass, unless --strict), 1 when any
    fails, 2 for usage errors.
    """
    if not paths:
        paths = tuple(p for p in DEFAULT_PATHS if p.exists())
        if not paths:
            raise click.UsageError(
                "Nothing to verify here: no " + ", ".join(str(p) for p in DEFAULT_PATHS)
                + ". Pass a raw folder or a .h5 dataset, e.g. carla4agt verify dataset.h5.")
        click.echo("Checking " + " and ".join(str(p) for p in paths) + ".")
    reports = []
    for path in paths:
        report = verify(path, tolerance=tolerance, workers=workers, progress=progress)
        click.echo(report.summary(strict=strict))
        reports.append(report)
    if json_path is not None:
        text = reports[0].to_json() if len(reports) == 1 else (
            "[" + ",\n".join(r.to_json() for r in reports) + "]\n")
        write_atomic(json_path, text)
        click.echo(f"Wrote {json_path}.")
    if not all(r.passes(strict) for r in reports):
        ctx.exit(1)
