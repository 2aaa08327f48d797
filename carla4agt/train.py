"""``carla4agt train`` and ``carla4agt evaluate`` (need the torch extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import write_atomic


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _need_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as exc:
        raise UserError(f"carla4agt {command} needs torch and torchvision ({exc}): pip install "
                        "'carla4agt[torch]'.") from None


def _opt(*names: str, **kw: Any):
    """An option whose default comes from the recipe or the config file (None: not given)."""
    return click.option(*names, default=None, **kw)


@click.command("train", short_help="Train a segmentation model (baseline, aligned, uda).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="A run.yaml (as written next to every checkpoint); flags "
                                 "given here override it.")
@_opt("--recipe", type=click.Choice(["daformer", "quick"]),
      help="Defaults of every setting: daformer (DAFormer's, the default) or quick "
           "(lraspp_mobilenet_v3_large from scratch, for a CPU).")
@_opt("--data", type=click.Path(exists=True, dir_okay=False), help="carla4agt HDF5 dataset.")
@_opt("--out", type=click.Path(file_okay=False), help="Run folder: run.yaml, log.csv, last.pt.")
@_opt("--mode", type=click.Choice(["baseline", "aligned", "uda"]),
      help="baseline: appearances as independent images; aligned: pairs with feature "
           "alignment; uda: plus cross-appearance ClassMix [default: aligned].")
@_opt("--model", help="Built-in model (daformer_mit_b0..b5, segformer_mit_b0..b5, "
                      "lraspp_mobilenet_v3_large, deeplabv3_*) or module:function.")
@_opt("--weights", "--pretrained", "weights",
      help="Starting weights: imagenet (download the encoder's), none, or a local file.")
@_opt("--align", type=click.Choice(["cosine", "l2", "mmd", "contrast"]), help="Alignment loss.")
@_opt("--align-layers", help="Comma-separated module names [default: the model's].")
@_opt("--align-weight", type=float)
@_opt("--appearances", help="Comma-separated appearances to train on.")
@_opt("--max-layouts", type=int, help="Use only the first N training layouts (0: all).")
@_opt("--target", type=click.Path(file_okay=False),
      help="uda: folder with images/ (unlabelled target domain).")
@_opt("--iters", type=int)
@_opt("--batch", type=int, help="Images per step (pairs count two).")
@_opt("--crop", type=int)
@_opt("--lr", type=float)
@_opt("--head-lr-mult", type=float, help="Learning-rate factor of the decoder.")
@_opt("--warmup-iters", type=int)
@_opt("--poly-power", type=float)
@_opt("--weight-decay", type=float)
@_opt("--rcs/--no-rcs", help="Rare-class sampling.")
@_opt("--rcs-min-pixels", type=int)
@_opt("--ema", type=float, help="Largest momentum of the EMA teacher.")
@_opt("--pseudo-crop/--no-pseudo-crop", help="Ignore pseudo-labels in the top 15 and bottom "
                                             "120 of 512 rows.")
@_opt("--fdist-lambda", type=float, help="ImageNet feature distance weight (0: off).")
@_opt("--mix-aug-shared/--mix-aug-independent",
      help="Whether the two mixed appearances share one colour and blur draw.")
@_opt("--seed", type=int)
@_opt("--amp/--no-amp", help="Mixed precision (bfloat16 on CPU, float16 on GPU).")
@_opt("--device", help="auto, cpu, cuda, cuda:N.")
@_opt("--workers", type=int)
@_opt("--checkpoint-every", type=int, help="Save OUT/last.pt every N steps.")
@_opt("--tensorboard/--no-tensorboard", help="Also write TensorBoard events to OUT/tensorboard.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--progress/--no-progress", default=True)
def train_cmd(config_file, resume, progress, **flags) -> None:
    """Train on a carla4agt dataset: cross-entropy plus multi-layer feature alignment between
    two appearances of a layout (aligned), and cross-appearance ClassMix (uda)."""
    _need_torch("train")
    from training.config import SettingError, resolve
    from training.loop import TrainingInterrupted, train

    flags["align_layers"] = _csv(flags["align_layers"])
    flags["appearances"] = _csv(flags["appearances"])
    if flags["weights"] is not None and flags["weights"].lower() == "none":
        flags["weights"] = ""
    try:
        cfg = resolve(flags, config_file)
    except SettingError as exc:
        if flags.get(exc.setting) is None:  # from the config file: a bad file, exit 1
            raise
        raise click.BadParameter(str(exc)) from None  # a bad flag value: usage, exit 2
    custom = flags["model"] is not None and ":" in flags["model"]
    try:
        path = train(cfg, resume=resume, progress=progress, custom_model=custom,
                     log=lambda s: click.echo(s, err=True))
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    click.echo(f"Wrote {path}, {Path(cfg.out) / 'run.yaml'} and {Path(cfg.out) / 'log.csv'}.")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


@click.command("evaluate", short_help="mIoU of a checkpoint on a dataset or folder.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--model", default=None, help="Your own model as module:function (a checkpoint "
                                            "names only built-in models).")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--split", default="val", show_default=True)
@click.option("--cityscapes", type=click.Path(file_okay=False), default=None)
@click.option("--acdc", type=click.Path(file_okay=False), default=None)
@click.option("--condition", default="fog", show_default=True)
@click.option("--folder", type=click.Path(file_okay=False), default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--progress/--no-progress", default=True)
def evaluate_cmd(checkpoint, model, data, split, cityscapes, acdc, condition, folder, json_path,
                 device, progress) -> None:
    """Evaluate a checkpoint: per-class IoU and mIoU by protocol (mIoU19 for 19-class models,
    mIoU16 ours, mIoU16 DAFormer's on 19 classes, mIoU13), per appearance and
    cross-appearance consistency on a carla4agt dataset."""
    sources = [s for s in (data, cityscapes, acdc, folder) if s]
    if len(sources) != 1:
        raise click.UsageError("Give exactly one of --data, --cityscapes, --acdc, --folder.")
    _need_torch("evaluate")
    from loaders import acdc as acdc_ds
    from loaders import cityscapes as cityscapes_ds
    from loaders import image_folder
    from training.evaluate import (
        evaluate_dataset,
        evaluate_folder,
        load_checkpoint,
        model_from_checkpoint,
    )
    from training.loop import device_for

    state = load_checkpoint(checkpoint)
    k = int(state["num_classes"])
    if data:
        from carla4agt_data.dataset import open_dataset

        if open_dataset(data).num_classes != k:
            raise UserError(f"{checkpoint} predicts {k} classes, but {data} has "
                            f"{open_dataset(data).num_classes}. Evaluate on a dataset packed "
                            f"with --classes {k}.")
    elif k not in (16, 19):
        raise UserError(f"{checkpoint} predicts {k} classes; folders are read as 16 or 19 "
                        "Cityscapes classes.")
    net = model_from_checkpoint(state, checkpoint, model)
    dev = device_for(device)
    net.to(dev)
    if data:
        result = evaluate_dataset(net, data, split, dev, progress)
    else:
        # labels in the model's own protocol: 19 classes stay 19 (DAFormer's evaluation)
        ds = (cityscapes_ds(cityscapes, split, num_classes=k) if cityscapes else
              acdc_ds(acdc, condition, split, num_classes=k) if acdc else
              image_folder(folder, num_classes=k))
        result = evaluate_folder(net, ds, k, dev, progress)
    _print(result)
    if json_path:
        write_atomic(json_path, json.dumps(result, indent=1, allow_nan=False))
        click.echo(f"Wrote {json_path}.")


_LABELS = {"miou19": "mIoU19", "miou16": "mIoU16", "miou16_daformer": "mIoU16 (DAFormer)",
           "miou13": "mIoU13", "miou": "mIoU"}


def _print(result: dict[str, Any]) -> None:
    click.echo(f"{'class':14s} {'IoU':>7s}")
    for name, value in result["per_class"].items():
        click.echo(f"{name:14s} {_percent(value):>7s}")
    keys = [k for k in _LABELS if k in result]
    click.echo("  ".join(f"{_LABELS[k]} {_percent(result[k])}" for k in keys))
    for key, text in result.get("protocols", {}).items():
        click.echo(f"  {_LABELS[key]}: {text}")
    for name, values in result.get("per_appearance", {}).items():
        click.echo(f"  {name:10s} mIoU16 {_percent(values.get('miou16'))}")
    if "consistency" in result:
        c = result["consistency"]
        click.echo(f"cross-appearance agreement {_percent(c['agreement'])}, mIoU between "
                   f"appearances {_percent(c['miou_between_appearances'])}")
