"""``carla4agt preview``: a contact sheet of layouts and their labels."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.fileio import atomic_path
from carla4agt_data.preview import MAX_ROWS, MAX_TILE, MIN_TILE, contact_sheet


@click.command(short_help="Write a contact sheet of a few layouts.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default="sheet.png", show_default=True, help="PNG file to write.")
@click.option("--layouts", default=None,
              help="Comma-separated layout ids (default: the first --count layouts).")
@click.option("--count", type=click.IntRange(min=1, max=MAX_ROWS), default=4, show_default=True,
              help="How many layouts when --layouts is not given.")
@click.option("--tile-width", type=click.IntRange(min=MIN_TILE, max=MAX_TILE), default=384,
              show_default=True,
              help="Width in pixels of each image in the sheet.")
def preview(path: Path, output: Path, layouts: str | None, count: int, tile_width: int) -> None:
    """Write a contact sheet: one row per layout, every appearance and the colourised label.

    PATH is a raw folder written by carla4agt generate, or a .h5 dataset.
    """
    ids = [s.strip() for s in layouts.split(",") if s.strip()] if layouts else None
    sheet = contact_sheet(path, layouts=ids, count=count, tile_width=tile_width)
    with atomic_path(output) as tmp:
        sheet.save(tmp, format="PNG")
    click.echo(f"Wrote {output} ({sheet.width}x{sheet.height}).")
