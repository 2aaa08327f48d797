"""The generate/render runner shared by every backend: shards, resume, workers, progress.

Example:
    >>> settings = GenerateSettings(layouts=50, presets=resolve_weathers("all"))
    >>> summary = generate(Path("raw"), settings)
    >>> summary.rendered, summary.skipped
    (50, 0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import write_atomic
from carla4agt_data.processes import allow_interrupts, die_with_parent, interrupts_deferred
from carla4agt_data.raw import (
    LAYOUT_FILE,
    MARKER,
    check_run_settings,
    is_complete,
    remove_stale_temporaries,
    write_layout_folder,
)

from .backends import Backend, LayoutSkipped, check_layout, open_backend
from .layout import (
    MAX_SEED,
    MAX_SIDE,
    MIN_SIDE,
    Layout,
    find_layout_files,
    load_layout,
    sampled_layout_id,
)
from .runlock import run_lock
from .weather import WeatherPreset


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
    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if not match:
        raise UserError(f"Invalid shard {text[:40]!r}: use I/N, for example 0/4.")
    if len(match[1]) > 6 or len(match[2]) > 6:
        raise UserError(f"Invalid shard {text[:40]!r}: use at most 999999 shards.")
    return Shard(int(match[1]), int(match[2]))


def shard_from_environment(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of a Slurm job array task (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT),
    or None outside one. Submit the array as ``--array=0-<N-1>``."""
    env = os.environ if env is None else env
    task, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    if (not (re.fullmatch(r"[0-9]{1,6}", task) and re.fullmatch(r"[0-9]{1,6}", count))
            or not int(task) < int(count)):
        raise UserError(f"SLURM_ARRAY_TASK_ID={task!r} and SLURM_ARRAY_TASK_COUNT={count!r} "
                        "do not name a shard: submit the array as --array=0-<N-1>, or pass "
                        "--shard I/N.")
    return Shard(int(task), int(count))


def check_servers(servers: Sequence[tuple[str, int]]) -> None:
    """Refuse a server given twice: two render processes on one server break each other."""
    seen = set()
    for host, port in servers:
        if (host, port) in seen:
            raise UserError(f"--server {host}:{port} is given twice. A CARLA server takes one "
                            "render process; give each server once.")
        seen.add((host, port))


def parse_server(text: str) -> tuple[str, int]:
    """``"host:port"`` -> ``("host", port)``."""
    host, _, port = text.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise UserError(f"Invalid server {text[:80]!r}: use HOST:PORT, for example "
                        "localhost:2000.")
    return host, int(port)


def parse_size(text: str) -> tuple[int, int]:
    """``"1024x512"`` -> ``(1024, 512)``; images must be 2:1."""
    match = re.fullmatch(r"\s*([0-9]+)\s*[xX]\s*([0-9]+)\s*", text)
    if not match:
        raise UserError(f"Invalid size {text[:40]!r}: use WIDTHxHEIGHT, for example 1024x512.")
    if len(match[1]) > 6 or len(match[2]) > 6:
        raise UserError(f"Invalid size {text[:40]!r}: width and height must be "
                        f"{MIN_SIDE} to {MAX_SIDE}.")
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise UserError(f"Invalid size {text!r}: width and height must be "
                        f"{MIN_SIDE} to {MAX_SIDE}.")
    if width != 2 * height:
        raise UserError(f"Invalid size {text!r}: images are 2:1 (width = 2 x height), for "
                        "example 1024x512 or 2048x1024.")
    return width, height


def check_render_size(width: int, height: int, antialias: int = 1) -> None:
    """Refuse an image size the renderer cannot hold (supersampling multiplies it)."""
    if not (MIN_SIDE <= width and MIN_SIDE <= height):
        raise UserError(f"The image size {width}x{height} is too small: width and height "
                        f"must be at least {MIN_SIDE}.")
    if max(width, height) * antialias > MAX_SIDE:
        raise UserError(f"The image size {width}x{height} with --antialias {antialias} renders "
                        f"{width * antialias}x{height * antialias} pixels; at most {MAX_SIDE} "
                        "per side fit. Use a smaller --size or --antialias.")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How a run renders; shared by :class:`GenerateSettings` and :class:`RenderSettings`."""

    presets: tuple[WeatherPreset, ...]
    backend: str = "builtin"  # a concrete backend: resolve "auto" with choose_backend first
    antialias: int = 1  # builtin: supersampling factor for RGB
    shard: Shard = Shard()
    workers: int = 1
    host: str = "localhost"  # CARLA server
    port: int = 2000
    timeout: float = 20.0  # seconds for every CARLA client call
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "presets", tuple(self.presets))
        if not self.presets:
            raise UserError("No weather presets given.")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}.")
        if not 1 <= self.antialias <= 4:
            raise UserError(f"--antialias must be 1 (off) to 4, got {self.antialias}.")
        if self.backend not in ("builtin", "carla"):
            raise UserError(f"Unknown backend {self.backend!r}: a run renders with 'builtin' or "
                            "'carla' (resolve 'auto' with choose_backend first).")

    def recorded(self) -> dict[str, Any]:
        """What a resume must repeat, as recorded in ``run.yaml``."""
        text = "".join(p.to_yaml() for p in self.presets)
        return {"backend": self.backend, "weathers": [p.name for p in self.presets],
                "presets_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
                "antialias": self.antialias}


@dataclass(frozen=True, kw_only=True)
class GenerateSettings(RunSettings):
    """A ``generate`` run: sample ``layouts`` layouts (this shard's share) and render them."""

    layouts: int
    seed: int = 0
    size: tuple[int, int] = (1024, 512)
    fov: float = 90.0
    maps: tuple[str, ...] = ()  # CARLA maps: layout i on maps[i % len(maps)]
    servers: tuple[tuple[str, int], ...] = ()  # several CARLA servers, one process each

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "maps", tuple(self.maps))
        object.__setattr__(self, "servers", tuple(self.servers))
        check_servers(self.servers)
        if self.layouts < 1:
            raise UserError(f"--layouts must be at least 1, got {self.layouts}.")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must be 0 to {MAX_SEED}, got {self.seed}.")
        if not (math.isfinite(self.fov) and 1 <= self.fov <= 179):
            raise UserError(f"--fov must be 1 to 179 degrees, got {self.fov}.")
        check_render_size(*self.size, self.antialias)

    def recorded(self) -> dict[str, Any]:
        return {**super().recorded(), "seed": self.seed, "size": list(self.size),
                "fov": self.fov}


@dataclass(frozen=True, kw_only=True)
class RenderSettings(RunSettings):
    """A ``render`` run: replay saved layout files."""

    servers: tuple[tuple[str, int], ...] = ()  # several CARLA servers, one process each

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "servers", tuple(self.servers))
        check_servers(self.servers)


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
class _Work:
    """What one worker process needs, whatever it renders (picklable)."""

    out: Path
    backend: str
    presets: tuple[WeatherPreset, ...]
    antialias: int = field(default=1, kw_only=True)
    host: str = field(default="localhost", kw_only=True)  # CARLA server (backend "carla")
    port: int = field(default=2000, kw_only=True)
    timeout: float = field(default=20.0, kw_only=True)
    maps: tuple[str, ...] = field(default=(), kw_only=True)
    encoder_threads: int = field(default=2, kw_only=True)

    def layouts(self, backend: Backend) -> Iterator[tuple[str, Callable[[], Layout]]]:
        """(layout id, how to get the layout) for each layout of this share, in order."""
        raise NotImplementedError


@dataclass(frozen=True)
class _Job(_Work):
    """Sample layouts ``indices`` of the dataset ``seed`` and render them (generate)."""

    seed: int
    size: tuple[int, int]
    fov: float
    indices: tuple[int, ...] = ()

    def layouts(self, backend: Backend) -> Iterator[tuple[str, Callable[[], Layout]]]:
        for index in self.indices:
            yield (sampled_layout_id(self.backend, self.seed, index),
                   partial(backend.sample_layout, self.seed, index, width=self.size[0],
                           height=self.size[1], fov=self.fov))


@dataclass(frozen=True)
class _ReplayJob(_Work):
    """Render layouts read (and checked) by the parent (render)."""

    items: tuple[Layout, ...] = ()

    def layouts(self, backend: Backend) -> Iterator[tuple[str, Callable[[], Layout]]]:
        for layout in self.items:
            yield layout.id, partial(lambda given: given, layout)


def _render_one(backend: Backend, layout: Layout, job: _Work, pool: ThreadPoolExecutor,
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


def _run_job(job: _Work, report: Callable[[str], None]) -> None:
    backend = open_backend(job.backend, antialias=job.antialias, host=job.host, port=job.port,
                           timeout=job.timeout, maps=job.maps)
    scene_seconds = lambda: getattr(backend, "last_scene_seconds", 0.0)  # noqa: E731
    pending: list[Future] = []

    def fail(layout_id: str, exc: LayoutSkipped) -> None:  # recorded, never silently kept
        record_failure(job.out, layout_id, str(exc), exc.differing)
        report(layout_id)

    try:
        with ThreadPoolExecutor(job.encoder_threads) as pool:
            for layout_id, get_layout in job.layouts(backend):
                try:
                    layout = get_layout()
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
    """The failure records; a line that is not one (a run killed while appending it, or an
    edit) is skipped: its layout is not complete either, so the next run tries it again."""
    path = out / FAILED_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("layout_id"), str):
            records.append({"differing_pixels": 0, "message": "", **record})
    return records


def forget_failures(out: Path, layout_ids: set[str]) -> None:
    """Drop the failure records of layouts about to be tried again."""
    kept = [f for f in read_failures(out) if f["layout_id"] not in layout_ids]
    if (out / FAILED_FILE).is_file():
        write_atomic(out / FAILED_FILE, "".join(json.dumps(f) + "\n" for f in kept))


def _worker_main(job: _Work, queue: Any, parent_pid: int) -> None:
    die_with_parent(parent_pid)  # a killed generate must not leave workers rendering
    allow_interrupts()  # the parent held them while it started us
    try:
        _run_job(job, lambda name: queue.put(("done", name)))
        queue.put(("exit", None))
    except KeyboardInterrupt:
        queue.put(("exit", None))
    except BaseException as exc:  # reported to the parent, which raises it
        # plain classes only: an exception with a custom __init__ may not unpickle
        queue.put(("error", _plain(exc)))


def _plain(exc: BaseException) -> BaseException:
    """The worker's exception as a class that survives pickling, keeping what the command
    line reports: a UserError's message, an OSError's errno and file (a full disk)."""
    if isinstance(exc, UserError):
        return UserError(str(exc))
    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, exc.strerror or str(exc), exc.filename)
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _tick(bar: tqdm) -> None:
    bar.update(1)


def _execute(jobs: Sequence[_Work], total: int, done: int, progress: bool) -> None:
    bar = tqdm(total=total, initial=done, unit="layout", disable=not progress,
               desc="Rendering", dynamic_ncols=True)
    try:
        if len(jobs) == 1:
            _run_job(jobs[0], lambda name: _tick(bar))
            return
        ctx = mp.get_context("spawn")  # a fresh process for each GL context
        queue = ctx.Queue()
        procs = [ctx.Process(target=_worker_main, args=(job, queue, os.getpid()),
                             daemon=True) for job in jobs]
        with interrupts_deferred():  # never stop half-way through sending a job
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
        finally:  # also on Ctrl-C and SIGTERM (raised as KeyboardInterrupt)
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
    finally:
        bar.close()


def _split(items: Sequence[Any], workers: int) -> list[tuple[Any, ...]]:
    return [tuple(items[k::workers]) for k in range(workers) if items[k::workers]]


def _blocks(items: Sequence[Any], parts: int) -> list[tuple[Any, ...]]:
    """``items`` cut into ``parts`` contiguous runs of near-equal length."""
    n = len(items)
    return [tuple(items[k * n // parts:(k + 1) * n // parts]) for k in range(parts)]


def plan_jobs(template: _Job, todo: Sequence[int], workers: int,
              servers: Sequence[tuple[str, int]] = ()) -> list[_Job]:
    """Deal the layouts to processes. CARLA: exactly one process per server (a server
    serves one ticking client; ``workers`` does not apply), each given whole blocks of
    one map's layouts (layout i is on map i % len(maps)), so that a server loads each of
    its maps once. Built-in renderer: ``workers`` processes."""
    if template.backend == "carla":
        servers = list(servers) or [(template.host, template.port)]
        maps = max(len(template.maps), 1)
        ordered = sorted(todo, key=lambda n: (n % maps, n))
        return [dataclasses.replace(template, indices=part, host=host, port=port)
                for (host, port), part in zip(servers, _blocks(ordered, len(servers)),
                                              strict=True) if part]
    return [dataclasses.replace(template, indices=part) for part in _split(todo, workers)]


def generate(out: Path, settings: GenerateSettings | None = None, /,
             **options: Any) -> RunSummary:
    """Sample and render ``settings.layouts`` layouts (this shard's share) under every preset.

    Pass a :class:`GenerateSettings`, or its fields as keywords
    (``generate(out, layouts=50, presets=resolve_weathers("all"))``). Complete layouts
    already in ``out`` are skipped, so re-running resumes a killed run. One run at a time
    writes a shard of ``out``.
    """
    s = settings if settings is not None else GenerateSettings(**options)
    start = time.perf_counter()
    with run_lock(out, s.shard.index, s.shard.count):
        check_run_settings(out, s.recorded())
        numbers = s.shard.take(range(s.layouts))
        ids = {n: sampled_layout_id(s.backend, s.seed, n) for n in numbers}
        remove_stale_temporaries(out, set(ids.values()))
        todo = [n for n in numbers if not is_complete(out / ids[n])]
        forget_failures(out, {ids[n] for n in todo})
        template = _Job(out, s.backend, s.presets, s.seed, s.size, s.fov,
                        antialias=s.antialias, host=s.host, port=s.port, timeout=s.timeout,
                        maps=s.maps)
        _execute(plan_jobs(template, todo, s.workers, s.servers), len(numbers),
                 len(numbers) - len(todo), s.progress)
        tried = {ids[n] for n in todo}
        failed = len({f["layout_id"] for f in read_failures(out) if f["layout_id"] in tried})
    return RunSummary(out, s.backend, tuple(p.name for p in s.presets), len(numbers),
                      len(todo) - failed, len(numbers) - len(todo),
                      time.perf_counter() - start, tuple(ids[n] for n in numbers), failed)


def _same_layout(folder: Path, layout: Layout) -> bool:
    """Whether ``folder`` is complete and was rendered from exactly this layout (an edited
    layout file that keeps its id is rendered again)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        recorded = marker["files"][LAYOUT_FILE]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no marker, or one that cannot be read: redo
    return recorded == hashlib.sha256(layout.to_yaml().encode()).hexdigest()


def _read_layouts(sources: Sequence[Path], backend: str, antialias: int) -> dict[Path, Layout]:
    """Every layout file under ``sources``, checked for what rendering will use."""
    layouts: dict[Path, Layout] = {}
    seen: dict[str, Path] = {}
    for f in [f for source in sources for f in find_layout_files(source)]:
        layout = load_layout(f)
        if layout.id in seen:
            raise UserError(f"Two layout files have the id {layout.id!r}: {seen[layout.id]} "
                            f"and {f}. Layout ids must be unique.")
        seen[layout.id] = f
        check_layout(layout, f, backend)
        try:
            check_render_size(layout.camera.width, layout.camera.height, antialias)
        except UserError as exc:
            raise UserError(f"{f}: {exc}") from None
        layouts[f] = layout
    sizes = {(la.camera.width, la.camera.height): f for f, la in layouts.items()}
    if len(sizes) > 1:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        raise UserError(f"The layouts have different image sizes ({a[0]}x{a[1]} in {fa}, "
                        f"{b[0]}x{b[1]} in {fb}); one run holds one size. Render them into "
                        "separate --out folders.")
    return layouts


def render_layouts(sources: Sequence[Path], out: Path, settings: RenderSettings | None = None,
                   /, **options: Any) -> RunSummary:
    """Replay saved layout files under every preset (resumable like :func:`generate`).

    Every file is read and checked before anything renders; ``run.yaml`` then records the
    image size, so a later run of another size into ``out`` is refused.
    """
    s = settings if settings is not None else RenderSettings(**options)
    start = time.perf_counter()
    layouts = _read_layouts(sources, s.backend, s.antialias)
    files = list(layouts)
    size = next(iter(layouts.values())).camera
    with run_lock(out, s.shard.index, s.shard.count):
        check_run_settings(out, {**s.recorded(), "size": [size.width, size.height]})
        mine = s.shard.take(range(len(files)))
        remove_stale_temporaries(out, {layouts[files[i]].id for i in mine})
        todo = [layouts[files[i]] for i in mine
                if not _same_layout(out / layouts[files[i]].id, layouts[files[i]])]
        forget_failures(out, {la.id for la in todo})
        if s.backend == "carla":  # one process per server, each map's layouts as blocks
            servers = list(s.servers) or [(s.host, s.port)]
            ordered = sorted(todo, key=lambda la: la.map)  # stable: file order within a map
            parts = list(zip(servers, _blocks(ordered, len(servers)), strict=True))
        else:
            parts = [((s.host, s.port), part) for part in _split(todo, s.workers)]
        jobs = [_ReplayJob(out, s.backend, s.presets, part, antialias=s.antialias,
                           host=host, port=port, timeout=s.timeout)
                for (host, port), part in parts if part]
        _execute(jobs, len(mine), len(mine) - len(todo), s.progress)
        tried = {la.id for la in todo}
        failed = len({f["layout_id"] for f in read_failures(out) if f["layout_id"] in tried})
    return RunSummary(out, s.backend, tuple(p.name for p in s.presets), len(mine),
                      len(todo) - failed, len(mine) - len(todo), time.perf_counter() - start,
                      tuple(layouts[files[i]].id for i in mine), failed)


def default_workers() -> int:
    """Two render processes, more on big machines (llvmpipe already uses every core, but
    the Python parts of a worker hold its GIL while it renders)."""
    return max(2, min(8, (os.cpu_count() or 1) // 4))
