"""HDF5 schema v1 of a carla4agt dataset: names, attributes, splits, compression choices.

Few large datasets, one image per chunk, every chunk checked by HDF5's Fletcher-32 filter:

    rgb           uint8 [N, A, H, W, 3]   chunks (1, 1, H, W, 3)
    label         uint8 [N, H, W]         chunks (1, H, W); trainIds, 255 = ignore
    layout_id     str   [N]
    layout_yaml   str   [N]               the layout file, verbatim
    split         uint8 [N]               0 train, 1 val, 2 test (hash of the layout id)
    class_pixels  int64 [N, K]            pixels of each class in the label
    ignore_pixels int64 [N]
    label_mismatch int64 [N]              pixels where the appearances' tag maps differed

File attributes: ``format`` ("carla4agt"), ``schema_version``, ``num_classes``,
``class_names``, ``palette``, ``ignore_index``, ``appearances``, ``width``, ``height``,
``backends``, ``is_carla``, ``tag_tables``, ``versions`` (JSON), ``tool_version``,
``created``, ``split_names``, ``split_ratios``, ``compression``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .errors import UserError

FORMAT = "carla4agt"
SCHEMA_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Compression:
    """An HDF5 filter choice for the image datasets."""

    name: str  # as given to --compression: "gzip-1", "lzf", "none", "zstd-3"...
    h5py_kwargs: tuple[tuple[str, Any], ...]  # compression / compression_opts for h5py
    needs_plugin: bool = False  # hdf5plugin must be imported to read it

    def kwargs(self) -> dict[str, Any]:
        return dict(self.h5py_kwargs)


def parse_compression(name: str) -> Compression:
    """``gzip-N`` (N 0..9, readable everywhere), ``lzf`` (h5py only), ``none``, or with the
    optional hdf5plugin package ``zstd-N`` / ``lz4``."""
    text = name.strip().lower()
    if text == "none":
        return Compression("none", ())
    if text == "lzf":
        return Compression("lzf", (("compression", "lzf"),))
    if text.startswith("gzip"):
        level = text[5:] if text.startswith("gzip-") else "4"
        if level.isdigit() and 0 <= int(level) <= 9:
            return Compression(f"gzip-{level}", (("compression", "gzip"),
                                                 ("compression_opts", int(level))))
    if text.startswith("zstd") or text == "lz4":
        try:
            import hdf5plugin
        except ImportError:
            raise UserError(f"Compression {name!r} needs the hdf5plugin package: "
                            "pip install 'carla4agt[plugins]' (or use gzip-N).") from None
        if text == "lz4":
            return Compression("lz4", tuple(hdf5plugin.LZ4().items()), needs_plugin=True)
        level = text[5:] if text.startswith("zstd-") else "3"
        if level.isdigit():
            return Compression(f"zstd-{level}", tuple(hdf5plugin.Zstd(clevel=int(level)).items()),
                               needs_plugin=True)
    raise UserError(f"Unknown compression {name!r}. Valid values are gzip-0 to gzip-9, lzf, "
                    "none, and with hdf5plugin zstd-N or lz4.")


def parse_split_ratios(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> train, val and test shares (they must add up to 1)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise UserError(f"Invalid split ratios {text!r}: give three shares for train, val and "
                        "test that add up to 1, for example 0.8,0.1,0.1.")
    return values  # type: ignore[return-value]


def split_of(layout_id: str, ratios: tuple[float, float, float]) -> int:
    """0 (train), 1 (val) or 2 (test), from a hash of the layout id: the same layout lands in
    the same split in every pack, merge and machine."""
    u = int.from_bytes(hashlib.sha256(layout_id.encode()).digest()[:8], "big") / 2**64
    if u < ratios[0]:
        return 0
    return 1 if u < ratios[0] + ratios[1] else 2
