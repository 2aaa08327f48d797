"""``carla4agt study``: the paper's studies as grids of training runs, and their report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from carla4agt_data.errors import UserError


def _part(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not I/N (for example 0/4).") from None
    if not 0 <= index < count:
        raise click.BadParameter(f"{value!r}: I must be in 0..N-1.")
    return index, count


def _ints(value: str, what: str) -> list[int]:
    out = []
    for item in value.split(","):
        item = item.strip()
        if item == "all" and what == "layouts":
            out.append(0)
            continue
        try:
            n = int(item)
        except ValueError:
            raise click.BadParameter(f"{item!r} in {value!r} is not a whole number.") from None
        if n < 1:
            raise click.BadParameter(f"{item!r} in {value!r}: {what} must be at least 1.")
        out.append(n)
    if not out or len(set(out)) != len(out):
        raise click.BadParameter(f"{value!r}: give distinct {what}, comma-separated.")
    return out


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
                     help="carla4agt HDF5 dataset (trained on its train split, scored on "
                          "--split)."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                     required=True, help="Study folder: one run folder per cell, and the "
                                         "report."),
        click.option("--seeds", type=click.IntRange(1, 100), default=2, show_default=True),
        click.option("--iters", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Iterations per cell."),
        click.option("--batch", type=click.IntRange(min=2), default=8, show_default=True),
        click.option("--crop", type=click.IntRange(min=16), default=512, show_default=True),
        click.option("--model", default="lraspp_mobilenet_v3_large", show_default=True,
                     help="A built-in model name."),
        click.option("--split", default="val", show_default=True,
                     help="Split of --data to score every cell on."),
        click.option("--cityscapes", type=click.Path(exists=True, file_okay=False),
                     help="Also score on a Cityscapes root (val split)."),
        click.option("--acdc", type=click.Path(exists=True, file_okay=False),
                     help="Also score on an ACDC root (val split of --condition)."),
        click.option("--condition", default="fog", show_default=True),
        click.option("--device", default="auto", show_default=True),
        click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True),
        click.option("--cell", "part", default=None, metavar="I/N",
                     help="Run only cells I, I+N, ... (one machine of N) [default: "
                          "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT when set]."),
        click.option("--dry-run", is_flag=True, help="List the cells and stop."),
        click.option("--progress/--no-progress", default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group("study", short_help="The paper's studies: alignment metrics, volume vs "
                                 "variability.")
def study() -> None:
    """Grids of training runs, one run folder per cell, resumable and splittable across
    machines; `carla4agt study report DIR` rebuilds the tables from the folders alone."""


@study.command("alignment")
@click.option("--align", "metrics", default="none,cosine,l2,mmd", show_default=True,
              help="Alignment metrics, comma-separated; none is the baseline.")
@click.option("--train-appearances", default=None,
              help="Appearances to train on [default: all]; the others are unseen.")
@_common
def alignment_cmd(metrics: str, train_appearances: str | None, **common: Any) -> None:
    """One run per (metric, seed): baseline (appearances as independent images) against
    feature alignment between two appearances of a layout."""
    from training.losses import ALIGNMENTS
    from training.study import alignment_cells

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    for name in names:
        if name != "none" and name not in ALIGNMENTS:
            raise click.BadParameter(f"{name!r} is not one of none, {', '.join(ALIGNMENTS)}.",
                                     param_hint="--align")
    if not names or len(set(names)) != len(names):
        raise click.BadParameter(f"{metrics!r}: give distinct metrics.", param_hint="--align")
    appearances = [a.strip() for a in (train_appearances or "").split(",") if a.strip()]
    _check_appearances(common["data"], appearances)
    cells = alignment_cells(names, common["seeds"], appearances)
    _run(cells, **common)


@study.command("volume")
@click.option("--layouts", default="50,200,all", show_default=True,
              help="Training layouts per cell (all: the whole train split).")
@click.option("--appearances", "counts", default="1,2,4", show_default=True,
              help="Appearances per layout per cell (the first N of the dataset's).")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Equal rendered images instead of equal iterations: cells with layouts x "
                   "appearances = BUDGET (--layouts is then ignored).")
@_common
def volume_cmd(layouts: str, counts: str, budget: int | None, **common: Any) -> None:
    """More layouts or more appearances per layout: a grid at equal iterations, or at equal
    rendered images with --budget."""
    from carla4agt_data.dataset import open_dataset
    from training.study import volume_cells

    names = list(open_dataset(common["data"]).appearances)
    cells = volume_cells(_ints(layouts, "layouts"), _ints(counts, "appearances"),
                         common["seeds"], names, budget)
    _run(cells, **common)


@study.command("report")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report_cmd(folder: Path) -> None:
    """Rebuild study.md, study.csv and study.png from FOLDER's cell folders alone."""
    from training.study_report import write_report

    _say_report(write_report(folder))


def _check_appearances(data: str, appearances: list[str]) -> None:
    from carla4agt_data.dataset import open_dataset

    known = open_dataset(data).appearances
    unknown = [a for a in appearances if a not in known]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)} not in {data} ({', '.join(known)}).",
                                 param_hint="--train-appearances")


def _say_report(files: Any) -> None:
    click.echo(f"Wrote {files.markdown}, {files.csv} and {files.chart} "
               f"({files.finished} finished rows).")
    if files.unfinished:
        click.echo(f"{len(files.unfinished)} cells unfinished: "
                   + ", ".join(files.unfinished) + ".")


def _run(cells: list[Any], *, data: str, out: Path, seeds: int, iters: int, batch: int,
         crop: int, model: str, split: str, cityscapes: str | None, acdc: str | None,
         condition: str, device: str, workers: int, part: str | None, dry_run: bool,
         progress: bool) -> None:
    from training.study import part_from_environment, run_study, select_cells

    chosen_part = _part(part) if part is not None else part_from_environment()
    chosen = select_cells(cells, chosen_part)
    if chosen_part is not None:
        click.echo(f"Cells {chosen_part[0]}/{chosen_part[1]}: {len(chosen)} of {len(cells)}.")
    if dry_run:
        for cell in chosen:
            status = "finished" if (out / cell.name / "eval.json").is_file() else (
                "started" if (out / cell.name).is_dir() else "to run")
            click.echo(f"{cell.name:32s} {status}")
        return
    try:
        from loaders import acdc as acdc_ds
        from loaders import cityscapes as cityscapes_ds
        from training.loop import TrainConfig
        from training.study_run import make_study_run
    except ImportError as exc:
        raise UserError(f"Studies need torch and torchvision ({exc}): pip install "
                        "'carla4agt[torch]'.") from None
    from tqdm import tqdm

    from training.study_report import write_report

    targets = {}
    if cityscapes:
        targets["cityscapes"] = cityscapes_ds(cityscapes, "val")
    if acdc:
        targets[f"acdc-{condition}"] = acdc_ds(acdc, condition, "val")
    base = TrainConfig(data=data, out=str(out), iters=iters, batch=batch, crop=crop,
                       model=model, device=device, workers=workers)
    run = make_study_run(base, split=split, targets=targets, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    # One bar over the whole study's iterations: which cell, and time left for all of them.
    bar = tqdm(total=iters * len(chosen), desc="study", unit="it", disable=not progress,
               dynamic_ncols=True, position=1)

    def done(cell: Any) -> None:
        bar.update(iters)
        bar.set_postfix_str(f"done {cell.name}")

    run_study(chosen, out, run, report=lambda line: tqdm.write(line) if progress
              else click.echo(line), on_cell_done=done)
    bar.close()
    _say_report(write_report(out))
