"""Appearance generalisation: train on some appearances, evaluate on the others.

Trains each mode (baseline, aligned, uda) on the same budget with several seeds, through
the real CLI, and prints per-appearance mIoU16 on the validation split as measured, the
mean training loss of the first and last tenth of the steps, and two chance levels from
the split's stored class pixel counts (a uniform random prediction; the most frequent
class everywhere).

    carla4agt generate --layouts 160 --size 512x256 --out raw --dataset exp.h5 --split 0.75,0.25,0
    python benchmarks/appearance_generalisation.py exp.h5 --iters 250
    # uda with DAFormer's recipe (unlabelled target images in TARGET/images):
    python benchmarks/appearance_generalisation.py exp.h5 --modes uda --recipe daformer \\
        --model daformer_mit_b0 --target TARGET --extra="--weights none --warmup-iters 20"
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np


def chance_levels(dataset: Path, split: str) -> tuple[float, float]:
    """(uniform random prediction, most frequent class) mIoU over the classes present."""
    from carla4agt_data.dataset import open_dataset

    ds = open_dataset(dataset)
    counts = ds.class_pixels[ds.split_indices(split)].sum(axis=0).astype(np.float64)
    p = counts / counts.sum()
    present = p > 0
    k = len(p)
    uniform = (p / k) / (p + 1 / k - p / k)  # E[TP] / E[TP + FP + FN] per class
    majority = np.zeros(k)
    majority[np.argmax(p)] = p.max()
    return float(uniform[present].mean()), float(majority[present].mean())


def losses(log: Path) -> tuple[float, float]:
    with open(log) as fh:
        values = [float(r["loss"]) for r in csv.DictReader(fh)]
    tenth = max(1, len(values) // 10)
    return statistics.mean(values[:tenth]), statistics.mean(values[-tenth:])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs-generalisation"))
    parser.add_argument("--train", default="noon,sunset")
    parser.add_argument("--iters", type=int, default=250)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--modes", default="baseline,aligned")
    parser.add_argument("--recipe", default="quick")
    parser.add_argument("--model", default=None)
    parser.add_argument("--target", default=None, help="uda: a folder with images/")
    parser.add_argument("--extra", default="", help="more train flags, as one string")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "carla4agt"]
    results, trained = {}, {}
    for mode in args.modes.split(","):
        for seed in args.seeds.split(","):
            run = args.out / f"{mode}-{seed}"
            cmd = [*cli, "train", "--recipe", args.recipe, "--data", str(args.dataset),
                   "--out", str(run), "--mode", mode, "--appearances", args.train, "--iters",
                   str(args.iters), "--batch", str(args.batch), "--crop", str(args.crop),
                   "--seed", seed, "--device", args.device, "--no-progress",
                   *shlex.split(args.extra)]
            if args.model:
                cmd += ["--model", args.model]
            if mode == "uda":
                cmd += ["--target", str(args.target)]
            subprocess.run(cmd, check=True, capture_output=True)
            subprocess.run([*cli, "evaluate", "--checkpoint", str(run / "last.pt"), "--data",
                            str(args.dataset), "--split", "val", "--json",
                            str(run / "eval.json"), "--device", args.device, "--no-progress"],
                           check=True, capture_output=True)
            report = json.loads((run / "eval.json").read_text())
            results[(mode, seed)] = {k: v["miou16"] for k, v in report["per_appearance"].items()}
            trained[(mode, seed)] = losses(run / "log.csv")
    names = list(next(iter(results.values())))
    uniform, majority = chance_levels(args.dataset, "val")
    print(f"recipe {args.recipe}, trained on {args.train}, {args.iters} iterations x "
          f"{args.batch} images of {args.crop}x{args.crop}; mIoU16 on the val split")
    print(f"{'mode':9s} {'seed':>4s} " + " ".join(f"{n:>7s}" for n in names)
          + "   loss first/last tenth")
    for (mode, seed), per in results.items():
        first, last = trained[(mode, seed)]
        print(f"{mode:9s} {seed:>4s} " + " ".join(f"{per[n]:7.1%}" for n in names)
              + f"   {first:.3f} -> {last:.3f}")
    for mode in args.modes.split(","):
        rows = [per for (m, _), per in results.items() if m == mode]
        print(f"{mode:9s} mean " + " ".join(
            f"{statistics.mean(r[n] for r in rows):7.1%}" for n in names))
    print(f"chance: uniform random prediction {uniform:.1%}, most frequent class everywhere "
          f"{majority:.1%}")


if __name__ == "__main__":
    main()
