"""Contact sheets: every appearance of a few layouts beside their colourised label map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .dataset import open_dataset
from .errors import UserError
from .raw import RawFolder
from .taxonomy import colorize

MAX_ROWS = 64  # layouts per sheet (64 rows of 5 tiles 1024 px wide: about 0.5 GiB)
MIN_TILE, MAX_TILE = 32, 1024


def _caption(tile: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(tile)
    box = draw.textbbox((4, 3), text)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((4, 3), text, fill=(255, 255, 255))


def _raw_layouts(path: Path, layouts: Sequence[str] | None, count: int):
    raw = RawFolder(path)
    for lid in _choose(path, list(raw.ids), layouts, count):
        names = raw.appearances_of(lid)
        yield lid, [(n, raw.read_rgb(lid, n)) for n in names], raw.read_label(lid), 16


def _h5_layouts(path: Path, layouts: Sequence[str] | None, count: int):
    ds = open_dataset(path)
    for lid in _choose(path, [str(i) for i in ds.layout_ids], layouts, count):
        i = ds.index_of(lid)
        yield lid, [(n, ds.read_rgb(i, n)) for n in ds.appearances], ds.read_label(i), \
            ds.num_classes
    ds.close()


def _choose(source: Path, ids: list[str], layouts: Sequence[str] | None, count: int) -> list[str]:
    if layouts:
        missing = [i for i in layouts if i not in set(ids)]
        if missing:
            raise UserError(f"{source}: no complete layout named {', '.join(missing)}. "
                            f"Layouts start with: {', '.join(ids[:5])}.")
        return list(layouts)
    if not ids:
        raise UserError(f"{source}: no complete layouts to show. Run carla4agt generate first.")
    return ids[:count]


def contact_sheet(path: Path, *, layouts: Sequence[str] | None = None, count: int = 4,
                  tile_width: int = 384) -> Image.Image:
    """A grid with one row per layout: each appearance, then the colourised label map.

    Args:
        path: a raw folder written by ``carla4agt generate``, or a ``.h5`` dataset.
        layouts: layout ids to show; default: the first ``count`` layouts.
        tile_width: width of each image in the sheet (its height follows the aspect).

    Raises:
        UserError (a ValueError): more than MAX_ROWS rows, or a tile width outside
        MIN_TILE..MAX_TILE (a sheet must fit in memory), or unreadable input.
    """
    path = Path(path)
    rows_wanted = len(layouts) if layouts else count
    if not 1 <= rows_wanted <= MAX_ROWS:
        raise UserError(f"A contact sheet shows 1 to {MAX_ROWS} layouts, not {rows_wanted}. "
                        "Write several sheets for more.")
    if not MIN_TILE <= tile_width <= MAX_TILE:
        raise UserError(f"Tile width {tile_width} is outside {MIN_TILE}..{MAX_TILE} pixels.")
    source = _raw_layouts if path.is_dir() else _h5_layouts
    rows = []
    for lid, images, label, num_classes in source(path, layouts, count):
        tiles = [(rgb, f"{lid}  {name}", Image.Resampling.BILINEAR) for name, rgb in images]
        tiles.append((colorize(label, num_classes), f"label ({num_classes} classes)",
                      Image.Resampling.NEAREST))
        row = []
        for array, text, resample in tiles:
            h, w = array.shape[:2]
            tile = Image.fromarray(array).resize((tile_width, round(tile_width * h / w)), resample)
            _caption(tile, text)
            row.append(np.asarray(tile))
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return Image.fromarray(np.concatenate(rows, axis=0))
