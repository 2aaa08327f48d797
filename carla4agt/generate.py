"""``carla4agt generate`` and ``carla4agt render``: make the raw dataset."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.pack import pack
from carla4agt_data.schema import parse_split_ratios
from generator.backends import BACKEND_CHOICES, choose_backend
from generator.runner import (
    RunSummary,
    Shard,
    default_workers,
    generate,
    read_failures,
    render_layouts,
)

from .pack import pack_options, report_pack
from .params import ServerType, ShardType, SizeType, WeathersType

_BACKEND_NAMES = {"builtin": "the built-in procedural renderer (not CARLA)", "carla": "CARLA"}


def _common(func):
    """Options shared by generate and render."""
    options = [
        click.option("--weathers", type=WeathersType(), default="all", show_default=True,
                     help="'all' (= noon,sunset,night,fog) or names and preset YAML paths "
                          "separated by commas, e.g. noon,fog,./rain.yaml."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="raw",
                     show_default=True, help="Output folder (raw format, one folder per layout)."),
        click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto",
                     show_default=True,
                     help="auto: CARLA if a server answers at --host/--port, else builtin."),
        click.option("--host", default="localhost", show_default=True, help="CARLA server host."),
        click.option("--port", type=int, default=2000, show_default=True,
                     help="CARLA server RPC port."),
        click.option("--timeout", type=click.FloatRange(min=1), default=20.0, show_default=True,
                     help="Seconds for every CARLA client call (map loads need 60+)."),
        click.option("--shard", type=ShardType(), default="0/1", show_default=True,
                     help="Render only shard I of N (0-based): layouts whose number % N == I."),
        click.option("--workers", type=click.IntRange(min=1), default=default_workers(),
                     show_default=True, help="Render processes (each with its own GL context)."),
        click.option("--antialias", type=click.IntRange(1, 4), default=1, show_default=True,
                     help="Builtin: supersampling factor for RGB (labels are never smoothed)."),
        click.option("--progress/--no-progress", default=True, help="Show a progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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


@click.command(short_help="Sample layouts and render them under every weather.")
@click.option("--layouts", "num_layouts", type=int, required=True,
              help="Number of layouts in the whole dataset (all shards together).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Dataset seed: layout i is the same for the same seed, on any machine.")
@click.option("--size", type=SizeType(), default="1024x512", show_default=True,
              help="Image size WIDTHxHEIGHT, 2:1.")
@click.option("--fov", type=click.FloatRange(1, 179), default=90.0, show_default=True,
              help="Horizontal field of view in degrees.")
@click.option("--map", "maps", multiple=True,
              help="CARLA map to sample on (repeat for several, used round-robin).")
@click.option("--server", "servers", multiple=True, type=ServerType(),
              help="CARLA server HOST:PORT; repeat for several (one render process each).")
@_common
@click.option("--pack/--no-pack", "do_pack", default=True, show_default=True,
              help="Pack this run's layouts into an HDF5 dataset at the end.")
@click.option("--dataset", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to pack [default: dataset.h5, or dataset.shardI-of-N.h5 for a shard].")
@pack_options
def generate_cmd(num_layouts: int, seed: int, size: tuple[int, int], fov: float,
                 maps: tuple[str, ...], servers: tuple[tuple[str, int], ...], weathers,
                 out: Path, backend: str, host: str, port: int, timeout: float, shard: Shard,
                 workers: int, antialias: int, progress: bool, do_pack: bool,
                 dataset: Path | None, num_classes: str, compression: str, split_ratios: str,
                 pack_workers: int) -> None:
    """Sample --layouts N layouts and render each under every weather preset into --out.

    Each layout becomes OUT/<layout_id>/ with layout.yaml, <weather>.png,
    <weather>.tags.png (CARLA tag ids) and commit.json, written last. Re-running the same
    command resumes: complete layouts are skipped, interrupted ones are redone. At the end
    the layouts are packed into an HDF5 dataset (--no-pack to skip).
    """
    ratios = parse_split_ratios(split_ratios)
    if servers:  # the first server also decides --backend auto
        (host, port), backend = servers[0], ("carla" if backend == "auto" else backend)
    if num_layouts < 1:
        raise click.BadParameter(f"must be at least 1, got {num_layouts}.",
                                 param_hint="'--layouts'")
    chosen, reason = choose_backend(backend, host=host, port=port)
    click.echo(reason, err=True)
    summary = generate(out, layouts=num_layouts, presets=weathers, backend=chosen, seed=seed,
                       size=size, fov=fov, shard=shard, workers=workers, antialias=antialias,
                       host=host, port=port, timeout=timeout, maps=maps, servers=servers,
                       progress=progress)
    _report(summary)
    if do_pack:
        if dataset is None:
            dataset = Path("dataset.h5" if shard.count == 1
                           else f"dataset.shard{shard.index}-of-{shard.count}.h5")
        report_pack(pack(out, dataset, num_classes=int(num_classes), compression=compression,
                         split_ratios=ratios, workers=pack_workers,
                         layout_ids=summary.layout_ids, progress=progress))


@click.command(short_help="Render saved layout files under every weather.")
@click.option("--layouts", "sources", type=click.Path(exists=True, path_type=Path),
              multiple=True, required=True,
              help="Layout file, folder of layout files, or raw folder (repeatable).")
@_common
def render_cmd(sources: tuple[Path, ...], weathers, out: Path, backend: str, host: str,
               port: int, timeout: float, shard: Shard, workers: int, antialias: int,
               progress: bool) -> None:
    """Replay saved layouts under every weather preset into OUT (resumable)."""
    chosen, reason = choose_backend(backend, host=host, port=port)
    click.echo(reason, err=True)
    summary = render_layouts(list(sources), out, presets=weathers, backend=chosen, shard=shard,
                             workers=workers, antialias=antialias, host=host, port=port,
                             timeout=timeout, progress=progress)
    _report(summary)
