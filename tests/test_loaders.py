"""Torch loaders: alignment through augmentation, pairing, workers, samplers, folders."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.transforms import v2

from carla4agt_data.errors import UserError
from loaders import (
    AppearanceDataset,
    PairedAppearanceDataset,
    RareClassSampler,
    acdc,
    cityscapes,
    denormalize,
    image_folder,
    joint_transforms,
)

from .synthetic import code, synthetic_dataset


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("loaders") / "syn.h5")


def _uint8(image: torch.Tensor) -> np.ndarray:
    return denormalize(image).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def test_alignment_survives_joint_augmentation(h5):
    ds = PairedAppearanceDataset(h5, "all", pairing="all", seed=3,
                                 transforms=joint_transforms(48, scale=(0.6, 1.8),
                                                             cat_max_ratio=0.75),
                                 photometric=None)
    checked = 0
    for index in range(0, len(ds), 5):
        item = ds[index]
        a, b = _uint8(item["image_a"]), _uint8(item["image_b"])
        label = item["label"].numpy()
        assert label.shape == (48, 48) and item["image_a"].shape == (3, 48, 48)
        assert set(np.unique(label)) <= set(range(16)) | {255}
        # Red and green are identical in A and B (blue says which appearance it is).
        assert (np.abs(a[..., :2].astype(int) - b[..., :2]) <= 1).all()
        ka, kb = ds.reader.appearances.index(item["appearance_a"]), \
            ds.reader.appearances.index(item["appearance_b"])
        padded = (a == 0).all(axis=-1)
        assert (np.abs(a[..., 2][~padded].astype(int) - 40 * ka) <= 1).all()
        assert (np.abs(b[..., 2][~padded].astype(int) - 40 * kb) <= 1).all()
        # Where the label is uniform in a 3x3 window, the image's red encodes that label.
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(label, 1, mode="edge"), (3, 3))
        uniform = (windows == label[..., None, None]).all(axis=(-1, -2)) & (label != 255)
        assert uniform.sum() > 100
        # (+-1 for float rounding; neighbouring labels differ by 15 or more)
        assert (np.abs(a[..., 0][uniform].astype(int) - code(label)[uniform]) <= 1).all()
        checked += 1
    assert checked >= 10


def test_photometric_is_independent_per_appearance(h5):
    jitter = v2.ColorJitter(brightness=0.5)
    ds = PairedAppearanceDataset(h5, "all", pairing=("noon", "sunset"), photometric=jitter,
                                 normalize=False, seed=1)
    item = ds[0]
    ratio = item["image_a"][0].mean() / item["image_b"][0].mean()
    assert abs(float(ratio) - 1) > 0.01  # same red content, different jitter draws
    plain = PairedAppearanceDataset(h5, "all", pairing=("noon", "sunset"), normalize=False)[0]
    assert float(plain["image_a"].max()) <= 1.0 and plain["image_a"].dtype == torch.float32


def test_pairing_modes_and_lengths(h5):
    n = len(PairedAppearanceDataset(h5, "all"))
    assert n == 6
    all_pairs = PairedAppearanceDataset(h5, "all", pairing="all")
    assert len(all_pairs) == 6 * 12
    seen = {(all_pairs[i]["appearance_a"], all_pairs[i]["appearance_b"]) for i in range(12)}
    assert seen == set(itertools.permutations(("noon", "sunset", "night", "fog"), 2))
    two = PairedAppearanceDataset(h5, "all", pairing="all", appearances=["noon", "fog"])
    assert len(two) == 12
    fixed = PairedAppearanceDataset(h5, "all", pairing=("night", "fog"))
    assert {(fixed[i]["appearance_a"], fixed[i]["appearance_b"]) for i in range(6)} == {
        ("night", "fog")}
    rand = PairedAppearanceDataset(h5, "all", seed=0)
    items = [rand[i % 6] for i in range(60)]
    pairs = [(item["appearance_a"], item["appearance_b"]) for item in items]
    assert all(a != b for a, b in pairs) and len(set(pairs)) > 4
    stack = PairedAppearanceDataset(h5, "all", all_appearances=True)[2]
    assert stack["images"].shape == (4, 3, 64, 128) and stack["appearances"][0] == "noon"
    single = AppearanceDataset(h5, "all", appearances=["fog", "noon"])
    assert len(single) == 12 and single[1]["appearance"] == "noon"
    assert single[1]["layout_id"] == "synthetic-000"
    with pytest.raises(IndexError):
        single[12]


def test_splits_select_layouts(h5):
    sizes = [len(PairedAppearanceDataset(h5, s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 6


def _batches(h5, context, workers, seed=5):
    ds = PairedAppearanceDataset(h5, "all", pairing="random", seed=seed,
                                 transforms=joint_transforms(32, scale=(0.5, 1.5)))
    loader = DataLoader(ds, batch_size=2, num_workers=workers,
                        multiprocessing_context=context if workers else None,
                        persistent_workers=workers > 0, shuffle=False)
    out = []
    for _ in range(2):  # two epochs through persistent workers
        out.extend(loader)
    return out


# spawn re-imports torch in every worker (7 s of a quiet 2-core machine): slow; forkserver
# covers the pickled-dataset path in the fast suite.
@pytest.mark.parametrize("context", [pytest.param("spawn", marks=pytest.mark.slow),
                                     "forkserver", "fork"])
def test_workers_and_determinism(h5, context):
    first = _batches(h5, context, 2)
    again = _batches(h5, context, 2)
    assert len(first) == 6 and first[0]["image_a"].shape == (2, 3, 32, 32)
    for x, y in zip(first, again, strict=True):
        torch.testing.assert_close(x["image_a"], y["image_a"])
        torch.testing.assert_close(x["label"], y["label"])
        assert x["appearance_a"] == y["appearance_a"]
    assert not torch.equal(first[0]["image_a"], first[3]["image_a"])  # epochs differ


def test_distributed_sampler_partitions(h5):
    ds = PairedAppearanceDataset(h5, "all", pairing="all")
    parts = [list(DistributedSampler(ds, num_replicas=3, rank=r, shuffle=True, seed=1))
             for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(len(ds)))


def test_rare_class_sampler_favours_rare_layouts(h5):
    ds = PairedAppearanceDataset(h5, "all", pairing="all")
    sampler = RareClassSampler(ds, temperature=0.01, num_samples=600, seed=0)
    picks = np.array(list(sampler)) // ds.items_per_layout
    share_last = (picks == 5).mean()  # the only layout with class 15
    assert share_last > 2 / 6
    assert list(sampler) == list(RareClassSampler(ds, num_samples=600, seed=0))
    sampler.set_epoch(1)
    assert list(sampler) != list(RareClassSampler(ds, num_samples=600, seed=0))


def test_clear_errors(h5, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        PairedAppearanceDataset(tmp_path / "missing.h5")
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(UserError, match="not a carla4agt dataset"):
        PairedAppearanceDataset(tmp_path / "other.h5")
    with pytest.raises(UserError, match="Unknown appearance 'rain'"):
        PairedAppearanceDataset(h5, appearances=["noon", "rain"])
    with pytest.raises(UserError, match="Unknown split 'training'"):
        AppearanceDataset(h5, "training")
    with pytest.raises(UserError, match="Unknown pairing"):
        PairedAppearanceDataset(h5, pairing="some")
    with pytest.raises(UserError, match="at least two"):
        PairedAppearanceDataset(h5, appearances=["noon"])


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_cityscapes_and_acdc_folders(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (16, 32, 3), dtype=np.uint8)
    lab = np.full((16, 32), 13, np.uint8)  # Cityscapes trainId 13 = car
    lab[:, :8] = 9  # terrain: not in the 16 classes
    lab[:4] = 255
    root = tmp_path / "cs"
    _png(root / "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png", rgb)
    _png(root / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelTrainIds.png", lab)
    ds = cityscapes(root, "val", normalize=False)
    item = ds[0]
    assert len(ds) == 1 and item["image"].shape == (3, 16, 32)
    label = item["label"].numpy()
    assert (label[4:, 8:] == 12).all() and (label[:, :8] == 255).all() and (label[:4] == 255).all()
    np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0), rgb)

    acdc_root = tmp_path / "acdc"
    _png(acdc_root / "rgb_anon/fog/val/GOPR0475/GOPR0475_frame_000041_rgb_anon.png", rgb)
    _png(acdc_root / "gt/fog/val/GOPR0475/GOPR0475_frame_000041_gt_labelTrainIds.png", lab)
    assert acdc(acdc_root, "fog", "val")[0]["label"].shape == (16, 32)
    with pytest.raises(UserError, match="expected the folders rgb_anon/night/val/"):
        acdc(acdc_root, "night", "val")
    with pytest.raises(UserError, match="Unknown ACDC condition"):
        acdc(acdc_root, "sandstorm")
    with pytest.raises(UserError, match="leftImg8bit/train/, gtFine/train/"):
        cityscapes(root, "train")


def test_image_folder_with_and_without_labels(tmp_path):
    rgb = np.zeros((8, 16, 3), np.uint8)
    _png(tmp_path / "t/images/a.png", rgb)
    _png(tmp_path / "t/images/b.jpg", rgb)
    unlabelled = image_folder(tmp_path / "t")
    assert len(unlabelled) == 2 and "label" not in unlabelled[0]
    _png(tmp_path / "t/labels/a_labelTrainIds.png", np.zeros((8, 16), np.uint8))
    with pytest.raises(UserError, match="lacks 1 label files"):
        image_folder(tmp_path / "t")
    _png(tmp_path / "t/labels/b_labelTrainIds.png", np.full((8, 16), 18, np.uint8))
    assert (image_folder(tmp_path / "t")[1]["label"] == 15).all()  # bicycle: 18 -> 15
    with pytest.raises(UserError, match="expected the folders images/"):
        image_folder(tmp_path / "nowhere")
