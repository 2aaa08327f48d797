"""Run settings: recipes, a config file (``run.yaml``), and their validation.

A setting comes from, in increasing precedence: the recipe, ``--config FILE``, the
command line. The resolved settings are written to ``OUT/run.yaml`` (and into every
checkpoint), so ``carla4agt train --config OUT/run.yaml`` repeats a run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from carla4agt_data.errors import UserError

MODES = ("baseline", "aligned", "uda")
ALIGNS = ("cosine", "l2", "mmd", "contrast")
MAX_CROP = 4096


@dataclass
class TrainConfig:
    """Everything a run needs; saved (as plain data) in ``run.yaml`` and every checkpoint.

    The defaults are the ``quick`` recipe (a small torchvision model from scratch, for a
    CPU); :data:`RECIPES` holds what the ``daformer`` recipe (the command line's default)
    changes.
    """

    data: str
    out: str
    recipe: str = "quick"
    mode: str = "aligned"  # baseline | aligned | uda
    model: str = "lraspp_mobilenet_v3_large"
    weights: str = ""  # "" (random), "imagenet" or a path
    # alignment
    align: str = "cosine"  # cosine | l2 | mmd | contrast
    align_layers: tuple[str, ...] = ()  # default: the model's
    align_weight: float = 0.1
    # data
    appearances: tuple[str, ...] = ()  # default: all in the file
    max_layouts: int = 0  # 0: all training layouts
    target: str = ""  # uda: folder of target images (images/)
    crop: int = 512
    batch: int = 8  # images per step (aligned and uda: batch // 2 pairs)
    workers: int = 2
    rcs: bool = False  # rare-class sampling
    rcs_temperature: float = 0.01
    rcs_min_pixels: int = 3000
    rcs_min_crop_ratio: float = 0.5
    # optimisation (AdamW, linear warm-up, polynomial decay)
    iters: int = 1000
    lr: float = 6e-4
    head_lr_mult: float = 1.0
    weight_decay: float = 0.01
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6  # warm-up starts at lr * warmup_ratio
    poly_power: float = 0.9
    amp: bool = False
    # self-training (uda)
    ema: float = 0.999  # the teacher's momentum, reached after 1000 steps
    pseudo_threshold: float = 0.968
    pseudo_crop: bool = False  # DAFormer: ignore the top 15 and bottom 120 of 512 rows
    fdist_lambda: float = 0.0  # ImageNet feature distance on thing classes; 0: off
    mix_aug_shared: bool = True  # A and B of a mixed pair share one colour/blur draw
    # bookkeeping
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    tensorboard: bool = False


# DAFormer's settings (Hoyer et al., CVPR 2022; lhoyer/DAFormer configs), batch 2 pairs
_DAFORMER = {"model": "daformer_mit_b5", "weights": "imagenet", "batch": 4, "iters": 40000,
             "lr": 6e-5, "head_lr_mult": 10.0, "warmup_iters": 1500, "poly_power": 1.0,
             "rcs": True, "pseudo_crop": True, "fdist_lambda": 0.005}

# recipe -> the settings it changes from the TrainConfig defaults
RECIPES: dict[str, dict[str, Any]] = {"daformer": _DAFORMER, "quick": {}}

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a ``run.yaml`` (unknown keys are refused, naming them)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if len(text) > 1_000_000:
            raise UserError(f"{path}: over 1 MB; a run config is a short YAML file.")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the config file ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file is a mapping of settings "
                        f"(such as 'mode: uda'), not a {type(data).__name__}.")
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(map(str, unknown))}. Valid "
                        "settings are " + ", ".join(FIELDS) + ".")
    return data


def resolve(cli: dict[str, Any], config_file: str | None = None) -> TrainConfig:
    """Recipe < config file < command line (``None`` on the command line: not given)."""
    from_file = read_config_file(config_file) if config_file else {}
    given = {k: v for k, v in cli.items() if v is not None}
    recipe = given.get("recipe", from_file.get("recipe", "daformer"))
    if recipe not in RECIPES:
        raise UserError(f"Unknown recipe {recipe!r}. Valid values are "
                        + ", ".join(RECIPES) + ".")
    model = from_file.get("model")
    if "model" not in given and isinstance(model, str) and ":" in model:
        raise UserError(f"{config_file} names the model {model!r}, which is not built in. A "
                        "config file is data and may not name code to import: pass your own "
                        f"model on the command line: --model {model}.")
    values: dict[str, Any] = {**RECIPES[recipe], **from_file, **given, "recipe": recipe}
    for key in ("data", "out"):
        if not values.get(key):
            raise UserError(f"--{key} is needed (on the command line or in the config file).")
    for key in ("align_layers", "appearances"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    try:
        cfg = TrainConfig(**values)
    except TypeError as exc:
        raise UserError(f"Invalid settings: {exc}.") from None
    validate(cfg, config_file, given=frozenset(given))
    return cfg


class SettingError(UserError):
    """A setting whose value cannot train; ``setting`` names it (the CLI makes one given on
    the command line a usage error)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def _number(cfg: TrainConfig, name: str, low: float, high: float = math.inf,
            low_open: bool = False) -> None:
    value = getattr(cfg, name)
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingError(name, f"{flag}: expected a number, got {value!r}")
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"{'above' if low_open else 'at least'} {low:g}"
        if high != math.inf:
            bound += f" and at most {high:g}"
        raise SettingError(name, f"{flag} {value}: must be a finite number {bound}")


def validate(cfg: TrainConfig, source: str | None = None,
             given: frozenset[str] = frozenset()) -> None:
    """Refuse settings that cannot train, naming the value and, unless it was ``given`` on
    the command line, the config file ``source`` it came from."""

    def where(name: str) -> str:
        return f" (from {source})" if source and name not in given else ""

    for name, allowed in (("mode", MODES), ("align", ALIGNS)):
        if getattr(cfg, name) not in allowed:
            raise SettingError(name, f"--{name} {getattr(cfg, name)!r}{where(name)}: valid "
                               "values are " + ", ".join(allowed) + ".")
    for name, low, high, low_open in (
            ("lr", 0, 1e3, True), ("align_weight", 0, 1e6, False), ("head_lr_mult", 0, 1e6, True),
            ("weight_decay", 0, 1e3, False), ("warmup_ratio", 0, 1, False),
            ("poly_power", 0, 1e3, False), ("ema", 0, 1, False),
            ("pseudo_threshold", 0, 1, False), ("fdist_lambda", 0, 1e6, False),
            ("rcs_temperature", 0, 1e6, True), ("rcs_min_crop_ratio", 0, 1, False),
            ("iters", 1, 1e9, False), ("batch", 2, 4096, False), ("crop", 16, MAX_CROP, False),
            ("workers", 0, 256, False), ("max_layouts", 0, 1e9, False),
            ("warmup_iters", 0, 1e9, False), ("rcs_min_pixels", 0, 1e9, False),
            ("checkpoint_every", 1, 1e9, False)):
        try:
            _number(cfg, name, low, high, low_open)
        except SettingError as exc:
            raise SettingError(name, f"{exc}{where(name)}.") from None


def write_config(cfg: TrainConfig, path: Path) -> None:
    from carla4agt_data.fileio import write_atomic

    data = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    # absolute paths, so the file repeats the run from any folder
    for key in ("data", "out", "target"):
        if data[key]:
            data[key] = str(Path(str(data[key])).absolute())
    if data["weights"] not in ("", "imagenet"):
        data["weights"] = str(Path(str(data["weights"])).absolute())
    write_atomic(path, "# carla4agt train settings; repeat with: carla4agt train --config "
                 f"{path.absolute()}\n" + yaml.safe_dump(data, sort_keys=False))
