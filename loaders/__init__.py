"""carla4agt loaders: torch datasets over carla4agt HDF5 files and real target folders.

    >>> from loaders import PairedAppearanceDataset, joint_transforms
"""

from .folders import SegmentationFolder, acdc, cityscapes, image_folder
from .paired import AppearanceDataset, PairedAppearanceDataset
from .samplers import RareClassSampler
from .transforms import RandomScaleCrop, denormalize, joint_transforms

__all__ = [
    "AppearanceDataset", "PairedAppearanceDataset", "RandomScaleCrop", "RareClassSampler",
    "SegmentationFolder", "acdc", "cityscapes", "denormalize", "image_folder",
    "joint_transforms",
]
