"""``carla4agt train`` and ``carla4agt evaluate`` (need the torch extra)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import write_atomic


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


@click.command("train", short_help="Train a segmentation model (baseline, aligned, uda).")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="carla4agt HDF5 dataset.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder: log.csv and last.pt.")
@click.option("--mode", type=click.Choice(["baseline", "aligned", "uda"]), default="aligned",
              show_default=True, help="baseline: appearances as independent images; aligned: "
                                      "pairs with feature alignment; uda: plus ClassMix.")
@click.option("--align", type=click.Choice(["cosine", "l2", "mmd", "contrast"]),
              default="cosine", show_default=True, help="Alignment loss.")
@click.option("--align-layers", default=None, help="Comma-separated layer names "
                                                   "[default: the model's].")
@click.option("--align-weight", type=float, default=0.1, show_default=True)
@click.option("--appearances", default=None, help="Comma-separated appearances to train on.")
@click.option("--max-layouts", type=click.IntRange(min=0), default=0,
              help="Use only the first N training layouts (0: all).")
@click.option("--target", type=click.Path(file_okay=False), default=None,
              help="uda: folder with images/ (unlabelled target domain).")
@click.option("--iters", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--batch", type=click.IntRange(min=2), default=8, show_default=True,
              help="Images per step (pairs count two).")
@click.option("--crop", type=click.IntRange(min=16), default=512, show_default=True)
@click.option("--lr", type=float, default=6e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--amp", is_flag=True, help="Mixed precision (bfloat16 on CPU, float16 on GPU).")
@click.option("--device", default="auto", show_default=True)
@click.option("--model", default="lraspp_mobilenet_v3_large", show_default=True,
              help="torchvision model name or module:function.")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local weights to start from (nothing is downloaded).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--progress/--no-progress", default=True)
def train_cmd(data, out, mode, align, align_layers, align_weight, appearances, max_layouts,
              target, iters, batch, crop, lr, seed, amp, device, model, pretrained, workers,
              resume, progress) -> None:
    """Train on a carla4agt dataset: cross-entropy plus multi-layer feature alignment between
    two appearances of a layout (aligned), and cross-appearance ClassMix (uda)."""
    try:
        from training.loop import TrainConfig, train
    except ImportError as exc:
        raise UserError(f"Training needs torch and torchvision ({exc}): pip install "
                        "'carla4agt[torch]'.") from None
    cfg = TrainConfig(data=data, out=out, mode=mode, align=align,
                      align_layers=_csv(align_layers), align_weight=align_weight,
                      appearances=_csv(appearances), max_layouts=max_layouts, target=target or "",
                      iters=iters, batch=batch, crop=crop, lr=lr, seed=seed, amp=amp,
                      device=device, model=model, pretrained=pretrained or "", workers=workers)
    path = train(cfg, resume=resume, progress=progress)
    click.echo(f"Wrote {path} and {Path(out) / 'log.csv'}.")


@click.command("evaluate", short_help="mIoU of a checkpoint on a dataset or folder.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--split", default="val", show_default=True)
@click.option("--cityscapes", type=click.Path(file_okay=False), default=None)
@click.option("--acdc", type=click.Path(file_okay=False), default=None)
@click.option("--condition", default="fog", show_default=True)
@click.option("--folder", type=click.Path(file_okay=False), default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--progress/--no-progress", default=True)
def evaluate_cmd(checkpoint, data, split, cityscapes, acdc, condition, folder, json_path, device,
                 progress) -> None:
    """Evaluate a checkpoint: per-class IoU, mIoU16/13 (and per appearance and
    cross-appearance consistency on a carla4agt dataset)."""
    from carla4agt_data.taxonomy import classes
    from loaders import acdc as acdc_ds
    from loaders import cityscapes as cityscapes_ds
    from loaders import image_folder
    from training.loop import _device, evaluate_dataset, evaluate_folder, load_checkpoint
    from training.model import build_model

    sources = [s for s in (data, cityscapes, acdc, folder) if s]
    if len(sources) != 1:
        raise click.UsageError("Give exactly one of --data, --cityscapes, --acdc, --folder.")
    state = load_checkpoint(checkpoint)
    k = int(state["num_classes"])
    if data:
        from carla4agt_data.dataset import open_dataset

        if open_dataset(data).num_classes != k:
            raise UserError(f"{checkpoint} predicts {k} classes, but {data} has "
                            f"{open_dataset(data).num_classes}. Evaluate on a dataset packed "
                            f"with --classes {k}.")
    model, _ = build_model(str(state["model_name"]), k)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UserError(f"{checkpoint}: its weights do not fit {state['model_name']} with "
                        f"{k} classes ({str(exc).splitlines()[0]}).") from None
    dev = _device(device)
    model.to(dev)
    if data:
        result = evaluate_dataset(model, data, split, dev, progress)
    else:
        ds = (cityscapes_ds(cityscapes, split) if cityscapes else
              acdc_ds(acdc, condition, split) if acdc else image_folder(folder))
        result = evaluate_folder(model, ds, k, dev, classes(k), progress)
    click.echo(f"{'class':14s} {'IoU':>7s}")
    for name, value in result["per_class"].items():
        click.echo(f"{name:14s} {'-' if value is None else f'{value:7.2%}':>7s}")
    click.echo(f"mIoU16 {result['miou16']:.2%}  mIoU13 {result['miou13']:.2%}")
    for name, values in result.get("per_appearance", {}).items():
        click.echo(f"  {name:10s} mIoU16 {values['miou16']:.2%}")
    if "consistency" in result:
        c = result["consistency"]
        click.echo(f"cross-appearance agreement {c['agreement']:.2%}, mIoU between "
                   f"appearances {c['miou_between_appearances']:.2%}")
    if json_path:
        write_atomic(json_path, json.dumps(result, indent=1))
        click.echo(f"Wrote {json_path}.")
