"""Contact sheets: every appearance of a few layouts beside their colourised label map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .errors import UserError
from .raw import complete_layouts, read_marker, read_rgb, read_tags, rgb_name, tags_name
from .taxonomy import colorize, tag_lut

_TABLE_VERSION = {"0.9.14+": "0.9.14", "0.9.10-0.9.13": "0.9.13"}


def _caption(tile: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(tile)
    box = draw.textbbox((4, 3), text)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((4, 3), text, fill=(255, 255, 255))


def contact_sheet(raw: Path, *, layouts: Sequence[str] | None = None, count: int = 4,
                  tile_width: int = 384) -> Image.Image:
    """A grid with one row per layout: each appearance, then the 16-class label map.

    Args:
        raw: a raw folder written by ``carla4agt generate``.
        layouts: layout ids to show; default: the first ``count`` complete layouts.
        tile_width: width of each image in the sheet (2:1 images, so height is half).
    """
    folders = complete_layouts(raw)
    by_id = {f.name: f for f in folders}
    if layouts:
        missing = [i for i in layouts if i not in by_id]
        if missing:
            raise UserError(f"{raw}: no complete layout named {', '.join(missing)}. "
                            f"Complete layouts start with: {', '.join(list(by_id)[:5])}.")
        chosen = [by_id[i] for i in layouts]
    else:
        chosen = folders[:count]
    if not chosen:
        raise UserError(f"{raw}: no complete layouts to show. Run carla4agt generate first.")
    rows = []
    for folder in chosen:
        marker = read_marker(folder)
        lut = tag_lut(_TABLE_VERSION.get(marker.get("tag_table"), "0.9.14"))
        tiles = []
        for name in marker["appearances"]:
            tiles.append((read_rgb(folder / rgb_name(name)), f"{folder.name}  {name}"))
        label = colorize(lut[read_tags(folder / tags_name(marker["appearances"][0]))])
        tiles.append((label, "label (16 classes)"))
        row = []
        for array, text in tiles:
            h, w = array.shape[:2]
            tile = Image.fromarray(array).resize((tile_width, round(tile_width * h / w)),
                                                 Image.Resampling.BILINEAR if text.startswith(
                                                     folder.name) else Image.Resampling.NEAREST)
            _caption(tile, text)
            row.append(np.asarray(tile))
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return Image.fromarray(np.concatenate(rows, axis=0))
