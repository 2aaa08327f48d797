"""``carla4agt stats``: dataset statistics."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.fileio import atomic_path
from carla4agt_data.stats import compute_stats, plot_stats


@click.command("stats", short_help="Class frequencies, appearance statistics, counts.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a bar chart (PNG).")
@click.option("--sample", type=click.IntRange(min=0), default=100, show_default=True,
              help="Layouts decoded for appearance statistics (0: skip).")
def stats_cmd(path: Path, plot: Path | None, sample: int) -> None:
    """Class pixel frequency per split, per-appearance luminance and contrast, layout and
    image counts and size on disk of a .h5 dataset or a raw folder."""
    stats = compute_stats(path, sample=sample)
    click.echo(stats.table())
    if plot is not None:
        with atomic_path(plot) as tmp:
            plot_stats(stats).save(tmp, format="PNG")
        click.echo(f"Wrote {plot}.")
