"""Starting weights (issue 14, item 1): every usual key layout loads, with a report, and a
file that does not fit fails. Weight files are made here; nothing is downloaded."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision

from carla4agt_data.errors import UserError
from training.model import build_model
from training.weights import load_weight_file

os.environ["HF_HUB_OFFLINE"] = "1"


def _same(model, key, tensor):
    return torch.equal(model.state_dict()[key], tensor)


def test_torchvision_imagenet_mobilenet_loads_the_whole_backbone(tmp_path):
    torch.manual_seed(0)
    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "mnv3.pth")
    model = build_model("lraspp_mobilenet_v3_large", 16)
    report = load_weight_file(model, tmp_path / "mnv3.pth")
    assert report.backbone_loaded == report.backbone_total > 0
    assert "backbone: all" in str(report)
    sd = classifier.state_dict()
    assert _same(model, "net.backbone.0.0.weight", sd["features.0.0.weight"])
    assert _same(model, "net.backbone.16.1.running_var", sd["features.16.1.running_var"])


def test_torchvision_segmentation_dict_skips_the_other_classifier(tmp_path):
    other = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21)
    torch.save(other.state_dict(), tmp_path / "lraspp21.pt")
    model = build_model("lraspp_mobilenet_v3_large", 16)
    report = load_weight_file(model, tmp_path / "lraspp21.pt")
    assert "backbone: all" in str(report)
    # the two classifier convolutions (weight and bias each) have 21 outputs, not 16
    assert len(report.shape_mismatch) == 4 and report.loaded == report.total - 4
    assert "[21, 40, 1, 1] vs [16, 40, 1, 1]" in str(report)
    assert _same(model, "net.classifier.cbr.0.weight",
                 other.state_dict()["classifier.cbr.0.weight"])


@pytest.mark.parametrize("layout", ["bare", "mmseg", *(pytest.param(x, marks=pytest.mark.slow)
                                                      for x in ("smp", "ddp", "ours"))])
def test_mit_encoder_in_every_key_layout(tmp_path, layout):
    from segmentation_models_pytorch.encoders import get_encoder

    torch.manual_seed(1)
    encoder = get_encoder("mit_b0", weights=None).state_dict()
    state = {"bare": encoder,
             "smp": {f"encoder.{k}": v for k, v in encoder.items()},
             "mmseg": {"state_dict": {f"backbone.{k}": v for k, v in encoder.items()},
                       "meta": {}},
             "ddp": {f"module.net.encoder.{k}": v for k, v in encoder.items()},
             "ours": {"model": {f"net.encoder.{k}": v for k, v in encoder.items()},
                      "step": 3}}[layout]
    torch.save(state, tmp_path / "w.pt")
    model = build_model("daformer_mit_b0", 16)
    report = load_weight_file(model, tmp_path / "w.pt")
    assert report.backbone_loaded == report.backbone_total == len(encoder)
    assert _same(model, "net.encoder.block4.1.mlp.fc2.weight", encoder["block4.1.mlp.fc2.weight"])


def test_safetensors_file(tmp_path):
    from safetensors.torch import save_file
    from segmentation_models_pytorch.encoders import get_encoder

    encoder = get_encoder("mit_b0", weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in encoder.items()}, str(tmp_path / "w.safetensors"))
    model = build_model("segformer_mit_b0", 19)
    assert "backbone: all" in str(load_weight_file(model, tmp_path / "w.safetensors"))


def test_a_file_of_another_model_fails(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(UserError, match=r"r18.pt: its weights do not fit .*backbone: 0 of"):
        load_weight_file(build_model("lraspp_mobilenet_v3_large", 16), tmp_path / "r18.pt",
                         "lraspp_mobilenet_v3_large")


def test_imagenet_offline_says_how_to_pass_a_file():
    from training.weights import apply_weights

    model = build_model("daformer_mit_b0", 16)
    with pytest.raises(UserError, match="may be offline.*--weights PATH"):
        apply_weights(model, "imagenet", "daformer_mit_b0")
