"""Reading a carla4agt HDF5 dataset: :func:`open_dataset`.

The reader validates the file once, keeps the small tables (ids, splits, class counts) as
numpy arrays, and opens the HDF5 file lazily in each process that reads images, so one
object can be handed to DataLoader workers under fork, spawn or forkserver.

Example:
    >>> ds = open_dataset("dataset.h5")
    >>> len(ds), ds.appearances
    (50, ('noon', 'sunset', 'night', 'fog'))
    >>> rgb = ds.read_rgb(0, "fog")          # uint8 [H, W, 3]
    >>> label = ds.read_label(0)             # uint8 [H, W], trainIds, 255 = ignore
    >>> train = ds.split_indices("train")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import DamagedFileError, MissingFileError, UserError
from .schema import SPLIT_NAMES, CheckedFile, check_file
from .taxonomy import SegClass, classes


class CarlaDataset:
    """A read-only view of one carla4agt HDF5 file (use :func:`open_dataset`).

    Args:
        path: the ``.h5`` file.
        locking: HDF5 file locking; ``False`` on network file systems that lack it
            (or set ``HDF5_USE_FILE_LOCKING=FALSE``). ``None`` keeps HDF5's default.
    """

    def __init__(self, path: str | Path, *, locking: bool | None = None) -> None:
        self.path = Path(path)
        self.locking = locking
        self._file: h5py.File | None = None
        self._pid = -1
        f = self._open()
        try:
            checked = self._checked(f)
        except BaseException:
            f.close()
            raise
        self.attrs = checked.attrs
        self.layout_ids = checked.layout_ids  # fixed-width unicode: no per-object refcounts
        self.splits = checked.splits  # that would break copy-on-write in DataLoader workers
        self.class_pixels = checked.class_pixels
        self.ignore_pixels = checked.ignore_pixels
        self.label_mismatch = checked.label_mismatch
        self._appearances = checked.appearances
        self._index = {str(lid): i for i, lid in enumerate(self.layout_ids)}
        self._file, self._pid = f, os.getpid()

    # --- metadata -------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.attrs["schema_version"])

    @property
    def appearances(self) -> tuple[str, ...]:
        return self._appearances

    @property
    def num_classes(self) -> int:
        return int(self.attrs["num_classes"])

    @property
    def classes(self) -> tuple[SegClass, ...]:
        return classes(self.num_classes)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every image."""
        return int(self.attrs["width"]), int(self.attrs["height"])

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(str(b) for b in self.attrs["backends"])

    @property
    def versions(self) -> dict[str, Any]:
        return json.loads(self.attrs["versions"])

    @property
    def dataset_id(self) -> str:
        return str(self.attrs.get("dataset_id", ""))

    @property
    def run_id(self) -> str:
        return str(self.attrs.get("run_id", ""))

    def __len__(self) -> int:
        return len(self.layout_ids)

    def split_indices(self, split: str) -> np.ndarray:
        """Layout indices of ``"train"``, ``"val"``, ``"test"`` or ``"all"``."""
        if split == "all":
            return np.arange(len(self))
        if split not in SPLIT_NAMES:
            raise UserError(f"Unknown split {split!r}. Valid values are "
                            + ", ".join(repr(s) for s in (*SPLIT_NAMES, "all")) + ".")
        return np.flatnonzero(self.splits == SPLIT_NAMES.index(split))

    def index_of(self, layout_id: str) -> int:
        try:
            return self._index[layout_id]
        except KeyError:
            raise UserError(f"{self.path}: no layout {layout_id!r}.") from None

    def appearance_index(self, appearance: int | str) -> int:
        if isinstance(appearance, str):
            if appearance not in self.appearances:
                raise UserError(f"Unknown appearance {appearance!r}. This dataset has "
                                + ", ".join(self.appearances) + ".")
            return self.appearances.index(appearance)
        if not 0 <= appearance < len(self.appearances):
            raise IndexError(f"appearance {appearance} out of range 0..{len(self.appearances) - 1}")
        return int(appearance)

    # --- data -----------------------------------------------------------------------
    def read_rgb(self, index: int, appearance: int | str) -> np.ndarray:
        """One image: ``uint8 [H, W, 3]``."""
        a = self.appearance_index(appearance)
        return self._read("rgb", (index, a), f"layout {index}, appearance {a}")

    def read_layout(self, index: int) -> np.ndarray:
        """Every appearance of one layout: ``uint8 [A, H, W, 3]``."""
        return self._read("rgb", (index,), f"layout {index}")

    def read_label(self, index: int) -> np.ndarray:
        """The label map shared by every appearance: ``uint8 [H, W]`` (255 = ignore)."""
        return self._read("label", (index,), f"the label of layout {index}")

    def read_layout_yaml(self, index: int) -> str:
        return self._data()["layout_yaml"].asstr()[index]

    def _read(self, name: str, where: tuple[int, ...], what: str) -> np.ndarray:
        try:
            return self._data()[name][where]
        except OSError as exc:  # Fletcher-32 mismatch, a damaged chunk or filter
            gist = (getattr(exc, "strerror", None) or str(exc)).split("(")[0].strip()
            raise DamagedFileError(f"{self.path}: {what} cannot be read ({gist}). The file is "
                                   "damaged there: copy it again, or pack it again.") from None

    # --- file handling --------------------------------------------------------------
    def _open(self) -> h5py.File:
        kwargs = {} if self.locking is None else {"locking": self.locking}
        try:
            return h5py.File(self.path, "r", **kwargs)
        except FileNotFoundError:
            raise MissingFileError(f"{self.path}: no such file. Create it with carla4agt "
                                   "pack.") from None
        except IsADirectoryError:
            raise UserError(f"{self.path}: is a folder, not an HDF5 dataset. Pass a .h5 file "
                            "(a raw folder is read by pack, stats and preview).") from None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot be read as HDF5 ({exc}). Is it a carla4agt "
                            "dataset? A partial copy? Pack it again.") from None

    def _checked(self, f: h5py.File) -> CheckedFile:
        compression = f.attrs.get("compression", "")
        if isinstance(compression, bytes):
            compression = compression.decode("utf-8", "replace")
        if str(compression).startswith(("zstd", "lz4")):
            try:  # registers the filter with HDF5
                import hdf5plugin  # noqa: F401
            except ImportError:
                raise UserError(f"{self.path} is compressed with {compression}, which needs the "
                                "hdf5plugin package: pip install 'carla4agt[plugins]'.") from None
        try:
            return check_file(f, self.path)
        except UserError:
            raise
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            # HDF5's own words are cryptic; say what it means for the user
            raise UserError(f"{self.path}: cannot be read as a carla4agt dataset "
                            f"({type(exc).__name__}: {str(exc)[:200]}). Is it a partial copy, "
                            "or written by another tool? Pack it again.") from None

    def _data(self) -> h5py.File:
        # A handle must not cross a fork; after one (DataLoader workers) open anew.
        if self._file is None or self._pid != os.getpid():
            self._file = self._open()
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self) -> CarlaDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1  # h5py handles do not pickle
        return state

    def __repr__(self) -> str:
        w, h = self.size
        status = "" if self._file is not None else ", closed"
        return (f'<carla4agt dataset "{self.path.name}": {len(self)} layouts x '
                f"{len(self.appearances)} appearances ({', '.join(self.appearances)}), {w}x{h}, "
                f"{self.num_classes} classes, schema {self.schema_version}{status}>")


def open_dataset(path: str | Path, *, locking: bool | None = None) -> CarlaDataset:
    """Open a carla4agt HDF5 dataset for reading (see :class:`CarlaDataset`)."""
    return CarlaDataset(path, locking=locking)
