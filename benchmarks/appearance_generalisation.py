"""Appearance generalisation: train on some appearances, evaluate on the others.

Trains `baseline` (appearances as independent images) and `aligned` (pairs with the
alignment loss) on the same budget with several seeds, through the real CLI, and prints
per-appearance mIoU16 on the validation split, as measured.

    carla4agt generate --layouts 160 --size 512x256 --out raw --dataset exp.h5 --split 0.75,0.25,0
    python benchmarks/appearance_generalisation.py exp.h5 --iters 250
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs-generalisation"))
    parser.add_argument("--train", default="noon,sunset")
    parser.add_argument("--iters", type=int, default=250)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--modes", default="baseline,aligned")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "carla4agt"]
    results = {}
    for mode in args.modes.split(","):
        for seed in args.seeds.split(","):
            run = args.out / f"{mode}-{seed}"
            subprocess.run([*cli, "train", "--data", str(args.dataset), "--out", str(run),
                            "--mode", mode, "--appearances", args.train, "--iters",
                            str(args.iters), "--batch", str(args.batch), "--crop",
                            str(args.crop), "--seed", seed, "--device", args.device,
                            "--no-progress"], check=True, capture_output=True)
            subprocess.run([*cli, "evaluate", "--checkpoint", str(run / "last.pt"), "--data",
                            str(args.dataset), "--split", "val", "--json",
                            str(run / "eval.json"), "--device", args.device, "--no-progress"],
                           check=True, capture_output=True)
            report = json.loads((run / "eval.json").read_text())
            results[(mode, seed)] = {k: v["miou16"] for k, v in report["per_appearance"].items()}
    names = list(next(iter(results.values())))
    print(f"trained on {args.train}, {args.iters} iterations x {args.batch} images of "
          f"{args.crop}x{args.crop}; mIoU16 on the val split")
    print(f"{'mode':9s} {'seed':>4s} " + " ".join(f"{n:>7s}" for n in names))
    for (mode, seed), per in results.items():
        print(f"{mode:9s} {seed:>4s} " + " ".join(f"{per[n]:7.1%}" for n in names))
    for mode in args.modes.split(","):
        rows = [per for (m, _), per in results.items() if m == mode]
        print(f"{mode:9s} mean " + " ".join(
            f"{statistics.mean(r[n] for r in rows):7.1%}" for n in names))


if __name__ == "__main__":
    main()
