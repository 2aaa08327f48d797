"""A DAFormer / mmsegmentation dataset config for an export: a plain Python file of dicts.

mmsegmentation's ``CustomDataset`` finds images under ``img_dir`` by ``img_suffix`` and
each label under ``ann_dir`` by swapping in ``seg_map_suffix``. Exported labels are always
Cityscapes 19-class trainIds (255 = ignore), so the class list and palette are Cityscapes'
(classes a 16-class dataset lacks simply never occur), which is what a Cityscapes target
expects. Nothing in the file imports anything: it is data.
"""

from __future__ import annotations

import pprint
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .taxonomy import IGNORE, classes

CONFIG_NAME = "daformer_dataset.py"

_SUFFIXES = {  # format: (img_suffix, seg_map_suffix)
    "gta": (".png", "_labelTrainIds.png"),
    "cityscapes": ("_leftImg8bit.png", "_gtFine_labelTrainIds.png"),
}


def dataset_dicts(out: Path, fmt: str, splits: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{"train": {...}, "val": {...}, ...}``: one mmseg dataset dict per exported split
    (gta keeps every split in one folder: one ``train`` dict)."""
    img_suffix, seg_suffix = _SUFFIXES[fmt]
    table = classes(19)
    common = {
        "type": "CustomDataset",
        "data_root": str(Path(out).resolve()),
        "img_suffix": img_suffix,
        "seg_map_suffix": seg_suffix,
        "classes": tuple(c.name for c in table),
        "palette": [list(c.color) for c in table],
        "ignore_index": IGNORE,
        "reduce_zero_label": False,
    }
    if fmt == "gta":
        return {"train": {**common, "img_dir": "images", "ann_dir": "labels"}}
    return {s: {**common, "img_dir": f"leftImg8bit/{s}", "ann_dir": f"gtFine/{s}"}
            for s in splits}


def daformer_config(out: Path, fmt: str, splits: Sequence[str]) -> str:
    """The text of ``daformer_dataset.py``."""
    dicts = dataset_dicts(out, fmt, splits)
    first = dicts[next(iter(dicts))]
    lines = [
        f"# mmsegmentation / DAFormer dataset config for the carla4agt {fmt} export in this",
        "# folder, written by carla4agt export. Plain data: it imports nothing. In a DAFormer",
        "# config, train on it (the source domain) with:",
        "#     from runpy import run_path",
        f"#     source = run_path({str(Path(out).resolve() / CONFIG_NAME)!r})['train']; "
        "del run_path",
        "#     data = dict(train=dict(source=source))    # your base config keeps its pipeline",
        "",
        f"data_root = {first['data_root']!r}",
        f"classes = {first['classes']!r}",
        f"palette = {first['palette']!r}",
        f"ignore_index = {IGNORE}",
        f"img_suffix = {first['img_suffix']!r}",
        f"seg_map_suffix = {first['seg_map_suffix']!r}",
        "",
    ]
    for split, d in dicts.items():
        lines.append(f"{split} = {pprint.pformat(d, width=96, sort_dicts=False)}")
    return "\n".join(lines) + "\n"
