"""``carla4agt generate`` and ``carla4agt render``: make the raw dataset."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from carla4agt_data.errors import UserError
from carla4agt_data.pack import pack
from generator.backends import BACKEND_CHOICES, choose_backend
from generator.layout import MAX_SEED
from generator.runner import (
    GenerateSettings,
    RenderSettings,
    RunSummary,
    Shard,
    check_render_size,
    default_workers,
    generate,
    read_failures,
    render_layouts,
    shard_from_environment,
)
from generator.weather import WeatherPreset

from .interrupts import interrupted
from .pack import pack_options, report_pack
from .params import FiniteFloatRange, ServerType, ShardType, SizeType, WeathersType

MAX_LAYOUTS = 10_000_000  # ids hold six digits and more; this bounds the plan in memory

_BACKEND_NAMES = {"builtin": "the built-in procedural renderer (not CARLA)", "carla": "CARLA"}


@dataclass(frozen=True)
class RunOptions:
    """The options shared by generate and render, as given on the command line."""

    weathers: tuple[WeatherPreset, ...]
    out: Path
    backend: str  # may still be "auto"
    host: str
    port: int
    timeout: float
    shard: Shard
    workers: int
    antialias: int
    progress: bool


_RUN_FIELDS = tuple(f.name for f in fields(RunOptions))


def _shard(shard: Shard | None) -> Shard:
    """--shard, else the Slurm array task's shard (said in the output), else 0/1."""
    if shard is not None:
        return shard
    found = shard_from_environment()
    if found is None:
        return Shard()
    click.echo(f"Shard {found.index}/{found.count} from SLURM_ARRAY_TASK_ID/"
               "SLURM_ARRAY_TASK_COUNT.", err=True)
    return found


def _common(func):
    """Options shared by generate and render, handed to the command as one ``run`` record."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        kwargs["shard"] = _shard(kwargs["shard"])
        run = RunOptions(**{name: kwargs.pop(name) for name in _RUN_FIELDS})
        return func(run=run, **kwargs)

    options = [
        click.option("--weathers", type=WeathersType(), default="all", show_default=True,
                     help="'all' (= noon,sunset,night,fog) or names and preset YAML paths "
                          "separated by commas, e.g. noon,fog,./rain.yaml."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="raw",
                     show_default=True, help="Output folder (raw format, one folder per layout)."),
        click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto",
                     show_default=True,
                     help="auto: CARLA if a CARLA server answers the version call at "
                          "--host/--port, else builtin."),
        click.option("--host", default="localhost", show_default=True, help="CARLA server host."),
        click.option("--port", type=click.IntRange(1, 65535), default=2000, show_default=True,
                     help="CARLA server RPC port."),
        click.option("--timeout", type=FiniteFloatRange(1, 3600), default=20.0,
                     show_default=True,
                     help="Seconds for every CARLA client call (map loads need 60+)."),
        click.option("--shard", type=ShardType(), default=None,
                     help="Render only shard I of N (0-based): layouts whose number % N == I "
                          "[default: 0/1, or SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT in a "
                          "Slurm job array]."),
        click.option("--workers", type=click.IntRange(1, 256), default=default_workers(),
                     show_default=True,
                     help="Built-in renderer: render processes (each with its own GL context). "
                          "CARLA uses one process per server (--server)."),
        click.option("--antialias", type=click.IntRange(1, 4), default=1, show_default=True,
                     help="Builtin: supersampling factor for RGB (labels are never smoothed)."),
        click.option("--progress/--no-progress", default=True, help="Show a progress bar."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _report(summary: RunSummary) -> None:
    if summary.failed:
        reasons = {f["layout_id"]: f["message"] for f in read_failures(summary.out)}
        first = next(iter(reasons.items()))
        click.echo(f"{summary.failed} layouts failed; each is in {summary.out / 'failed.jsonl'} "
                   f"with its reason (first: {first[1]}). The next run tries them again.",
                   err=True)
    names = ", ".join(summary.appearances)
    rate = f" ({summary.layouts_per_second:.2f} layouts/s)" if summary.rendered else ""
    click.echo(
        f"Rendered {summary.rendered} layouts x {len(summary.appearances)} appearances ({names}) "
        f"with {_BACKEND_NAMES[summary.backend]} into {summary.out} in {summary.seconds:.1f} s"
        f"{rate}; {summary.skipped} were already complete, {summary.failed} failed. "
        f"Shard total: {summary.total} layouts."
    )


@dataclass(frozen=True)
class PackChoice:
    """Whether and how generate packs at the end (the pack options of the command line)."""

    enabled: bool
    dataset: Path | None  # None: inside OUT
    num_classes: int
    compression: str
    split: tuple[float, float, float]
    workers: int
    overwrite: bool

    def path(self, out: Path, shard: Shard) -> Path:
        """--dataset, else inside the folder the user named: nothing written elsewhere."""
        if self.dataset is not None:
            return self.dataset
        return out / ("dataset.h5" if shard.count == 1
                      else f"dataset.shard{shard.index}-of-{shard.count}.h5")


def _packing(func):
    """The pack options of generate, handed to the command as one ``packing`` record."""

    @functools.wraps(func)
    def wrapper(do_pack: bool, dataset: Path | None, num_classes: str, compression: str,
                split_ratios: tuple[float, float, float], pack_workers: int, overwrite: bool,
                **kwargs: Any) -> Any:
        packing = PackChoice(do_pack, dataset, int(num_classes), compression, split_ratios,
                             pack_workers, overwrite)
        return func(packing=packing, **kwargs)

    wrapper = pack_options(wrapper)
    wrapper = click.option(
        "--overwrite", is_flag=True,
        help="Replace the dataset file even if another run packed it.")(wrapper)
    wrapper = click.option(
        "--dataset", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Where to pack [default: OUT/dataset.h5, or OUT/dataset.shardI-of-N.h5 for a "
             "shard].")(wrapper)
    return click.option("--pack/--no-pack", "do_pack", default=True, show_default=True,
                        help="Pack this run's layouts into an HDF5 dataset at the end.")(wrapper)


@click.command(short_help="Sample layouts and render them under every weather.")
@click.option("--layouts", "num_layouts", type=click.IntRange(1, MAX_LAYOUTS), required=True,
              help="Number of layouts in the whole dataset (all shards together).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Dataset seed: layout i is the same for the same seed, on any machine.")
@click.option("--size", type=SizeType(), default="1024x512", show_default=True,
              help="Image size WIDTHxHEIGHT, 2:1.")
@click.option("--fov", type=FiniteFloatRange(1, 179), default=90.0, show_default=True,
              help="Horizontal field of view in degrees.")
@click.option("--map", "maps", multiple=True,
              help="CARLA map to sample on; repeat for several (layout i on map i % N; a "
                   "server renders each map's layouts as one block).")
@click.option("--server", "servers", multiple=True, type=ServerType(),
              help="CARLA server HOST:PORT; repeat for several (one render process each).")
@_common
@_packing
@interrupted("Stopped. Finished layouts are kept in the --out folder (the ones in progress "
             "are not); run the same command again to resume.")
def generate_cmd(num_layouts: int, seed: int, size: tuple[int, int], fov: float,
                 maps: tuple[str, ...], servers: tuple[tuple[str, int], ...],
                 run: RunOptions, packing: PackChoice) -> None:
    """Sample --layouts N layouts and render each under every weather preset into --out.

    Each layout becomes OUT/<layout_id>/ with layout.yaml, <weather>.png,
    <weather>.tags.png (CARLA tag ids) and commit.json, written last. Re-running the same
    command resumes: complete layouts are skipped, interrupted ones are redone. At the end
    the layouts are packed into an HDF5 dataset inside OUT (--no-pack to skip).
    """
    try:
        check_render_size(*size, run.antialias)
    except UserError as exc:
        raise click.BadParameter(str(exc), param_hint="'--size' / '--antialias'") from None
    host, port, backend = run.host, run.port, run.backend
    if servers:  # the first server also decides --backend auto
        (host, port) = servers[0]
    chosen, reason = choose_backend(backend, host=host, port=port,
                                    timeout=min(run.timeout, 5.0))
    click.echo(reason, err=True)
    settings = GenerateSettings(
        layouts=num_layouts, seed=seed, size=size, fov=fov, maps=maps, servers=servers,
        presets=run.weathers, backend=chosen, antialias=run.antialias, shard=run.shard,
        workers=run.workers, host=host, port=port, timeout=run.timeout,
        progress=run.progress)
    summary = generate(run.out, settings)
    _report(summary)
    if packing.enabled:
        report_pack(pack(run.out, packing.path(run.out, run.shard),
                         num_classes=packing.num_classes, compression=packing.compression,
                         split_ratios=packing.split, workers=packing.workers,
                         layout_ids=summary.layout_ids, progress=run.progress,
                         overwrite=packing.overwrite))


@click.command(short_help="Render saved layout files under every weather.")
@click.option("--layouts", "sources", type=click.Path(exists=True, path_type=Path),
              multiple=True, required=True,
              help="Layout file, folder of layout files, or raw folder (repeatable).")
@click.option("--server", "servers", multiple=True, type=ServerType(),
              help="CARLA server HOST:PORT; repeat for several (one render process each).")
@_common
@interrupted("Stopped. Finished layouts are kept in the --out folder (the ones in progress "
             "are not); run the same command again to resume.")
def render_cmd(sources: tuple[Path, ...], servers: tuple[tuple[str, int], ...],
               run: RunOptions) -> None:
    """Replay saved layouts under every weather preset into OUT (resumable).

    Every layout file is checked before anything renders. A layout file edited since its
    layout was rendered (same id, other content) is rendered again.
    """
    host, port = servers[0] if servers else (run.host, run.port)  # the first decides auto
    chosen, reason = choose_backend(run.backend, host=host, port=port,
                                    timeout=min(run.timeout, 5.0))
    click.echo(reason, err=True)
    settings = RenderSettings(presets=run.weathers, backend=chosen, antialias=run.antialias,
                              shard=run.shard, workers=run.workers, host=host, port=port,
                              servers=servers, timeout=run.timeout, progress=run.progress)
    _report(render_layouts(list(sources), run.out, settings))
