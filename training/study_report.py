"""Tables and charts of a study, rebuilt from its cell folders alone.

Each finished cell's ``eval.json`` holds one confusion matrix per evaluation set (each
appearance of the dataset's val split, each real target). Sets are combined by adding
matrices ("seen": the appearances the cell trained on, "unseen": the others, "all"), so
every IoU here is TP / (TP + FP + FN) over the whole set, as in the paper's tables; the
mean and spread are over seeds.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import atomic_path, write_atomic

from .study import Cell, read_cells


@dataclass
class Row:
    """One row of a table: a method (or a grid point) on one evaluation set."""

    name: str
    column: str
    eval_set: str
    seeds: int
    iou_mean: dict[str, float]  # per class; NaN where the class never occurs
    iou_std: dict[str, float]
    miou_mean: float
    miou_std: float


def iou_from_matrix(matrix: np.ndarray) -> np.ndarray:
    tp = np.diag(matrix).astype(np.float64)
    denom = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def eval_sets(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """The cell's matrices per set, plus the combined "all", "seen" and "unseen"."""
    matrices = {name: np.asarray(m, dtype=np.int64) for name, m in record["matrices"].items()}
    appearances = record["appearances"]
    seen = set(record["train_appearances"]) or set(appearances)
    sets: dict[str, np.ndarray] = {}
    groups = {"all": appearances, "seen": [a for a in appearances if a in seen],
              "unseen": [a for a in appearances if a not in seen]}
    for name, members in groups.items():
        if members:
            sets[name] = sum(matrices[a] for a in members)  # type: ignore[assignment]
    sets.update(matrices)
    return sets


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if not math.isnan(v)])
    if not len(arr):
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def build_rows(folder: Path) -> tuple[list[Row], list[str], list[Cell]]:
    """Rows for every (row, column, eval set) over finished cells; also the class names and
    the cells still unfinished."""
    per: dict[tuple[str, str, str], list[np.ndarray]] = defaultdict(list)
    classes: list[str] = []
    missing = []
    for cell, record in read_cells(folder):
        if record is None:
            missing.append(cell)
            continue
        classes = list(record["classes"])
        for set_name, matrix in eval_sets(record).items():
            per[(cell.row, cell.column, set_name)].append(iou_from_matrix(matrix))
    rows = []
    for (name, column, set_name), ious in per.items():
        stack = np.stack(ious)  # [seeds, classes]
        means, stds = {}, {}
        for k, cls in enumerate(classes):
            means[cls], stds[cls] = _mean_std(list(stack[:, k]))
        mious = [float(np.nanmean(i)) if not np.isnan(i).all() else math.nan for i in ious]
        miou_mean, miou_std = _mean_std(mious)
        rows.append(Row(name, column, set_name, len(ious), means, stds, miou_mean, miou_std))
    return rows, classes, missing


def _fmt(mean: float, std: float, seeds: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if seeds > 1 else "")


def _best(rows: list[Row], key: str) -> float:
    values = [r.miou_mean if key == "mIoU" else r.iou_mean[key] for r in rows]
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def markdown_table(rows: list[Row], classes: list[str], eval_set: str, title: str) -> str:
    """The paper's layout: rows are methods, columns classes and mIoU, best in bold."""
    rows = sorted((r for r in rows if r.eval_set == eval_set), key=_row_order)
    if not rows:
        return ""
    header = ["method"] + classes + ["mIoU"]
    lines = [f"#### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for r in rows:
        cells = [_label(r)]
        for key in classes + ["mIoU"]:
            mean, std = ((r.miou_mean, r.miou_std) if key == "mIoU"
                         else (r.iou_mean[key], r.iou_std[key]))
            text = _fmt(mean, std, r.seeds)
            # a class no method predicts (best IoU 0.0 %) has no best to mark
            cells.append(f"**{text}**" if not math.isnan(mean) and len(rows) > 1
                         and mean == _best(rows, key) and mean >= 5e-4 else text)
        lines.append("| " + " | ".join(cells) + " |")
    seeds = sorted({r.seeds for r in rows})
    lines += ["", f"IoU in %, mean ± standard deviation over {'/'.join(map(str, seeds))} "
                  "seeds; best per column in bold.", ""]
    return "\n".join(lines)


def _label(row: Row) -> str:
    return f"{row.name} layouts x {row.column} app." if row.column else row.name


def _row_order(row: Row) -> tuple[int, Any, Any]:
    if row.column:  # volume: numeric layouts ("all" last), then appearances
        return (1, math.inf if row.name == "all" else int(row.name), int(row.column))
    return (0 if row.name == "baseline" else 1, row.name, "")


def csv_text(rows: list[Row], classes: list[str]) -> str:
    """Long format: one line per (row, column, eval set, class), best per column flagged."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["row", "column", "eval_set", "class", "iou_mean", "iou_std", "seeds",
                  "best"])
    for r in sorted(rows, key=lambda r: (r.eval_set, _row_order(r))):
        group = [g for g in rows if g.eval_set == r.eval_set]
        for key in classes + ["mIoU"]:
            mean, std = ((r.miou_mean, r.miou_std) if key == "mIoU"
                         else (r.iou_mean[key], r.iou_std[key]))
            best = not math.isnan(mean) and mean == _best(group, key)
            out.writerow([r.name, r.column, r.eval_set, key,
                          "" if math.isnan(mean) else f"{mean:.5f}",
                          "" if math.isnan(std) else f"{std:.5f}", r.seeds, int(best)])
    return buf.getvalue()


def bar_chart(rows: list[Row], eval_sets_shown: list[str], width: int = 900) -> Image.Image:
    """mIoU per method (bars) for each evaluation set, with the spread over seeds."""
    methods = sorted({r.name for r in rows}, key=lambda n: (n != "baseline", n))
    palette = [(70, 110, 180), (220, 130, 50), (90, 160, 90), (180, 70, 70), (130, 90, 170),
               (120, 120, 120)]
    left, top, group_h, bar_h = 110, 40, 20 * len(methods) + 16, 18
    im = Image.new("RGB", (width, top + group_h * len(eval_sets_shown) + 40), "white")
    draw = ImageDraw.Draw(im)
    draw.text((10, 10), "mIoU (%) per method and evaluation set; whiskers: ±1 std over seeds",
              fill="black")
    scale = (width - left - 60) / 100
    y = top
    for set_name in eval_sets_shown:
        draw.text((10, y + 4), set_name, fill="black")
        for k, method in enumerate(methods):
            row = next((r for r in rows if r.name == method and r.eval_set == set_name), None)
            if row is None or math.isnan(row.miou_mean):
                continue
            y0 = y + k * 20
            x1 = left + int(scale * 100 * row.miou_mean)
            draw.rectangle((left, y0, max(x1, left + 1), y0 + bar_h - 4),
                           fill=palette[k % len(palette)])
            d = 0
            if row.seeds > 1 and not math.isnan(row.miou_std):
                d = int(scale * 100 * row.miou_std)
                draw.line((x1 - d, y0 + 7, x1 + d, y0 + 7), fill="black")
            draw.text((x1 + d + 6, y0), f"{method} {100 * row.miou_mean:.1f}", fill="black")
        y += group_h
    return im


def heat_map(rows: list[Row], eval_set: str, cell_px: int = 90) -> Image.Image:
    """Volume grid: layouts (rows) x appearances per layout (columns), mIoU as colour."""
    chosen = [r for r in rows if r.eval_set == eval_set]
    names = sorted({r.name for r in chosen}, key=lambda n: math.inf if n == "all" else int(n))
    cols = sorted({r.column for r in chosen}, key=int)
    values = [r.miou_mean for r in chosen if not math.isnan(r.miou_mean)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    left, top = 110, 50
    im = Image.new("RGB", (left + cell_px * max(len(cols), 1) + 20,
                           top + cell_px * max(len(names), 1) + 30), "white")
    draw = ImageDraw.Draw(im)
    draw.text((10, 10), f"mIoU (%) on {eval_set}: layouts (rows) x appearances per layout",
              fill="black")
    for j, c in enumerate(cols):
        draw.text((left + j * cell_px + cell_px // 2 - 4, top - 14), c, fill="black")
    for i, n in enumerate(names):
        draw.text((10, top + i * cell_px + cell_px // 2 - 6), f"{n} layouts", fill="black")
        for j, c in enumerate(cols):
            row = next((r for r in chosen if r.name == n and r.column == c), None)
            x0, y0 = left + j * cell_px, top + i * cell_px
            if row is None or math.isnan(row.miou_mean):
                draw.rectangle((x0, y0, x0 + cell_px - 2, y0 + cell_px - 2), outline="gray")
                continue
            t = 0.0 if hi == lo else (row.miou_mean - lo) / (hi - lo)
            colour = (int(255 * (1 - t)), int(90 + 120 * t), int(80 + 60 * t))
            draw.rectangle((x0, y0, x0 + cell_px - 2, y0 + cell_px - 2), fill=colour)
            draw.text((x0 + 8, y0 + cell_px // 2 - 6), f"{100 * row.miou_mean:.1f}",
                      fill="black")
    return im


@dataclass
class ReportFiles:
    markdown: Path
    csv: Path
    chart: Path
    finished: int
    unfinished: list[str]


def write_report(folder: Path) -> ReportFiles:
    """study.md, study.csv and study.png in ``folder``, from its cell folders alone."""
    rows, classes, missing = build_rows(folder)
    if not rows:
        raise UserError(f"No cell in {folder} has finished yet ({len(missing)} started): run "
                        "the study command again to continue them, then report.")
    studies = {c.study for c, _ in read_cells(folder)}
    sets = sorted({r.eval_set for r in rows}, key=_set_order)
    parts = [f"### Study report: {folder.name}", ""]
    for s in sets:
        parts.append(markdown_table(rows, classes, s, f"evaluated on: {s}"))
    if missing:
        parts.append("Unfinished cells (not in the tables): "
                     + ", ".join(c.name for c in missing) + ".\n")
    md, table = folder / "study.md", folder / "study.csv"
    write_atomic(md, "\n".join(parts))
    write_atomic(table, csv_text(rows, classes))
    chart = folder / "study.png"
    # volume: every cell is scored on all appearances (a 4-appearance cell has no unseen)
    image = (heat_map(rows, "all") if studies == {"volume"} else
             bar_chart(rows, [s for s in sets if s in ("all", "seen", "unseen")
                              or s not in _appearance_sets(rows)]))
    with atomic_path(chart) as tmp:
        image.save(tmp, format="PNG")
    return ReportFiles(md, table, chart, len({(r.name, r.column) for r in rows}),
                       [c.name for c in missing])


def _appearance_sets(rows: list[Row]) -> set[str]:
    return {r.eval_set for r in rows} - {"all", "seen", "unseen"}


def _set_order(name: str) -> tuple[int, str]:
    order = {"all": 0, "seen": 1, "unseen": 2}
    return (order.get(name, 3), name)
