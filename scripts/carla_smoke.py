"""Smoke test against a real CARLA server: render three layouts, pack them, verify them.

Run it first where a CARLA 0.9.14+ server answers (it has not met one on the machines this
project is developed on):

    python scripts/carla_smoke.py --host localhost --port 2000 --out /tmp/carla-smoke

It exits non-zero when any step fails, prints where the files are, and the seconds each
layout's capture took on this server (to compare with `benchmarks/carla_cost.py`'s
estimate from the stand-in).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", default="2000")
    parser.add_argument("--out", type=Path, default=Path("carla-smoke"))
    parser.add_argument("--timeout", default="60")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "carla4agt"]
    steps = [
        [*cli, "generate", "--layouts", "3", "--weathers", "all", "--backend", "carla",
         "--host", args.host, "--port", args.port, "--timeout", args.timeout, "--workers", "1",
         "--out", str(args.out / "raw"), "--dataset", str(args.out / "smoke.h5")],
        [*cli, "verify", str(args.out / "raw")],
        [*cli, "verify", str(args.out / "smoke.h5")],
        [*cli, "preview", str(args.out / "smoke.h5"), "-o", str(args.out / "sheet.png")],
    ]
    for step in steps:
        print("$", " ".join(step[2:]), flush=True)
        if subprocess.run(step).returncode != 0:
            print(f"FAILED: {' '.join(step[2:])}", file=sys.stderr)
            return 1
    for path in sorted((args.out / "raw").glob("*/commit.json")):
        marker = json.loads(path.read_text())
        seconds = marker.get("timings", {}).get("render_all", float("nan"))
        server = marker.get("versions", {}).get("carla_server", "?")
        print(f"{path.parent.name}: captured in {seconds:.2f} s on CARLA {server}")
    print(f"OK: raw folders, dataset, report and {args.out / 'sheet.png'} are in {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
