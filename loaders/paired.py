"""torch datasets over a carla4agt HDF5 file: pairs of appearances, or single images.

Item contract of :class:`PairedAppearanceDataset` (default collate stacks it):

    image_a       float32 [3, H, W]  appearance A (ImageNet-normalised, or [0, 1])
    image_b       float32 [3, H, W]  appearance B of the same layout, pixel-aligned with A
    label         int64   [H, W]     trainIds shared by A and B, 255 = ignore
    appearance_a  str                e.g. "noon"
    appearance_b  str                e.g. "fog"
    layout_id     str
    index         int                the item's index in the dataset

With ``all_appearances=True`` an item has ``images`` float32 [K, 3, H, W] and
``appearances`` (K names) instead of the A/B keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info
from torchvision import tv_tensors

from carla4agt_data.dataset import CarlaDataset, open_dataset
from carla4agt_data.errors import UserError

from .transforms import to_float

Transform = Callable[..., Any]


class _CarlaSplit(Dataset):
    """What both datasets share: the file, the split, the appearances, seeded randomness."""

    def __init__(self, path: str | Path, split: str, appearances: Sequence[str] | None,
                 transforms: Transform | None, photometric: Transform | None, normalize: bool,
                 seed: int | None, locking: bool | None) -> None:
        self.path = Path(path)
        self.reader: CarlaDataset = open_dataset(path, locking=locking)
        self.split = split
        self.layouts = self.reader.split_indices(split)  # indices into the file, as numpy
        names = list(appearances) if appearances is not None else list(self.reader.appearances)
        for name in names:
            if name not in self.reader.appearances:
                raise UserError(f"Unknown appearance {name!r}: {self.path} has "
                                + ", ".join(self.reader.appearances) + ".")
        if len(set(names)) != len(names):
            raise UserError(f"Appearances are repeated in {names}.")
        self.appearances = tuple(names)
        self.transforms = transforms
        self.photometric = photometric
        self.normalize = normalize
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._generator_key: tuple[int, int] | None = None

    # Per-layout tables for samplers (rows follow self.layouts).
    @property
    def layout_class_pixels(self) -> np.ndarray:
        return self.reader.class_pixels[self.layouts]

    def _item_seed(self) -> int | None:
        """A seed for this item's random draws, or None to use torch's global RNG.

        With ``seed`` set, each process (main or DataLoader worker) draws from its own
        generator seeded with (seed, worker id): results depend only on the seed, the
        sampler's order and the number of workers.
        """
        if self.seed is None:
            return None
        info = get_worker_info()
        key = (info.id if info else -1, info.num_workers if info else 0)
        if self._generator is None or self._generator_key != key:
            self._generator = torch.Generator().manual_seed(self.seed * 1009 + key[0] + 1)
            self._generator_key = key
        return int(torch.randint(0, 2**62, (), generator=self._generator))

    def _augment(self, images: list[np.ndarray], label: np.ndarray,
                 item_seed: int | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        tensors = [tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1))
                   for im in images]
        mask = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(label)))
        with torch.random.fork_rng(devices=[], enabled=item_seed is not None):
            if item_seed is not None:
                torch.manual_seed(item_seed)
            if self.transforms is not None:
                *tensors, mask = self.transforms(*tensors, mask)
            if self.photometric is not None:  # independent per appearance
                tensors = [self.photometric(t) for t in tensors]
        out = [to_float(torch.as_tensor(t), self.normalize) for t in tensors]
        return out, torch.as_tensor(mask).long()

    def _read(self, layout: int, appearances: Sequence[str]) -> tuple[list[np.ndarray],
                                                                      np.ndarray]:
        images = [self.reader.read_rgb(layout, a) for a in appearances]
        return images, self.reader.read_label(layout)

    def __len__(self) -> int:
        raise NotImplementedError  # each dataset counts its own items

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"Number of items: {len(self)}", f"File: {self.path}", f"Split: {self.split}",
                 f"Appearances: {', '.join(self.appearances)}"]
        if self.extra_repr():
            lines.append(self.extra_repr())
        if self.transforms is not None:
            lines.append(f"Transforms: {self.transforms}")
        return f"{type(self).__name__}\n    " + "\n    ".join(lines)


class PairedAppearanceDataset(_CarlaSplit):
    """Two appearances of one layout, with their shared label, for alignment training.

    Args:
        path: a carla4agt HDF5 file.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        appearances: names to draw from (default: every appearance in the file).
        pairing: ``"random"`` (one random ordered pair of distinct appearances per layout
            and item; length = layouts), ``"all"`` (every ordered pair; length = layouts x
            K(K-1)), or a fixed pair such as ``("noon", "fog")`` (length = layouts).
        transforms: joint geometric transform called as ``transforms(image_a, image_b,
            mask)`` on ``tv_tensors`` (see :func:`loaders.joint_transforms`): one draw for
            both images and the label.
        photometric: called on each image separately (uint8 ``[3, H, W]``), e.g.
            ``v2.ColorJitter(0.3, 0.3, 0.3)``: independent per appearance.
        normalize: ImageNet mean/std (default); ``False`` gives floats in [0, 1].
        seed: makes every random draw (pairs, augmentation) depend only on the seed, the
            sampler's order and the number of workers. ``None`` uses torch's global RNG.
        all_appearances: return every appearance at once as ``images [K, 3, H, W]``.
        locking: HDF5 file locking (``False`` on network file systems without it).

    Example:
        >>> from loaders import PairedAppearanceDataset, joint_transforms
        >>> ds = PairedAppearanceDataset("dataset.h5", transforms=joint_transforms(512), seed=0)
        >>> item = ds[0]
        >>> item["image_a"].shape, item["label"].shape, item["appearance_a"]
        (torch.Size([3, 512, 512]), torch.Size([512, 512]), 'sunset')
    """

    def __init__(self, path: str | Path, split: str = "train", *,
                 appearances: Sequence[str] | None = None,
                 pairing: str | tuple[str, str] = "random", transforms: Transform | None = None,
                 photometric: Transform | None = None, normalize: bool = True,
                 seed: int | None = None, all_appearances: bool = False,
                 locking: bool | None = None) -> None:
        super().__init__(path, split, appearances, transforms, photometric, normalize, seed,
                         locking)
        if len(self.appearances) < 2:
            raise UserError(f"Pairs need at least two appearances, got {list(self.appearances)}.")
        self.all_appearances = all_appearances
        if isinstance(pairing, str) and pairing not in ("random", "all"):
            raise UserError(f"Unknown pairing {pairing!r}. Valid values are 'random', 'all', "
                            "or a pair of appearance names such as ('noon', 'fog').")
        if not isinstance(pairing, str):
            pair = tuple(pairing)
            if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(self.appearances):
                raise UserError(f"Invalid pair {pairing!r}: give two different appearances of "
                                + ", ".join(self.appearances) + ".")
            pairing = pair
        self.pairing = pairing
        self.pairs = list(itertools.permutations(self.appearances, 2))

    @property
    def items_per_layout(self) -> int:
        return len(self.pairs) if self.pairing == "all" and not self.all_appearances else 1

    def __len__(self) -> int:
        return len(self.layouts) * self.items_per_layout

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        position, j = divmod(index, self.items_per_layout)
        layout = int(self.layouts[position])
        item_seed = self._item_seed()
        base = {"layout_id": str(self.reader.layout_ids[layout]), "index": index}
        if self.all_appearances:
            images, label = self._read(layout, self.appearances)
            tensors, mask = self._augment(images, label, item_seed)
            return {"images": torch.stack(tensors), "appearances": list(self.appearances),
                    "label": mask, **base}
        if self.pairing == "all":
            a, b = self.pairs[j]
        elif self.pairing == "random":
            a, b = self.pairs[self._draw(len(self.pairs), item_seed)]
        else:
            a, b = cast(tuple[str, str], self.pairing)  # a fixed pair, checked in __init__
        images, label = self._read(layout, (a, b))
        (image_a, image_b), mask = self._augment(images, label, item_seed)
        return {"image_a": image_a, "image_b": image_b, "label": mask, "appearance_a": a,
                "appearance_b": b, **base}

    @staticmethod
    def _draw(n: int, item_seed: int | None) -> int:
        if item_seed is None:
            return int(torch.randint(0, n, ()))
        return int(np.random.default_rng(item_seed).integers(n))

    def extra_repr(self) -> str:
        return f"Pairing: {self.pairing}" + (", all appearances" if self.all_appearances else "")


class AppearanceDataset(_CarlaSplit):
    """One (layout, appearance) image per item: the "train on every appearance" baseline
    and the evaluation set. Items: ``image`` float32 [3, H, W], ``label`` int64 [H, W],
    ``appearance``, ``layout_id``, ``index``; length = layouts x appearances.

    Arguments as in :class:`PairedAppearanceDataset`; ``transforms`` is called as
    ``transforms(image, mask)``.
    """

    def __init__(self, path: str | Path, split: str = "train", *,
                 appearances: Sequence[str] | None = None, transforms: Transform | None = None,
                 photometric: Transform | None = None, normalize: bool = True,
                 seed: int | None = None, locking: bool | None = None) -> None:
        super().__init__(path, split, appearances, transforms, photometric, normalize, seed,
                         locking)

    @property
    def items_per_layout(self) -> int:
        return len(self.appearances)

    def __len__(self) -> int:
        return len(self.layouts) * len(self.appearances)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        position, k = divmod(index, len(self.appearances))
        layout = int(self.layouts[position])
        appearance = self.appearances[k]
        images, label = self._read(layout, (appearance,))
        (image,), mask = self._augment(images, label, self._item_seed())
        return {"image": image, "label": mask, "appearance": appearance,
                "layout_id": str(self.reader.layout_ids[layout]), "index": index}
