"""The paper's two studies as grids of training runs ("cells").

``alignment``: one run per (alignment metric, seed), "none" being the baseline that trains
on every appearance as independent images. ``volume``: one run per (layouts, appearances
per layout, seed), either at equal iterations (a full grid) or at equal rendered images
(layouts x appearances held at a budget).

Every cell is its own run folder: ``cell.json`` (what it trains, written first),
the training run (``last.pt``, ``log.csv``), and ``eval.json`` (written last, atomically:
a cell is finished exactly when it exists). A re-run skips finished cells and resumes
unfinished ones, so a study can be stopped, split across machines and reported from its
folders alone (:mod:`training.study_report`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import write_atomic

CELL_FILE = "cell.json"
EVAL_FILE = "eval.json"
STUDIES = ("alignment", "volume")


@dataclass(frozen=True)
class Cell:
    """One training run of a study: its folder name, where it sits in the report, and what
    it changes in the study's base training configuration."""

    name: str
    study: str  # alignment | volume
    row: str  # alignment: metric ("baseline" for none); volume: layouts
    column: str  # alignment: "" ; volume: appearances per layout
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str) -> Cell:
        return Cell(**json.loads(text))


def alignment_cells(metrics: Sequence[str], seeds: int,
                    train_appearances: Sequence[str]) -> list[Cell]:
    """One cell per (metric, seed); metric "none" trains the baseline."""
    cells = []
    for metric in metrics:
        for seed in range(seeds):
            overrides: dict[str, Any] = {"seed": seed,
                                         "appearances": list(train_appearances)}
            if metric == "none":
                overrides["mode"] = "baseline"
                row = "baseline"
            else:
                overrides.update(mode="aligned", align=metric)
                row = metric
            cells.append(Cell(f"align-{row}-seed{seed}", "alignment", row, "", seed, overrides))
    return cells


def volume_cells(layouts: Sequence[int], appearances: Sequence[int], seeds: int,
                 all_appearances: Sequence[str], budget: int | None = None) -> list[Cell]:
    """The grid layouts x appearances (0 layouts: all), or at ``budget`` rendered images the
    cells with layouts x appearances == budget, one per appearance count."""
    if budget is not None:
        pairs = [(budget // a, a) for a in appearances if budget % a == 0]
        if len(pairs) != len(appearances):
            raise UserError(f"--budget {budget} is not divisible by every appearance count in "
                            f"{','.join(map(str, appearances))}: pick a multiple of them all.")
    else:
        pairs = [(n, a) for n in layouts for a in appearances]
    cells = []
    for n, a in pairs:
        if a > len(all_appearances):
            raise UserError(f"{a} appearances per layout asked for, but the dataset has "
                            f"{len(all_appearances)} ({', '.join(all_appearances)}).")
        for seed in range(seeds):
            label = "all" if n == 0 else str(n)
            overrides = {"seed": seed, "max_layouts": n, "mode": "baseline",
                         "appearances": list(all_appearances[:a])}
            cells.append(Cell(f"volume-L{label}-A{a}-seed{seed}", "volume", label, str(a),
                              seed, overrides))
    return cells


def select_cells(cells: Sequence[Cell], part: tuple[int, int] | None) -> list[Cell]:
    """Cells I, I+N, I+2N... for ``part`` (I, N): one machine's share of a split study."""
    if part is None:
        return list(cells)
    index, count = part
    return [c for i, c in enumerate(cells) if i % count == index]


def part_from_environment(env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """(I, N) from a SLURM job array (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT)."""
    env = dict(os.environ) if env is None else env
    task, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    try:
        part = int(task), int(count)
    except ValueError:
        raise UserError(f"SLURM_ARRAY_TASK_ID={task!r} / SLURM_ARRAY_TASK_COUNT={count!r} are "
                        "not integers: unset them or pass --cell I/N.") from None
    if not 0 <= part[0] < part[1]:
        raise UserError(f"SLURM_ARRAY_TASK_ID={task} is outside 0..{part[1] - 1}: submit the "
                        "array as --array=0-<N-1> or pass --cell I/N.")
    return part


def is_finished(folder: Path) -> bool:
    return (folder / EVAL_FILE).is_file()


def write_cell(folder: Path, cell: Cell) -> None:
    """Write (or check) the cell's config: a folder never changes what it trains."""
    path = folder / CELL_FILE
    if path.is_file():
        if Cell.from_json(path.read_text()) != cell:
            raise UserError(f"{path} describes a different run than this study asks for "
                            "(changed options?). Use a new study folder, or remove that cell "
                            "folder to retrain it.")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, cell.to_json())


@dataclass
class StudyRun:
    """What ``run_study`` needs besides the cells: how to train and score one cell."""

    train: Callable[[Cell, Path, bool], Path]  # (cell, folder, resume) -> checkpoint
    evaluate: Callable[[Cell, Path], dict[str, Any]]  # (cell, checkpoint) -> eval record


def run_study(cells: Sequence[Cell], folder: Path, run: StudyRun, *,
              report: Callable[[str], None] = print,
              on_cell_done: Callable[[Cell], None] | None = None) -> list[Cell]:
    """Train and evaluate every unfinished cell into ``folder/<cell name>``; returns the
    cells that were run now (finished ones are skipped, started ones resumed)."""
    done_now = []
    for i, cell in enumerate(cells, 1):
        cell_dir = folder / cell.name
        if is_finished(cell_dir):
            report(f"[{i}/{len(cells)}] {cell.name}: finished earlier, skipped")
            if on_cell_done:
                on_cell_done(cell)
            continue
        write_cell(cell_dir, cell)
        resume = (cell_dir / "last.pt").is_file()
        report(f"[{i}/{len(cells)}] {cell.name}: " + ("resuming" if resume else "training"))
        checkpoint = run.train(cell, cell_dir, resume)
        record = run.evaluate(cell, checkpoint)
        write_atomic(cell_dir / EVAL_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        done_now.append(cell)
        if on_cell_done:
            on_cell_done(cell)
    return done_now


def read_cells(folder: Path) -> list[tuple[Cell, dict[str, Any] | None]]:
    """Every cell folder under ``folder`` with its evaluation (None: not finished)."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a study folder (no such directory).")
    found = []
    for path in sorted(folder.glob(f"*/{CELL_FILE}")):
        try:
            cell = Cell.from_json(path.read_text())
            record = (json.loads((path.parent / EVAL_FILE).read_text())
                      if is_finished(path.parent) else None)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{path.parent}: not a readable study cell ({exc}). Remove the "
                            "folder to retrain it.") from None
        found.append((cell, record))
    if not found:
        raise UserError(f"{folder} holds no study cells ({CELL_FILE} files): run "
                        "`carla4agt study alignment|volume --out` into it first.")
    return found
