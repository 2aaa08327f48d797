"""Class taxonomy: the 16 and 19 Cityscapes-style classes and the CARLA tag tables.

Labels are trainIds: 0..15 in the 16-class (SYNTHIA/Cityscapes) protocol, 0..18 in the
Cityscapes 19-class protocol, and 255 = ignore in both. CARLA's semantic camera writes
tag ids whose numbering changed in 0.9.14; :func:`tag_lut` picks the table from the
server's version string.

Example:
    >>> lut = tag_lut("0.9.16")          # 256-entry uint8 table, CARLA tag -> trainId
    >>> int(lut[24]), int(lut[15])       # road line -> road, truck -> ignore
    (0, 255)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import UserError

IGNORE = 255


@dataclass(frozen=True)
class SegClass:
    """One evaluation class, in the shape of torchvision's ``CityscapesClass``."""

    name: str
    train_id: int  # index in its own protocol (0..15 or 0..18)
    cityscapes_id: int  # Cityscapes labelId (the ids in *_gtFine_labelIds.png)
    cityscapes_train_id: int  # Cityscapes 19-class trainId
    color: tuple[int, int, int]  # RGB, Cityscapes palette


# (name, Cityscapes labelId, colour), in Cityscapes trainId order 0..18.
_CITYSCAPES = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)

CLASSES_19: tuple[SegClass, ...] = tuple(
    SegClass(name, i, cs_id, i, color) for i, (name, cs_id, color) in enumerate(_CITYSCAPES)
)

# The 16-class protocol drops the classes CARLA towns lack or SYNTHIA never labelled.
_NOT_IN_16 = ("terrain", "truck", "train")
CLASSES_16: tuple[SegClass, ...] = tuple(
    SegClass(c.name, i, c.cityscapes_id, c.cityscapes_train_id, c.color)
    for i, c in enumerate(c for c in CLASSES_19 if c.name not in _NOT_IN_16)
)

# The 13-class protocol (mIoU13) further drops wall, fence and pole; trainIds of CLASSES_16.
CLASSES_13_TRAIN_IDS: tuple[int, ...] = tuple(
    c.train_id for c in CLASSES_16 if c.name not in ("wall", "fence", "pole")
)


def classes(num_classes: int) -> tuple[SegClass, ...]:
    """The class table of a protocol: 16 or 19 classes."""
    if num_classes == 16:
        return CLASSES_16
    if num_classes == 19:
        return CLASSES_19
    raise UserError(f"Unknown class protocol {num_classes!r}. Valid values are 16 and 19.")


# CARLA tag tables: tag id -> (carla.CityObjectLabel name, Cityscapes class name or None).
# 0.9.14 and newer (also 0.10.0).
CARLA_TAGS: dict[int, tuple[str, str | None]] = {
    0: ("NONE", None),
    1: ("Roads", "road"),
    2: ("Sidewalks", "sidewalk"),
    3: ("Buildings", "building"),
    4: ("Walls", "wall"),
    5: ("Fences", "fence"),
    6: ("Poles", "pole"),
    7: ("TrafficLight", "traffic light"),
    8: ("TrafficSigns", "traffic sign"),
    9: ("Vegetation", "vegetation"),
    10: ("Terrain", "terrain"),
    11: ("Sky", "sky"),
    12: ("Pedestrians", "person"),
    13: ("Rider", "rider"),
    14: ("Car", "car"),
    15: ("Truck", "truck"),
    16: ("Bus", "bus"),
    17: ("Train", "train"),
    18: ("Motorcycle", "motorcycle"),
    19: ("Bicycle", "bicycle"),
    20: ("Static", None),
    21: ("Dynamic", None),
    22: ("Other", None),
    23: ("Water", None),
    24: ("RoadLines", "road"),
    25: ("Ground", None),
    26: ("Bridge", None),
    27: ("RailTrack", None),
    28: ("GuardRail", None),
}

# 0.9.10 to 0.9.13. One "Vehicles" tag covers cars, trucks, buses and two-wheelers and
# riders are tagged as pedestrians: these versions cannot separate rider, bus, motorcycle
# or bicycle, so vehicles count as car and riders as person.
CARLA_TAGS_LEGACY: dict[int, tuple[str, str | None]] = {
    0: ("Unlabeled", None),
    1: ("Buildings", "building"),
    2: ("Fences", "fence"),
    3: ("Other", None),
    4: ("Pedestrians", "person"),
    5: ("Poles", "pole"),
    6: ("RoadLines", "road"),
    7: ("Roads", "road"),
    8: ("Sidewalks", "sidewalk"),
    9: ("Vegetation", "vegetation"),
    10: ("Vehicles", "car"),
    11: ("Walls", "wall"),
    12: ("TrafficSigns", "traffic sign"),
    13: ("Sky", "sky"),
    14: ("Ground", None),
    15: ("Bridge", None),
    16: ("RailTrack", None),
    17: ("GuardRail", None),
    18: ("TrafficLight", "traffic light"),
    19: ("Static", None),
    20: ("Dynamic", None),
    21: ("Water", None),
    22: ("Terrain", "terrain"),
}

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_carla_version(version: str) -> tuple[int, int, int]:
    """``"0.9.13-dirty"`` -> ``(0, 9, 13)``; raises UserError for anything unreadable."""
    match = _VERSION.match(str(version))
    if not match:
        raise UserError(
            f"Cannot read the CARLA version {version!r}: expected a version such as '0.9.16'."
        )
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def carla_tag_table(version: str) -> dict[int, tuple[str, str | None]]:
    """The tag table of a CARLA server version ("0.9.16", "0.9.13-dirty", "0.10.0")."""
    parsed = parse_carla_version(version)
    if parsed < (0, 9, 10):
        raise UserError(
            f"CARLA {version} is not supported: its semantic tags predate 0.9.10. "
            "Use a CARLA server 0.9.10 or newer (0.9.14+ to tell riders, buses and "
            "two-wheelers apart)."
        )
    return CARLA_TAGS_LEGACY if parsed < (0, 9, 14) else CARLA_TAGS


def tag_lut(version: str, num_classes: int = 16) -> np.ndarray:
    """A 256-entry ``uint8`` table mapping CARLA tag ids to trainIds (255 elsewhere).

    Args:
        version: the CARLA server version the tags come from.
        num_classes: 16 (default) or 19 (Cityscapes trainIds).

    Example:
        >>> labels = tag_lut("0.9.16")[tags]   # tags: uint8 [H, W] -> trainIds [H, W]
    """
    train_ids = {c.name: c.train_id for c in classes(num_classes)}
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for tag, (_, class_name) in carla_tag_table(version).items():
        if class_name in train_ids:
            lut[tag] = train_ids[class_name]
    return lut


# Names of the tag tables as raw commit markers record them ("tag_table").
TAG_TABLE_NAMES = {"0.9.14+": "0.9.14", "0.9.10-0.9.13": "0.9.13"}


def tag_table_name(version: str) -> str:
    """The commit-marker name of the tag table of a CARLA version."""
    return "0.9.10-0.9.13" if carla_tag_table(version) is CARLA_TAGS_LEGACY else "0.9.14+"


def lut_for_table(name: str, num_classes: int = 16) -> np.ndarray:
    """:func:`tag_lut` for a tag table named in a commit marker ("0.9.14+", ...)."""
    if name not in TAG_TABLE_NAMES:
        raise UserError(f"Unknown tag table {name!r} in a commit marker. Valid names are "
                        + ", ".join(TAG_TABLE_NAMES) + "; re-render the layout.")
    return tag_lut(TAG_TABLE_NAMES[name], num_classes)


def palette(num_classes: int = 16) -> np.ndarray:
    """A ``uint8 [256, 3]`` palette: the class colours, black for ignore and unused ids."""
    table = np.zeros((256, 3), dtype=np.uint8)
    for c in classes(num_classes):
        table[c.train_id] = c.color
    return table


def colorize(label: np.ndarray, num_classes: int = 16) -> np.ndarray:
    """Label map ``[H, W]`` of trainIds -> RGB ``uint8 [H, W, 3]`` (ignore is black)."""
    label = np.asarray(label)
    if label.dtype != np.uint8:
        label = np.where((label >= 0) & (label < 256), label, IGNORE).astype(np.uint8)
    return palette(num_classes)[label]


def decolorize(rgb: np.ndarray, num_classes: int = 16) -> np.ndarray:
    """RGB ``[H, W, 3]`` in the class palette -> trainIds ``uint8 [H, W]``.

    Colours that are not a class colour (black included) become 255.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"Expected an RGB image of shape [H, W, 3], got {rgb.shape}.")
    rgb32 = rgb.astype(np.uint32)
    keys = (rgb32[..., 0] << 16) | (rgb32[..., 1] << 8) | rgb32[..., 2]
    out = np.full(keys.shape, IGNORE, dtype=np.uint8)
    for c in classes(num_classes):
        r, g, b = c.color
        out[keys == ((r << 16) | (g << 8) | b)] = c.train_id
    return out
