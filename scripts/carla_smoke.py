"""Smoke test against a real CARLA server: render three layouts, pack them, verify them.

Run it where a CARLA 0.9.14+ server answers (it has not met one on the machines this
project is developed on):

    python scripts/carla_smoke.py --host localhost --port 2000 --out /tmp/carla-smoke

It exits non-zero when any step fails, and prints where the files are.
"""

from __future__ import annotations

import argparse
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
    print(f"OK: raw folders, dataset, report and {args.out / 'sheet.png'} are in {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
