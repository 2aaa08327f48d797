"""Throughput of `carla4agt verify` on an HDF5 dataset against its limit, whole processes.

The limit is reading and decoding the same data (every RGB image and label) with the same
number of processes and no checks. Both are timed as fresh processes in one run.

    python benchmarks/verify_throughput.py dataset.h5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _timing import timed

from carla4agt_data.dataset import open_dataset

_DS = {}


def _read(path: str, index: int) -> int:
    if path not in _DS:
        _DS[path] = open_dataset(path)
    ds = _DS[path]
    return int(ds.read_layout(index).shape[0]) + int(ds.read_label(index).shape[0])


def read_only(path: Path, workers: int) -> None:
    n = len(open_dataset(path))
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_read, [str(path)] * n, range(n), chunksize=4))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--read-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_only:
        read_only(args.dataset, args.workers)
        return
    n = len(open_dataset(args.dataset))
    limit = timed([sys.executable, __file__, str(args.dataset), "--read-only",
                    "--workers", str(args.workers)])
    verify = timed([sys.executable, "-m", "carla4agt", "verify", str(args.dataset),
                     "--workers", str(args.workers), "--no-progress"])
    print(f"{n} layouts, {args.workers} processes: read+decode only {n / limit:.1f} layouts/s, "
          f"verify {n / verify:.1f} layouts/s, ratio {limit / verify:.2f}")


if __name__ == "__main__":
    main()
