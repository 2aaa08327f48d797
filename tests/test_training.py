"""Training library and CLI: losses, ClassMix, EMA, metrics, and short real runs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from carla4agt.cli import cli
from carla4agt_data.errors import UserError
from training.classmix import class_mask, ema_update, mix, mixed_weight, pseudo_labels
from training.losses import ALIGNMENTS, AlignmentLoss, downscale_label, gaussian_mmd
from training.metrics import ConfusionMatrix, agreement
from training.model import FeatureTaps, build_model

from .synthetic import synthetic_dataset


@pytest.mark.parametrize("kind", list(ALIGNMENTS))
def test_alignment_losses(kind):
    torch.manual_seed(0)
    fn = ALIGNMENTS[kind]
    fa = torch.randn(2, 8, 6, 6, requires_grad=True)
    fb = torch.randn(2, 8, 6, 6, requires_grad=True)
    valid = torch.ones(2, 6, 6, dtype=torch.bool)
    same = fn(fa, fa.detach().clone(), valid)
    assert abs(float(same.detach())) < 1e-4
    loss = fn(fa, fb, valid)
    assert float(loss.detach()) > 0.01
    loss.backward()
    assert fa.grad is not None and fa.grad.abs().sum() > 0 and fb.grad.abs().sum() > 0
    # pixels outside the mask do not count: make them differ, keep the valid ones equal
    partial = valid.clone()
    partial[:, :3] = False
    fc = fa.detach().clone()
    fc[:, :, :3] += 5.0
    assert abs(float(fn(fa.detach(), fc, partial))) < 1e-4
    assert float(fn(fa.detach(), fc, valid)) > 0.01


def test_mmd_matches_naive_reference():
    torch.manual_seed(1)
    a, b = torch.randn(7, 3), torch.randn(5, 3) + 0.5
    x = torch.cat([a, b])
    d2 = torch.tensor([[float(((x[i] - x[j]) ** 2).sum()) for j in range(12)] for i in range(12)])
    base = d2.sum() / (12 * 12 - 12)

    def k(i, j):
        return sum(np.exp(-float(d2[i, j]) / (float(base) * 2.0 ** (m - 2))) for m in range(5))

    aa = np.mean([k(i, j) for i in range(7) for j in range(7)])
    bb = np.mean([k(i, j) for i in range(7, 12) for j in range(7, 12)])
    ab = np.mean([k(i, j) for i in range(7) for j in range(7, 12)])
    assert float(gaussian_mmd(a, b)) == pytest.approx(aa + bb - 2 * ab, rel=1e-4)


def test_downscale_label_majority_or_ignore():
    label = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 3], [255, 255, 4, 4], [255, 5, 4, 4]]])
    small = downscale_label(label, (2, 2), 16)
    assert small.tolist() == [[[1, 2], [255, 4]]]  # 3/4 share of 2 passes 0.75; 1/4 does not


def test_alignment_loss_over_layers():
    loss = AlignmentLoss("cosine", {"x": 1.0, "y": 0.5}, 16)
    f = {"x": torch.randn(1, 4, 4, 4), "y": torch.randn(1, 4, 2, 2)}
    g = {"x": f["x"], "y": -f["y"]}
    total, terms = loss(f, g, torch.zeros(1, 8, 8, dtype=torch.long))
    assert float(terms["x"]) == pytest.approx(0, abs=1e-6)
    assert float(terms["y"]) == pytest.approx(0.5 * 2.0, rel=1e-5)  # 1 - cos = 2, weight 0.5
    assert float(total) == pytest.approx(float(terms["y"]))


def test_classmix_toy_example():
    source = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    gen = torch.Generator().manual_seed(0)
    mask = class_mask(source, gen)
    chosen = set(source[mask].tolist())
    assert len(chosen) == 2 and chosen <= {0, 1, 2} and 255 not in chosen
    assert mask.tolist() == [[[v in chosen for v in row] for row in source[0].tolist()]]
    xs, xt = torch.ones(1, 3, 2, 4), torch.zeros(1, 3, 2, 4)
    assert torch.equal(mix(mask, xs, xt)[0, 0], mask[0].float())
    pseudo = torch.full((1, 2, 4), 7)
    ym = mix(mask, source, pseudo)
    assert torch.equal(ym, torch.where(mask, source, pseudo))
    logits = torch.zeros(1, 16, 2, 4)
    logits[0, 3, :, :2] = 10.0  # confident on half the pixels
    labels, q = pseudo_labels(logits)
    assert float(q) == pytest.approx(0.5) and labels[0, 0, 0] == 3
    weight = mixed_weight(mask, q)
    assert torch.equal(weight[mask], torch.ones(int(mask.sum())))
    assert torch.allclose(weight[~mask], torch.full((int((~mask).sum()),), 0.5))


def test_ema_update():
    student, teacher = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        for p in teacher.parameters():
            p.fill_(1.0)
        for p in student.parameters():
            p.fill_(3.0)
    ema_update(teacher, student, alpha=0.75)
    assert all(torch.allclose(p, torch.full_like(p, 1.5)) for p in teacher.parameters())


def test_confusion_matrix_and_miou_by_hand():
    cm = ConfusionMatrix(3)
    target = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # IoU0 = 1 / (1 + 1 + 1) ; IoU1 = 2 / (2 + 1) ; IoU2 = 0 / (0 + 1)
    assert cm.iou().tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3) / 3)
    assert agreement(pred, torch.tensor([0, 1, 0, 1, 0, 0]), target) == pytest.approx(0.8)


def test_unknown_layer_lists_valid_names():
    model = build_model("lraspp_mobilenet_v3_large", 16)
    assert model.alignment_layers == ("net.backbone.4", "net.backbone.16")
    with pytest.raises(UserError, match="Did you mean net.backbone.4"):
        FeatureTaps(model, ["net.backbone.44"])
    with pytest.raises(UserError, match="Unknown model 'unet'"):
        build_model("unet", 16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = synthetic_dataset(root / "syn.h5", layouts=8, size=(64, 32), block=8,
                             ratios=(0.6, 0.4, 0.0))
    target = root / "target" / "images"
    target.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(target / f"{i}.png")
    return data, root / "target"


def _run(args):
    if args[0] == "train":  # small CPU runs: the quick recipe, offline
        args = [*args, "--recipe", "quick"]
    return CliRunner().invoke(cli, [*args, "--no-progress"])


def _losses(path):
    with open(path) as fh:
        return [float(row["ce"]) for row in csv.DictReader(fh)]


@pytest.mark.parametrize("mode", ["baseline", "aligned", "uda"])
def test_short_runs_learn_and_evaluate(tiny, tmp_path, mode):
    data, target = tiny
    out = tmp_path / mode
    args = ["train", "--data", str(data), "--out", str(out), "--mode", mode, "--iters", "20",
            "--batch", "4", "--crop", "32", "--workers", "0", "--lr", "3e-3"]
    if mode == "uda":
        args += ["--target", str(target)]
    result = _run(args)
    assert result.exit_code == 0, result.output
    ce = _losses(out / "log.csv")
    assert len(ce) == 20 and np.mean(ce[-5:]) < np.mean(ce[:5])
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 20 and state["num_classes"] == 16
    result = _run(["evaluate", "--checkpoint", str(out / "last.pt"), "--data", str(data),
                   "--split", "val", "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    assert "mIoU16" in result.stdout and "cross-appearance agreement" in result.stdout
    assert "nan" not in (tmp_path / "e.json").read_text().lower()


def test_resume_continues_the_step_count(tiny, tmp_path):
    data, _ = tiny
    base = ["train", "--data", str(data), "--out", str(tmp_path), "--mode", "aligned",
            "--batch", "2", "--crop", "32", "--workers", "0"]
    assert _run([*base, "--iters", "5"]).exit_code == 0
    result = _run([*base, "--iters", "8", "--resume"])
    assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 8
    with open(tmp_path / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, 9))


def test_clear_training_errors(tiny, tmp_path):
    data, _ = tiny
    base = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--iters", "1",
            "--batch", "2", "--crop", "32", "--workers", "0"]
    result = _run([*base, "--align-layers", "net.backbone.99"])
    assert result.exit_code == 1 and "Unknown layer 'net.backbone.99'" in result.stderr
    result = _run([*base, "--mode", "uda"])
    assert result.exit_code == 1 and "needs --target" in result.stderr
    result = _run([*base, "--mode", "uda", "--target", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "expected the folders images/" in result.stderr
    # a checkpoint trained with another class count
    assert _run(base).exit_code == 0
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    state["num_classes"] = 19
    torch.save(state, tmp_path / "other.pt")
    result = _run(["evaluate", "--checkpoint", str(tmp_path / "other.pt"), "--data", str(data)])
    assert result.exit_code == 1 and "predicts 19 classes, but" in result.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    result = _run(["evaluate", "--checkpoint", str(tmp_path / "junk.pt"), "--data", str(data)])
    assert result.exit_code == 1 and "not a loadable carla4agt checkpoint" in result.stderr


def test_downscale_label_fast_path_equals_pooling():
    torch.manual_seed(3)
    label = torch.randint(0, 5, (2, 32, 48))
    label[:, :8] = 255
    label[:, 8:16, :16] = 2  # a uniform region
    fast = downscale_label(label, (4, 6), 16)  # strides divide: bincount path
    slow = downscale_label(label[:, :, :47], (4, 6), 16)  # 47 not divisible: pooling path
    assert (fast[:, 1, :2] == 2).all() and (fast[:, 0] == 255).all()
    onehot = torch.nn.functional.one_hot(torch.where(label == 255, 0, label), 16)
    onehot = onehot.permute(0, 3, 1, 2).float() * (label != 255).unsqueeze(1)
    share = torch.nn.functional.adaptive_avg_pool2d(onehot, (4, 6))
    top, cls = share.max(1)
    assert torch.equal(fast, torch.where(top >= 0.75, cls, torch.full_like(cls, 255)))
    assert slow.shape == (2, 4, 6)


def test_torchrun_ddp_on_cpu(tiny, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    data, _ = tiny
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m",
           "carla4agt", "train", "--recipe", "quick", "--data", str(data), "--out",
           str(tmp_path / "ddp"), "--iters", "4", "--batch", "2", "--crop", "32", "--workers",
           "0", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert state["step"] == 4 and not any(k.startswith("module.") for k in state["model"])
    with open(tmp_path / "ddp" / "log.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4  # rank 0 alone writes


def test_amp_on_cpu(tiny, tmp_path):
    data, _ = tiny
    result = _run(["train", "--data", str(data), "--out", str(tmp_path), "--iters", "3",
                   "--batch", "2", "--crop", "32", "--workers", "0", "--amp"])
    assert result.exit_code == 0, result.output
    assert all(np.isfinite(_losses(tmp_path / "log.csv")))


def test_batchnorm_follows_training():
    model = build_model("lraspp_mobilenet_v3_large", 16)
    momenta = {m.momentum for m in model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert momenta == {0.1}
