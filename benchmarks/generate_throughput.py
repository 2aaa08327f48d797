"""Throughput and memory of `carla4agt generate` (built-in renderer), whole process.

Runs the real command in fresh processes and reports layouts per second (all four
appearances at 1024x512, PNG writing included), the ratio of 2 workers to 1 worker measured
in the same run, the split of time per layout from the commit markers, and the peak
resident memory of a run at each size.

    python benchmarks/generate_throughput.py                 # 100 layouts, workers 1 and 2
    python benchmarks/generate_throughput.py --memory 100,1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run(layouts: int, workers: int, out: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KiB, the largest process) of one generate run."""
    cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "carla4agt", "generate",
           "--layouts", str(layouts), "--weathers", "all", "--size", "1024x512", "--out",
           str(out), "--workers", str(workers), "--backend", "builtin", "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(proc.stdout.split()[-1])


def split(out: Path) -> dict[str, float]:
    """Median seconds per layout of each stage, from the commit markers."""
    markers = [json.loads(p.read_text()) for p in out.glob("*/commit.json")]
    stages: dict[str, list[float]] = {}
    for m in markers:
        stages.setdefault("scene build, label, G-buffer", []).append(m["timings"]["scene"])
        for name, seconds in m["render_seconds"].items():
            stages.setdefault(f"lighting {name}", []).append(seconds)
        stages.setdefault("PNG encode + write (other thread)", []).append(
            m["timings"]["encode_write"])
    return {k: statistics.median(v) for k, v in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", type=int, default=100)
    parser.add_argument("--memory", default="", help="comma-separated run sizes for peak RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            seconds, peak = run(args.layouts, workers, out)
            rates[workers] = args.layouts / seconds
            print(f"workers={workers}: {args.layouts} layouts in {seconds:.1f} s = "
                  f"{rates[workers]:.2f} layouts/s (peak RSS {peak / 1024:.0f} MiB)")
        print(f"ratio workers=2 / workers=1: {rates[2] / rates[1]:.2f}")
        print("median seconds per layout, workers=1:")
        for stage, seconds in split(Path(tmp) / "w1").items():
            print(f"  {stage:36s} {seconds * 1000:6.1f} ms")
        for size in [int(s) for s in args.memory.split(",") if s]:
            seconds, peak = run(size, 2, Path(tmp) / f"m{size}")
            print(f"memory: {size} layouts (workers=2) in {seconds:.0f} s, "
                  f"peak RSS {peak / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
