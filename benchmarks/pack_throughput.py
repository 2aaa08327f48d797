"""Throughput of `carla4agt pack` against its limit, and file size, whole processes.

The limit is decoding the same raw folder (PNG decode, checksums, tag remapping: what the
pack workers do) with the same number of processes, writing nothing. Both are timed as
fresh processes in the same run; the ratio limit/pack is the share of the limit reached.

    carla4agt generate --layouts 100 --out /tmp/bench-raw --no-pack
    python benchmarks/pack_throughput.py /tmp/bench-raw
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _timing import timed

from carla4agt_data.pack import _decode
from carla4agt_data.raw import RawFolder, complete_layouts


def decode_only(raw: Path, workers: int) -> None:
    ids = RawFolder(raw).ids
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for _ in pool.map(_decode, [raw] * len(ids), ids, [16] * len(ids), chunksize=1):
            pass



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--decode-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compression", default="gzip-1,lzf,none")
    args = parser.parse_args()
    if args.decode_only:
        decode_only(args.raw, args.workers)
        return
    n = len(complete_layouts(args.raw))
    raw_bytes = sum(p.stat().st_size for p in args.raw.rglob("*") if p.is_file())
    limit = timed([sys.executable, __file__, str(args.raw), "--decode-only",
                    "--workers", str(args.workers)])
    print(f"{n} layouts, raw folder {raw_bytes / 2**20:.0f} MiB; decode only with "
          f"{args.workers} processes: {n / limit:.1f} layouts/s")
    with tempfile.TemporaryDirectory() as tmp:
        for comp in args.compression.split(","):
            out = Path(tmp) / f"{comp}.h5"
            seconds = timed([sys.executable, "-m", "carla4agt", "pack", str(args.raw),
                              "-o", str(out), "--compression", comp, "--pack-workers",
                              str(args.workers), "--no-progress"])
            size = out.stat().st_size
            print(f"pack --compression {comp:7s}: {n / seconds:5.1f} layouts/s, "
                  f"{limit / seconds:.2f} of the limit, file {size / raw_bytes:.0%} of the raw "
                  "folder")


if __name__ == "__main__":
    main()
