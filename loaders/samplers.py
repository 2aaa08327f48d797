"""Rare-class sampling (DAFormer): draw a class by rarity, then a layout that shows it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class RareClassSampler(Sampler[int]):
    """Samples items so that layouts showing rare classes come up more often.

    Class c is drawn with probability proportional to ``exp((1 - f_c) / temperature)``,
    where f_c is its share of labelled pixels in the dataset (from the stored per-layout
    class pixel counts); then a layout with at least ``min_pixels`` pixels of c, uniformly;
    then one of that layout's items. Hoyer et al., DAFormer (CVPR 2022), section 3.3.

    Args:
        dataset: a :class:`PairedAppearanceDataset` or :class:`AppearanceDataset`.
        temperature: lower values favour rare classes more (DAFormer: 0.01).
        num_samples: items per epoch (default: ``len(dataset)``).
        min_pixels: pixels of a class a layout needs to count as showing it.
        seed: base seed; the epoch set by :meth:`set_epoch` is added to it.
    """

    def __init__(self, dataset, *, temperature: float = 0.01, num_samples: int | None = None,
                 min_pixels: int = 1, seed: int = 0) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.dataset = dataset
        self.num_samples = len(dataset) if num_samples is None else num_samples
        self.seed = seed
        self.epoch = 0
        pixels = np.asarray(dataset.layout_class_pixels, dtype=np.float64)  # [L, K]
        freq = pixels.sum(axis=0) / max(pixels.sum(), 1.0)
        present = freq > 0
        logits = np.where(present, (1.0 - freq) / temperature, -np.inf)
        probs = np.exp(logits - logits[present].max())
        self.class_probs = probs / probs.sum()
        self.layouts_with = [np.flatnonzero(pixels[:, c] >= min_pixels)
                             for c in range(pixels.shape[1])]
        self.class_probs[[len(x) == 0 for x in self.layouts_with]] = 0
        self.class_probs /= self.class_probs.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per_layout = self.dataset.items_per_layout
        classes = rng.choice(len(self.class_probs), size=self.num_samples, p=self.class_probs)
        for c in classes:
            candidates = self.layouts_with[c]
            position = int(candidates[rng.integers(len(candidates))])
            yield position * per_layout + int(rng.integers(per_layout))

    def class_weights(self) -> torch.Tensor:
        """Sampling probability of each class (for logging)."""
        return torch.from_numpy(self.class_probs)
