"""The generate/render runner shared by every backend: shards, resume, workers, progress.

Example:
    >>> summary = generate(Path("raw"), layouts=50, presets=resolve_weathers("all"))
    >>> summary.rendered, summary.skipped
    (50, 0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import write_atomic
from carla4agt_data.processes import die_with_parent
from carla4agt_data.raw import (
    LAYOUT_FILE,
    check_run_settings,
    is_complete,
    remove_stale_temporaries,
    write_layout_folder,
)

from .backends import Backend, LayoutSkipped, open_backend
from .layout import Layout, check_layout_id, load_layout
from .weather import WeatherPreset

MAX_SIDE = 8192


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): layouts whose number % count == index."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UserError(
                f"Invalid shard {self.index}/{self.count}: use I/N with N >= 1 and "
                f"0 <= I < N (shards are numbered from 0), for example --shard 0/4 ... 3/4."
            )

    def take(self, numbers: range) -> list[int]:
        return [n for n in numbers if n % self.count == self.index]


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"Invalid shard {text!r}: use I/N, for example 0/4.")
    return Shard(int(match[1]), int(match[2]))


def parse_server(text: str) -> tuple[str, int]:
    """``"host:port"`` -> ``("host", port)``."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"Invalid server {text!r}: use HOST:PORT, for example localhost:2000.")
    return host, int(port)


def parse_size(text: str) -> tuple[int, int]:
    """``"1024x512"`` -> ``(1024, 512)``; images must be 2:1."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"Invalid size {text!r}: use WIDTHxHEIGHT, for example 1024x512.")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise UserError(f"Invalid size {text!r}: width and height must be 1 to {MAX_SIDE}.")
    if width != 2 * height:
        raise UserError(f"Invalid size {text!r}: images are 2:1 (width = 2 x height), for "
                        "example 1024x512 or 2048x1024.")
    return width, height


@dataclass(frozen=True)
class RunSummary:
    out: Path
    backend: str
    appearances: tuple[str, ...]
    total: int  # layouts in this shard
    rendered: int  # rendered by this run
    skipped: int  # already complete
    seconds: float
    layout_ids: tuple[str, ...] = ()  # every layout of this shard, in order
    failed: int = 0  # recorded in failed.jsonl by this run (with their reasons)

    @property
    def layouts_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Job:
    """What one worker process needs to render its share (picklable)."""

    out: Path
    backend: str
    presets: tuple[WeatherPreset, ...]
    seed: int
    size: tuple[int, int]
    fov: float
    indices: tuple[int, ...] = ()  # layouts to sample (generate)
    files: tuple[Path, ...] = ()  # layout files to replay (render)
    antialias: int = 1
    host: str = "localhost"  # CARLA server (backend "carla")
    port: int = 2000
    timeout: float = 20.0
    maps: tuple[str, ...] = ()  # CARLA maps, round-robin by layout number
    encoder_threads: int = 2


def _layout_id(backend: str, seed: int, index: int) -> str:
    return f"{backend}-{seed}-{index:06d}"


def _render_one(backend: Backend, layout: Layout, job: _Job, pool: ThreadPoolExecutor,
                scene_seconds: Callable[[], float]) -> Future:
    """Render on this thread; encode and write on the pool (off the render loop)."""
    t0 = time.perf_counter()
    captures = list(backend.render(layout, job.presets))
    timings: dict[str, Any] = {"render_all": round(time.perf_counter() - t0, 4),
                               "scene": round(scene_seconds(), 4)}
    return pool.submit(write_layout_folder, job.out, layout.id, layout.to_yaml(), captures,
                       backend=backend.name,
                       versions=backend.versions(), tag_table=backend.tag_table,
                       timings=timings)


def _run_job(job: _Job, report: Callable[[str], None]) -> None:
    backend = open_backend(job.backend, antialias=job.antialias, host=job.host, port=job.port,
                           timeout=job.timeout, maps=job.maps)
    scene_seconds = lambda: getattr(backend, "last_scene_seconds", 0.0)  # noqa: E731
    pending: list[Future] = []

    def fail(layout_id: str, exc: LayoutSkipped) -> None:  # recorded, never silently kept
        record_failure(job.out, layout_id, str(exc), exc.differing)
        report(layout_id)

    try:
        with ThreadPoolExecutor(job.encoder_threads) as pool:
            todo = job.indices or job.files
            for item in todo:
                layout_id = (_layout_id(job.backend, job.seed, item) if job.indices
                             else str(item))
                try:
                    layout = (backend.sample_layout(job.seed, item, width=job.size[0],
                                                    height=job.size[1], fov=job.fov)
                              if job.indices else load_layout(item))
                    layout_id = layout.id
                    pending.append(_render_one(backend, layout, job, pool, scene_seconds))
                except LayoutSkipped as exc:
                    fail(layout_id, exc)
                    continue
                # Bound the images held in memory: wait while too many are queued.
                while len(pending) > job.encoder_threads + 1 or (pending and pending[0].done()):
                    report(pending.pop(0).result().name)
            for future in pending:
                report(future.result().name)
    finally:
        backend.close()


FAILED_FILE = "failed.jsonl"


def record_failure(out: Path, layout_id: str, message: str, differing: int) -> None:
    """Append one line to ``<out>/failed.jsonl`` (a layout is redone on the next run)."""
    line = json.dumps({"layout_id": layout_id, "differing_pixels": differing,
                       "message": message}) + "\n"
    with open(out / FAILED_FILE, "a", encoding="utf-8") as fh:
        fh.write(line)


def read_failures(out: Path) -> list[dict[str, Any]]:
    path = out / FAILED_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def forget_failures(out: Path, layout_ids: set[str]) -> None:
    """Drop the failure records of layouts about to be tried again."""
    kept = [f for f in read_failures(out) if f["layout_id"] not in layout_ids]
    if (out / FAILED_FILE).is_file():
        write_atomic(out / FAILED_FILE, "".join(json.dumps(f) + "\n" for f in kept))


def _worker_main(job: _Job, queue: Any, parent_pid: int) -> None:
    die_with_parent(parent_pid)  # a killed generate must not leave workers rendering
    try:
        _run_job(job, lambda name: queue.put(("done", name)))
        queue.put(("exit", None))
    except KeyboardInterrupt:
        queue.put(("exit", None))
    except BaseException as exc:  # reported to the parent, which raises it
        # plain classes only: an exception with a custom __init__ may not unpickle
        queue.put(("error", UserError(str(exc)) if isinstance(exc, UserError) else
                   RuntimeError(f"{type(exc).__name__}: {exc}")))


def _execute(jobs: list[_Job], total: int, done: int, progress: bool) -> None:
    bar = tqdm(total=total, initial=done, unit="layout", disable=not progress,
               desc="Rendering", dynamic_ncols=True)
    try:
        if len(jobs) == 1:
            _run_job(jobs[0], lambda name: bar.update(1))
            return
        ctx = mp.get_context("spawn")  # a fresh process for each GL context
        queue = ctx.Queue()
        procs = [ctx.Process(target=_worker_main, args=(job, queue, os.getpid()),
                             daemon=True) for job in jobs]
        for p in procs:
            p.start()
        running = len(procs)
        try:
            while running:
                kind, value = queue.get()
                if kind == "done":
                    bar.update(1)
                elif kind == "exit":
                    running -= 1
                else:
                    raise value
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
    finally:
        bar.close()


def _split(items: Sequence[Any], workers: int) -> list[tuple[Any, ...]]:
    return [tuple(items[k::workers]) for k in range(workers) if items[k::workers]]


def plan_jobs(template: _Job, todo: Sequence[int], workers: int,
              servers: Sequence[tuple[str, int]] = ()) -> list[_Job]:
    """Deal the layouts to workers: one per CARLA server when several are given (each a
    process of its own), else ``workers`` processes."""
    if servers:
        return [dataclasses.replace(template, indices=part, host=host, port=port)
                for (host, port), part in zip(servers, _split(todo, len(servers)), strict=False)]
    return [dataclasses.replace(template, indices=part) for part in _split(todo, workers)]


def _settings(backend: str, presets: Sequence[WeatherPreset], seed: int | None,
              size: tuple[int, int] | None, fov: float | None) -> dict[str, Any]:
    digest = hashlib.sha256("".join(p.to_yaml() for p in presets).encode()).hexdigest()[:16]
    settings: dict[str, Any] = {"backend": backend, "weathers": [p.name for p in presets],
                                "presets_sha256": digest}
    if seed is not None:
        settings.update(seed=seed, size=list(size or ()), fov=fov)
    return settings


def generate(out: Path, *, layouts: int, presets: Sequence[WeatherPreset],
             backend: str = "builtin", seed: int = 0, size: tuple[int, int] = (1024, 512),
             fov: float = 90.0, shard: Shard = Shard(), workers: int = 1, antialias: int = 1,
             host: str = "localhost", port: int = 2000, timeout: float = 20.0,
             maps: tuple[str, ...] = (), servers: Sequence[tuple[str, int]] = (),
             progress: bool = True) -> RunSummary:
    """Sample and render ``layouts`` layouts (this shard's share) under every preset.

    Complete layouts already in ``out`` are skipped, so re-running resumes a killed run.
    """
    if layouts < 1:
        raise UserError(f"--layouts must be at least 1, got {layouts}.")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}.")
    if not presets:
        raise UserError("No weather presets given.")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    check_run_settings(out, _settings(backend, presets, seed, size, fov))
    numbers = shard.take(range(layouts))
    ids = {n: _layout_id(backend, seed, n) for n in numbers}
    remove_stale_temporaries(out, set(ids.values()))
    todo = [n for n in numbers if not is_complete(out / ids[n])]
    forget_failures(out, {ids[n] for n in todo})
    template = _Job(out, backend, tuple(presets), seed, size, fov, antialias=antialias, host=host,
                    port=port, timeout=timeout, maps=tuple(maps))
    _execute(plan_jobs(template, todo, workers, servers), len(numbers),
             len(numbers) - len(todo), progress)
    tried = {ids[n] for n in todo}
    failed = len({f["layout_id"] for f in read_failures(out) if f["layout_id"] in tried})
    return RunSummary(out, backend, tuple(p.name for p in presets), len(numbers),
                      len(todo) - failed, len(numbers) - len(todo),
                      time.perf_counter() - start, tuple(ids[n] for n in numbers), failed)


def find_layout_files(source: Path) -> list[Path]:
    """Layout files under ``source``: ``*.yaml`` files, or ``<id>/layout.yaml`` of a raw folder."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"{source}: no such file or folder. Pass a layout file or a folder "
                        "of layout files (or a raw folder).")
    files = sorted(p for p in source.glob("*/" + LAYOUT_FILE)) or sorted(source.glob("*.yaml"))
    files = [f for f in files if f.name != "run.yaml"]
    if not files:
        raise UserError(f"{source}: no layout files found (looked for *.yaml and "
                        f"*/{LAYOUT_FILE}).")
    return files


def render_layouts(sources: Sequence[Path], out: Path, *, presets: Sequence[WeatherPreset],
                   backend: str = "builtin", shard: Shard = Shard(), workers: int = 1,
                   antialias: int = 1, host: str = "localhost", port: int = 2000,
                   timeout: float = 20.0, progress: bool = True) -> RunSummary:
    """Replay saved layout files under every preset (resumable like :func:`generate`)."""
    start = time.perf_counter()
    files = [f for s in sources for f in find_layout_files(s)]
    layouts = {f: load_layout(f) for f in files}  # validate all before rendering any
    seen: dict[str, Path] = {}
    for f, layout in layouts.items():
        check_layout_id(layout.id)
        if layout.id in seen:
            raise UserError(f"Two layout files have the id {layout.id!r}: {seen[layout.id]} "
                            f"and {f}. Layout ids must be unique.")
        seen[layout.id] = f
    out.mkdir(parents=True, exist_ok=True)
    check_run_settings(out, _settings(backend, presets, None, None, None))
    mine = [f for i, f in enumerate(files) if i % shard.count == shard.index]
    remove_stale_temporaries(out, {layouts[f].id for f in mine})
    todo = [f for f in mine if not is_complete(out / layouts[f].id)]
    jobs = [_Job(out, backend, tuple(presets), 0, (0, 0), 0.0, files=part, antialias=antialias,
                 host=host, port=port, timeout=timeout)
            for part in _split(todo, workers)]
    _execute(jobs, len(mine), len(mine) - len(todo), progress)
    return RunSummary(out, backend, tuple(p.name for p in presets), len(mine), len(todo),
                      len(mine) - len(todo), time.perf_counter() - start,
                      tuple(layouts[f].id for f in mine))


def default_workers() -> int:
    """Two render processes, more on big machines (llvmpipe already uses every core, but
    the Python parts of a worker hold its GIL while it renders)."""
    return max(2, min(8, (os.cpu_count() or 1) // 4))
