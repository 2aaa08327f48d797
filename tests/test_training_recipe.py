"""Training faithful to DAFormer and DACS (issue 14, items 3 to 10), the MiT models, the
config file. Tiny sizes: 64x32 images, 32x32 crops, a few steps."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from torch import nn

from carla4agt.cli import cli
from loaders.samplers import RareClassCrop, RareClassSampler
from training.classmix import (
    ema_alpha,
    ema_update,
    make_teacher,
    mixed_weight,
    pseudo_crop_rows,
    pseudo_labels,
    strong_augment,
)
from training.config import TrainConfig, resolve
from training.loop import amp_settings, build_parts, make_loaders, stream_seed
from training.model import build_model
from training.optim import lr_factor, param_groups

from .synthetic import synthetic_dataset

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    data = synthetic_dataset(root / "syn.h5", layouts=8, size=(64, 32), block=8,
                             ratios=(0.6, 0.4, 0.0))
    target = root / "target" / "images"
    target.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(target / f"{i}.png")
    return data, root / "target"


def _cfg(data, out, **kw) -> TrainConfig:
    base = {"data": str(data), "out": str(out), "recipe": "quick", "crop": 32, "batch": 2,
            "workers": 0, "iters": 4}
    return resolve({**base, **kw})


def _run(args):
    return CliRunner().invoke(cli, [*args, "--no-progress"])


class NoLayers(nn.Module):
    """A custom model that publishes no alignment layers."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def no_layers(num_classes: int) -> nn.Module:
    return NoLayers(num_classes)


def test_item3_custom_model_without_layers_is_refused_for_alignment(tiny, tmp_path):
    data, _ = tiny
    base = ["train", "--recipe", "quick", "--data", str(data), "--out", str(tmp_path),
            "--model", "tests.test_training_recipe:no_layers", "--iters", "1", "--batch", "2",
            "--crop", "32", "--workers", "0"]
    result = _run([*base, "--mode", "aligned"])
    assert result.exit_code == 1 and "publishes no alignment layers" in result.stderr
    assert "--align-layers" in result.stderr
    assert _run([*base, "--mode", "aligned", "--align-layers", "conv"]).exit_code == 0


@pytest.mark.parametrize("model", ["daformer_mit_b0",
                                   pytest.param("segformer_mit_b0", marks=pytest.mark.slow)])
def test_mit_models_train_and_evaluate(tiny, tmp_path, model):
    data, _ = tiny
    out = tmp_path / model
    result = _run(["train", "--recipe", "quick", "--model", model, "--data", str(data),
                   "--out", str(out), "--iters", "2", "--batch", "2", "--crop", "32",
                   "--workers", "0"])
    assert result.exit_code == 0, result.output
    with open(out / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and float(rows[0]["align"]) > 0  # four encoder stages aligned
    result = _run(["evaluate", "--checkpoint", str(out / "last.pt"), "--data", str(data)])
    assert result.exit_code == 0, result.output and "mIoU16" in result.output


def test_mit_models_publish_their_features():
    model = build_model("daformer_mit_b0", 16)
    assert model.feature_strides == (4, 8, 16, 32) and model.feature_channels == (32, 64, 160,
                                                                                  256)
    assert model(torch.zeros(1, 3, 40, 72)).shape == (1, 16, 40, 72)  # padded to 64x96


def test_item4_teacher_alpha_mode_and_taps(tiny, tmp_path):
    assert ema_alpha(0) == 0 and ema_alpha(9) == pytest.approx(0.9)
    assert ema_alpha(10**6) == 0.999
    data, _ = tiny
    cfg = _cfg(data, tmp_path, mode="uda", model="daformer_mit_b0")
    parts = build_parts(cfg, 16, ["x"] * 16, torch.device("cpu"), False)
    teacher = parts.teacher
    assert teacher.training
    assert all(not m.training for m in teacher.modules()
               if isinstance(m, nn.Dropout2d) or type(m).__name__ == "DropPath")
    teacher(torch.zeros(1, 3, 32, 32))
    assert parts.taps.features == {}  # the teacher's forward leaves the student's taps alone
    # parameters only: the teacher's BatchNorm statistics stay its own
    student = nn.BatchNorm2d(2)
    t = make_teacher(student)
    student.running_mean.fill_(5)
    ema_update(t, student, 0.5)
    assert torch.equal(t.running_mean, torch.zeros(2))


def test_item5_pseudo_label_weight_per_batch_and_crop():
    logits = torch.zeros(2, 4, 8, 8)
    logits[0, 1] = 20  # image 0 confident everywhere, image 1 nowhere
    _, q = pseudo_labels(logits)
    assert q.tolist() == [0.5, 0.5]
    assert pseudo_crop_rows(512) == (15, 120) and pseudo_crop_rows(256) == (8, 60)
    mask = torch.zeros(1, 8, 4, dtype=torch.bool)
    mask[0, 0] = True  # a pasted source row at the top keeps weight 1
    w = mixed_weight(mask, torch.tensor([0.5]), (2, 3))
    assert w[0, :, 0].tolist() == [1, 0, 0.5, 0.5, 0.5, 0, 0, 0]


def test_item6_strong_augmentation_shared_or_independent():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32).repeat(8, 1, 1, 1)  # A = B: what differs is the draw
    shared = strong_augment(x, torch.Generator().manual_seed(0), pairs=4)
    assert torch.allclose(shared[:4], shared[4:], atol=1e-5)
    assert not torch.allclose(shared, x, atol=1e-3)
    independent = strong_augment(x, torch.Generator().manual_seed(0), pairs=0)
    assert not torch.allclose(independent[:4], independent[4:], atol=1e-3)


def test_item7_optimiser_groups_and_schedule(tiny, tmp_path):
    data, _ = tiny
    cfg = _cfg(data, tmp_path, recipe="daformer", model="daformer_mit_b0", weights="",
               iters=40000)
    model = build_model(cfg.model, 16)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert groups["head"]["lr"] == pytest.approx(6e-4) and groups["backbone"]["lr"] == 6e-5
    assert groups["backbone (no decay)"]["weight_decay"] == 0
    norms = {id(p) for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d))
             for p in m.parameters()}
    decayed = [p for g in groups.values() if g["weight_decay"] > 0 for p in g["params"]]
    assert norms and not any(id(p) in norms for p in decayed)
    assert lr_factor(0, cfg) == pytest.approx(1e-6, rel=1e-3)
    assert lr_factor(750, cfg) == pytest.approx(0.5 * (1 - 750 / 40000), rel=1e-4)
    assert lr_factor(1500, cfg) == pytest.approx(1 - 1500 / 40000)
    assert lr_factor(40000, cfg) == 0


class _Crops(torch.utils.data.Dataset):
    """Each read is a new crop: the class shows up on the third read."""

    def __init__(self):
        self.reads = 0

    def __len__(self):
        return 1

    def __getitem__(self, index):
        self.reads += 1
        return {"label": torch.full((4, 4), 7 if self.reads >= 3 else 0)}


def test_item8_rare_class_sampling_is_wired_and_recrops(tiny, tmp_path):
    data, _ = tiny
    main, _ = make_loaders(_cfg(data, tmp_path, rcs=True, rcs_min_pixels=8))
    assert isinstance(main.sampler, RareClassSampler) and main.sampler.with_class
    assert isinstance(main.dataset, RareClassCrop)
    batch = next(iter(main))
    assert batch["label"].shape == (1, 32, 32)
    crops = _Crops()
    item = RareClassCrop(crops, min_crop_pixels=8)[(0, 7)]
    assert crops.reads == 3 and int((item["label"] == 7).sum()) == 16


def test_item9_resume_draws_new_crops_and_ranks_differ(tiny, tmp_path):
    data, _ = tiny
    cfg = _cfg(data, tmp_path)
    assert len({stream_seed(cfg, s, r, 0) for s in (0, 5) for r in (0, 1)}) == 4
    first = next(iter(make_loaders(cfg, step=0)[0]))
    again = next(iter(make_loaders(cfg, step=0)[0]))
    resumed = next(iter(make_loaders(cfg, step=5)[0]))
    assert torch.equal(first["image_a"], again["image_a"])  # same seed, same step: same data
    assert not torch.equal(first["image_a"], resumed["image_a"])
    # under DDP the ranks share one permutation (disjoint shares) but draw their own crops
    ranks = [make_loaders(cfg, step=0, rank=r, world=2)[0] for r in (0, 1)]
    shares = [set(loader.sampler) for loader in ranks]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == len(ranks[0].dataset)
    assert ranks[0].dataset.seed != ranks[1].dataset.seed
    base = ["train", "--recipe", "quick", "--data", str(data), "--out", str(tmp_path / "r"),
            "--batch", "2", "--crop", "32", "--workers", "0", "--checkpoint-every", "2"]
    assert _run([*base, "--iters", "2"]).exit_code == 0
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert set(state["rng"]) == {"torch", "mix"}
    assert _run([*base, "--iters", "3", "--resume"]).exit_code == 0


def test_item10_float16_needs_a_scaler():
    assert amp_settings(torch.device("cuda"), True) == (torch.float16, True)
    assert amp_settings(torch.device("cuda"), False)[1] is False
    assert amp_settings(torch.device("cpu"), True) == (torch.bfloat16, False)


@pytest.mark.slow
def test_uda_daformer_recipe_with_feature_distance(tiny, tmp_path):
    from segmentation_models_pytorch.encoders import get_encoder

    data, target = tiny
    torch.save(get_encoder("mit_b0", weights=None).state_dict(), tmp_path / "enc.pt")
    out = tmp_path / "uda"
    result = _run(["train", "--recipe", "daformer", "--model", "daformer_mit_b0", "--weights",
                   str(tmp_path / "enc.pt"), "--data", str(data), "--out", str(out), "--mode",
                   "uda", "--target", str(target), "--iters", "2", "--batch", "2", "--crop",
                   "32", "--workers", "0", "--rcs-min-pixels", "8", "--warmup-iters", "1"])
    assert result.exit_code == 0, result.output
    assert "enc.pt: loaded" in result.stderr and "(backbone: all)" in result.stderr
    with open(out / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(float(r["mix"]) > 0 for r in rows)
    saved = yaml.safe_load((out / "run.yaml").read_text())
    assert saved["fdist_lambda"] == 0.005 and saved["rcs"] is True and saved["lr"] == 6e-5


def test_config_file_repeats_a_run_and_flags_override(tiny, tmp_path):
    data, _ = tiny
    out = tmp_path / "a"
    assert _run(["train", "--recipe", "quick", "--data", str(data), "--out", str(out),
                 "--iters", "1", "--batch", "2", "--crop", "32", "--workers", "0",
                 "--lr", "0.002"]).exit_code == 0
    config = out / "run.yaml"
    cfg = resolve({"iters": 3}, str(config))
    assert cfg.lr == 0.002 and cfg.iters == 3 and cfg.recipe == "quick" and cfg.crop == 32
    assert os.path.isabs(cfg.data)
    result = _run(["train", "--config", str(config), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "b" / "run.yaml").read_text())["lr"] == 0.002


def test_tensorboard_events_or_a_clear_message(tiny, tmp_path):
    data, _ = tiny
    result = _run(["train", "--recipe", "quick", "--data", str(data), "--out", str(tmp_path),
                   "--iters", "1", "--batch", "2", "--crop", "32", "--workers", "0",
                   "--tensorboard"])
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert result.exit_code == 1 and "pip install tensorboard" in result.stderr
    else:
        assert result.exit_code == 0 and any((tmp_path / "tensorboard").iterdir())
