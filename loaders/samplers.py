"""Rare-class sampling (DAFormer): draw a class by rarity, then a layout that shows it,
then re-crop until the crop shows enough of that class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from carla4agt_data.errors import UserError


class RareClassSampler(Sampler):
    """Samples items so that layouts showing rare classes come up more often.

    Class c is drawn with probability proportional to ``exp((1 - f_c) / temperature)``,
    where f_c is its share of labelled pixels in the dataset (from the stored per-layout
    class pixel counts); then a layout with at least ``min_pixels`` pixels of c, uniformly;
    then one of that layout's items. Hoyer et al., DAFormer (CVPR 2022), section 3.3.

    Args:
        dataset: a :class:`PairedAppearanceDataset` or :class:`AppearanceDataset`.
        temperature: lower values favour rare classes more (DAFormer: 0.01).
        num_samples: items per epoch (default: ``len(dataset)``).
        min_pixels: pixels of a class a layout needs to count as showing it (DAFormer: 3000).
        seed: base seed; the epoch set by :meth:`set_epoch` is added to it.
        max_layouts: use only the first N layouts of the dataset (0: all).
        with_class: yield ``(index, class)`` for :class:`RareClassCrop` instead of indices.
    """

    def __init__(self, dataset, *, temperature: float = 0.01, num_samples: int | None = None,
                 min_pixels: int = 1, seed: int = 0, max_layouts: int = 0,
                 with_class: bool = False) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.dataset = dataset
        pixels = np.asarray(dataset.layout_class_pixels, dtype=np.float64)  # [L, K]
        if max_layouts:
            pixels = pixels[:max_layouts]
        per_layout = dataset.items_per_layout
        self.num_samples = len(pixels) * per_layout if num_samples is None else num_samples
        self.seed = seed
        self.epoch = 0
        self.with_class = with_class
        freq = pixels.sum(axis=0) / max(pixels.sum(), 1.0)
        self.layouts_with = [np.flatnonzero(pixels[:, c] >= max(min_pixels, 1))
                             for c in range(pixels.shape[1])]
        usable = (freq > 0) & np.array([len(x) > 0 for x in self.layouts_with])
        if not usable.any():
            raise UserError(f"Rare-class sampling: no class covers {min_pixels} pixels in any "
                            "training layout. Lower --rcs-min-pixels (the images may be "
                            "small) or turn it off with --no-rcs.")
        logits = np.where(usable, (1.0 - freq) / temperature, -np.inf)
        probs = np.exp(logits - logits[usable].max())
        self.class_probs = probs / probs.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[Any]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per_layout = self.dataset.items_per_layout
        classes = rng.choice(len(self.class_probs), size=self.num_samples, p=self.class_probs)
        for c in classes:
            candidates = self.layouts_with[c]
            position = int(candidates[rng.integers(len(candidates))])
            index = position * per_layout + int(rng.integers(per_layout))
            yield (index, int(c)) if self.with_class else index

    def class_weights(self) -> torch.Tensor:
        """Sampling probability of each class (for logging)."""
        return torch.from_numpy(self.class_probs)


class RareClassCrop(Dataset):
    """Takes ``(index, class)`` from :class:`RareClassSampler` and reads the item again (a new
    random crop) up to ``tries`` times until the crop has more than ``min_crop_pixels``
    pixels of the class (DAFormer: 10 tries, 0.5 x min_pixels); plain indices pass through.
    """

    def __init__(self, dataset, min_crop_pixels: float, tries: int = 10) -> None:
        self.dataset = dataset
        self.min_crop_pixels = min_crop_pixels
        self.tries = tries

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, cls = key
        item = self.dataset[index]
        for _ in range(self.tries - 1):
            if int((item["label"] == cls).sum()) > self.min_crop_pixels:
                break
            item = self.dataset[index]
        return item
