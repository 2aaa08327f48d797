"""``carla4agt export``: folder layouts for other tools."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.daformer import CONFIG_NAME
from carla4agt_data.export import FORMATS, export
from carla4agt_data.schema import SPLIT_NAMES

from .interrupts import interrupted


@click.command("export", short_help="Export to Cityscapes or GTA folder layouts.")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--splits", default=",".join(SPLIT_NAMES), show_default=True,
              help="Splits to export, comma-separated.")
@click.option("--appearances", default=None, help="Appearances to export (default: all).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@interrupted("Stopped. Images exported so far are complete files (each is renamed into place "
             "when written); run export again to export everything.")
def export_cmd(fmt: str, dataset: Path, out: Path, splits: str, appearances: str | None,
               progress: bool) -> None:
    """Write DATASET as a cityscapes or gta folder layout under OUT.

    Labels are written as Cityscapes 19-class trainIds (and, for cityscapes, labelIds).
    OUT also gets daformer_dataset.py, a DAFormer/mmsegmentation dataset config.
    """
    names = None
    if appearances is not None:
        names = [a.strip() for a in appearances.split(",") if a.strip()]
        if not names:
            raise click.BadParameter("no appearance given; name at least one, e.g. noon,fog.",
                                     param_hint="'--appearances'")
    split_list = [s.strip() for s in splits.split(",") if s.strip()]
    if not split_list:
        raise click.BadParameter(f"no split given; name at least one of "
                                 f"{', '.join(SPLIT_NAMES)}.", param_hint="'--splits'")
    for s in split_list:
        if s not in SPLIT_NAMES:
            raise click.BadParameter(f"unknown split {s!r}; valid: {', '.join(SPLIT_NAMES)}.",
                                     param_hint="'--splits'")
    n = export(dataset, out, fmt, splits=split_list, appearances=names, progress=progress)
    click.echo(f"Exported {n} images to {out} ({fmt} layout), with {out / CONFIG_NAME} for "
               "DAFormer/mmsegmentation.")
