"""Paired samples per second from PairedAppearanceDataset against a PNG baseline.

At the stored size (1024x512 from `carla4agt generate`), 512x512 crops, batch 8, 2 workers:
- PairedAppearanceDataset on the HDF5 file;
- baseline: the same pairs read with PIL from the Cityscapes PNG export, same transforms;
- limit: reading the same HDF5 chunks without decompressing or converting them;
all measured in this run, plus the RSS of each worker after each of 5 epochs.

    carla4agt generate --layouts 60 --out /tmp/bench-raw --dataset /tmp/bench.h5
    python benchmarks/loader_throughput.py /tmp/bench.h5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

try:  # for datasets packed with --compression zstd-N / lz4
    import hdf5plugin  # noqa: F401
except ImportError:
    pass

from carla4agt_data.dataset import open_dataset
from carla4agt_data.export import export
from loaders import PairedAppearanceDataset, joint_transforms
from loaders.transforms import to_float


class PngPairs(Dataset):
    """The baseline: two appearances and the label from the PNG export, via PIL."""

    def __init__(self, root: Path, path: Path) -> None:
        ds = open_dataset(path)
        self.items = [(str(lid), ds.appearances) for lid in ds.layout_ids]
        self.root = root
        self.transforms = joint_transforms(512)
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        lid, names = self.items[i]
        a, b = self.rng.choice(len(names), 2, replace=False)
        images = []
        for k in (a, b):
            name = names[k]
            path = next((self.root / "leftImg8bit").glob(f"*/{name}/{lid}_{name}_leftImg8bit.png"))
            images.append(np.asarray(Image.open(path).convert("RGB")))
        label_path = next((self.root / "gtFine").glob(
            f"*/{names[a]}/{lid}_{names[a]}_gtFine_labelTrainIds.png"))
        label = np.asarray(Image.open(label_path))
        ta, tb = (tv_tensors.Image(torch.from_numpy(im.copy()).permute(2, 0, 1)) for im in images)
        ta, tb, mask = self.transforms(ta, tb, tv_tensors.Mask(torch.from_numpy(label.copy())))
        return {"image_a": to_float(ta, True), "image_b": to_float(tb, True),
                "label": torch.as_tensor(mask).long()}


class RawChunks(Dataset):
    """The limit: the compressed chunks of two images and the label, not decoded."""

    def __init__(self, path: Path) -> None:
        self.path, self.n, self.f = path, len(open_dataset(path)), None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.f is None:
            self.f = h5py.File(self.path, "r")
        out = [self.f["rgb"].id.read_direct_chunk((i, k, 0, 0, 0))[1] for k in (0, 1)]
        out.append(self.f["label"].id.read_direct_chunk((i, 0, 0))[1])
        return sum(len(b) for b in out)


def rate(dataset: Dataset, epochs: int, rss: bool = False) -> tuple[float, list[list[int]]]:
    loader = DataLoader(dataset, batch_size=8, num_workers=2, shuffle=True,
                        persistent_workers=True, multiprocessing_context="fork")
    memory: list[list[int]] = []
    for _ in loader:  # warm-up epoch: worker start, file opening
        pass
    start, samples = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            samples += len(batch["label"]) if isinstance(batch, dict) else len(batch)
        if rss:
            memory.append([_rss(w.pid) for w in loader._iterator._workers])
    return samples / (time.perf_counter() - start), memory


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    paired = PairedAppearanceDataset(args.dataset, "all", transforms=joint_transforms(512),
                                     seed=0)
    ours, memory = rate(paired, args.epochs, rss=True)
    with tempfile.TemporaryDirectory() as tmp:
        export(args.dataset, Path(tmp), "cityscapes", progress=False)
        baseline, _ = rate(PngPairs(Path(tmp), args.dataset), args.epochs)
    limit, _ = rate(RawChunks(args.dataset), args.epochs)
    print(f"{len(paired)} layouts, batch 8, 512x512 crops, 2 workers, {args.epochs} epochs")
    print(f"PairedAppearanceDataset (HDF5): {ours:6.1f} pairs/s")
    print(f"baseline, PNG export via PIL:   {baseline:6.1f} pairs/s  -> ratio "
          f"{ours / baseline:.2f}")
    print(f"limit, raw HDF5 chunks:         {limit:6.1f} pairs/s  -> ours / limit "
          f"{ours / limit:.2f}")
    print("worker RSS (MiB) after each epoch: " + "; ".join(
        "/".join(str(m) for m in epoch) for epoch in memory))


if __name__ == "__main__":
    main()
