"""`carla4agt study`: cells, resume, split across machines, report from folders alone."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from carla4agt.cli import cli
from carla4agt_data.errors import UserError
from tests.synthetic import synthetic_dataset
from training.study import (
    Cell,
    alignment_cells,
    part_from_environment,
    select_cells,
    volume_cells,
    write_cell,
)
from training.study_report import build_rows, write_report

CLASSES = ["road", "car", "sky"]


def _finished_cell(folder: Path, cell: Cell, noon: list[list[int]], fog: list[list[int]],
                   train: list[str]) -> None:
    write_cell(folder / cell.name, cell)
    record = {"classes": CLASSES, "appearances": ["noon", "fog"], "train_appearances": train,
              "matrices": {"noon": noon, "fog": fog}, "split": "val", "step": 2, "targets": []}
    (folder / cell.name / "eval.json").write_text(json.dumps(record))


def test_report_from_folders_known_answers(tmp_path: Path) -> None:
    # rows: ground truth, columns: prediction. noon: road perfect (IoU 1), car half
    # (TP 5, FN 5 predicted road -> road IoU 10/15), sky absent.
    noon = [[10, 0, 0], [5, 5, 0], [0, 0, 0]]
    fog = [[10, 0, 0], [0, 10, 0], [0, 0, 0]]
    base = alignment_cells(["none", "cosine"], 2, ["noon"])
    for cell in base:
        if cell.row == "baseline":
            _finished_cell(tmp_path, cell, noon, noon, ["noon"])
        else:
            _finished_cell(tmp_path, cell, fog, fog, ["noon"])
    # an unfinished cell: listed, not counted
    write_cell(tmp_path / "align-l2-seed0",
               Cell("align-l2-seed0", "alignment", "l2", "", 0, {"mode": "aligned"}))
    rows, classes, missing = build_rows(tmp_path)
    assert classes == CLASSES and [c.name for c in missing] == ["align-l2-seed0"]
    baseline_unseen = next(r for r in rows if r.name == "baseline" and r.eval_set == "unseen")
    assert baseline_unseen.iou_mean["road"] == pytest.approx(10 / 15)
    assert baseline_unseen.iou_mean["car"] == pytest.approx(5 / 10)
    assert np.isnan(baseline_unseen.iou_mean["sky"])
    assert baseline_unseen.miou_mean == pytest.approx((10 / 15 + 0.5) / 2)
    assert baseline_unseen.seeds == 2 and baseline_unseen.miou_std == 0
    files = write_report(tmp_path)
    md = files.markdown.read_text()
    assert "**100.0 ± 0.0**" in md  # cosine's car column is the best and in bold
    assert "align-l2-seed0" in md and files.unfinished == ["align-l2-seed0"]
    table = list(csv.DictReader(io.StringIO(files.csv.read_text())))
    best = {(r["row"], r["class"]) for r in table if r["eval_set"] == "unseen" and
            r["best"] == "1"}
    assert ("cosine", "mIoU") in best and ("baseline", "mIoU") not in best
    assert float(next(r for r in table if r["row"] == "baseline" and r["eval_set"] == "all"
                      and r["class"] == "road")["iou_mean"]) == pytest.approx(10 / 15, abs=1e-5)
    with Image.open(files.chart) as im:
        assert im.format == "PNG" and im.width > 100


def test_cells_plan_split_and_environment() -> None:
    cells = volume_cells([50, 0], [1, 2], 2, ["noon", "sunset", "night", "fog"])
    assert len(cells) == 8 and len({c.name for c in cells}) == 8
    assert {c.overrides["max_layouts"] for c in cells} == {50, 0}
    assert {len(c.overrides["appearances"]) for c in cells} == {1, 2}
    parts = [select_cells(cells, (i, 3)) for i in range(3)]
    assert sorted(c.name for p in parts for c in p) == sorted(c.name for c in cells)
    equal = volume_cells([], [1, 2, 4], 1, ["noon", "sunset", "night", "fog"], budget=8)
    assert [(c.overrides["max_layouts"], len(c.overrides["appearances"])) for c in equal] == \
        [(8, 1), (4, 2), (2, 4)]
    assert part_from_environment({"SLURM_ARRAY_TASK_ID": "2",
                                  "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    assert part_from_environment({}) is None


def test_changed_options_refuse_an_existing_cell(tmp_path: Path) -> None:
    cell = alignment_cells(["cosine"], 1, [])[0]
    write_cell(tmp_path / cell.name, cell)
    changed = Cell(cell.name, cell.study, cell.row, cell.column, cell.seed,
                   {**cell.overrides, "align": "l2"})
    with pytest.raises(UserError, match="different run"):
        write_cell(tmp_path / cell.name, changed)


def _study(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["study", *args, "--iters", "2", "--batch", "2",
                                    "--crop", "32", "--workers", "0", "--no-progress"])


@pytest.mark.slow
def test_alignment_study_end_to_end_resume_and_split(tmp_path: Path) -> None:
    data = synthetic_dataset(tmp_path / "d.h5", layouts=8, size=(64, 32), block=8)
    out = tmp_path / "study"
    # a real-target folder in Cityscapes' layout: the val split exported (19-class trainIds)
    target = tmp_path / "cs"
    exported = CliRunner().invoke(cli, ["export", "cityscapes", str(data), str(target),
                                        "--splits", "val", "--appearances", "fog",
                                        "--no-progress"])
    assert exported.exit_code == 0, exported.output
    common = ["--data", str(data), "--out", str(out), "--seeds", "1",
              "--align", "none,cosine", "--train-appearances", "noon,sunset",
              "--cityscapes", str(target)]
    dry = _study(tmp_path, "alignment", *common, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "align-baseline-seed0" in dry.output and "to run" in dry.output
    # two machines, each its own share; then the report from the folders alone
    for part in ("0/2", "1/2"):
        res = _study(tmp_path, "alignment", *common, "--cell", part)
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == \
        ["align-baseline-seed0", "align-cosine-seed0"]
    again = _study(tmp_path, "alignment", *common)
    assert again.exit_code == 0 and again.output.count("skipped") == 2
    report = CliRunner().invoke(cli, ["study", "report", str(out)])
    assert report.exit_code == 0, report.output
    md = (out / "study.md").read_text()
    for set_name in ("seen", "unseen", "noon", "fog", "cityscapes"):
        assert f"evaluated on: {set_name}" in md
    rows = list(csv.DictReader(io.StringIO((out / "study.csv").read_text())))
    assert {r["row"] for r in rows} == {"baseline", "cosine"}
    assert {r["eval_set"] for r in rows} >= {"all", "seen", "unseen", "cityscapes"}
    assert all(0 <= float(r["iou_mean"]) <= 1 for r in rows if r["iou_mean"])


@pytest.mark.slow
def test_volume_study_resumes_an_interrupted_cell(tmp_path: Path) -> None:
    data = synthetic_dataset(tmp_path / "d.h5", layouts=8, size=(64, 32), block=8)
    out = tmp_path / "study"
    common = ["--data", str(data), "--out", str(out), "--seeds", "1", "--layouts", "2,all",
              "--appearances", "1,2"]
    res = _study(tmp_path, "volume", *common)
    assert res.exit_code == 0, res.output
    cells = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(cells) == 4 and all((out / c / "eval.json").is_file() for c in cells)
    # a cell killed after its checkpoint: eval.json missing -> resumed, not retrained
    (out / cells[0] / "eval.json").unlink()
    again = _study(tmp_path, "volume", *common)
    assert again.exit_code == 0 and "resuming" in again.output, again.output
    with Image.open(out / "study.png") as im:
        assert im.format == "PNG"
