"""The backend protocol shared by the runner, and backend selection (``--backend``).

A backend samples layouts and renders a layout under weather presets; the runner does the
rest (which layouts, shards, resume, atomic writes, progress) the same way for every one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from carla4agt_data.errors import UserError
from carla4agt_data.raw import Capture

from .layout import Layout
from .weather import WeatherPreset, import_carla

BACKEND_CHOICES = ("auto", "builtin", "carla")


class LayoutSkipped(UserError):
    """A backend could not render one layout; the runner records it in ``failed.jsonl``
    and goes on with the others (the next run tries it again)."""

    def __init__(self, layout_id: str, message: str, differing: int = 0) -> None:
        self.layout_id, self.differing = layout_id, differing
        super().__init__(message)


class LayoutUnavailable(LayoutSkipped):
    """The server failed on one layout as many times as allowed; the run goes on."""

    def __init__(self, layout_id: str, reason: str) -> None:
        super().__init__(layout_id, reason)


class LayoutFailed(LayoutSkipped):
    """A layout's appearances do not share one tag map (after a retry)."""

    def __init__(self, layout_id: str, differing: int) -> None:
        super().__init__(
            layout_id, f"Layout {layout_id}: the tag maps of its appearances differ in "
            f"{differing} pixels (after one retry). Something moved between weathers; the "
            "layout is recorded as failed.", differing)


class Backend(Protocol):
    """What the runner needs from a renderer.

    ``render`` raises :class:`LayoutSkipped` (or a subclass) for a layout it cannot render
    while the backend stays usable; any other exception ends the run.
    """

    @property
    def name(self) -> str:
        """"builtin" or "carla": recorded in every commit marker."""

    @property
    def tag_table(self) -> str:
        """CARLA tag numbering of the tag images: "0.9.14+" or "0.9.10-0.9.13"."""

    def versions(self) -> dict[str, str]:
        """Versions to record (renderer, server, client)."""

    def sample_layout(self, seed: int, index: int, *, width: int, height: int,
                      fov: float) -> Layout:
        """Layout number ``index`` of the dataset with ``seed``."""

    def render(self, layout: Layout, presets: Sequence[WeatherPreset]) -> Iterator[Capture]:
        """Render ``layout`` once per preset, in order; all captures share one label map."""

    def close(self) -> None:
        """Release what the backend holds (contexts, connections, spawned actors)."""


def server_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port (a CARLA server's RPC port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def carla_server_version(host: str, port: int, timeout: float = 3.0,
                         api: Any = None) -> str | None:
    """The version a CARLA server at host:port reports, or None when nothing there answers
    the version call (no server, another program on the port, or no client installed)."""
    if not server_answers(host, port, timeout=min(timeout, 1.0)):
        return None  # fast path: nothing listens
    if api is None:
        try:
            import carla
        except ImportError:
            return None
        api = carla
    try:
        client = api.Client(host, port)
        client.set_timeout(timeout)
        return str(client.get_server_version())
    except Exception:  # the client raises RuntimeError, and others on a foreign protocol
        return None


def choose_backend(name: str, *, host: str = "localhost", port: int = 2000,
                   timeout: float = 3.0, api: Any = None) -> tuple[str, str]:
    """Resolve ``--backend`` to a concrete backend name, with a sentence saying why.

    ``auto`` is CARLA only when a CARLA server answered the version call, not when merely
    something listens on the port.
    """
    if name not in BACKEND_CHOICES:
        raise UserError(f"Unknown backend {name!r}. Valid values are "
                        + ", ".join(BACKEND_CHOICES) + ".")
    if name == "builtin":
        return "builtin", "Using the built-in procedural renderer (not CARLA)."
    if name == "carla":
        import_carla()  # a clear message when the client wheel is missing
    version = carla_server_version(host, port, timeout=timeout, api=api)
    if name == "carla" and version is None:
        raise UserError(f"No CARLA server answers at {host}:{port}. Start one "
                        "(CarlaUE4.sh -RenderOffScreen), check --host/--port, or use --backend "
                        "builtin for the built-in procedural renderer.")
    if version is not None:
        return "carla", f"Using the CARLA server {version} at {host}:{port}."
    return "builtin", (f"No CARLA server answers at {host}:{port}: using the built-in "
                       "procedural renderer (not CARLA).")


def check_layout(layout: Layout, source: str | Path, backend: str) -> None:
    """Refuse a layout that ``backend`` could not render, before anything renders."""
    if layout.backend != backend:
        raise UserError(f"{source}: the layout {layout.id} was sampled for the "
                        f"{layout.backend!r} backend, but this run uses {backend!r}. Render "
                        f"it with --backend {layout.backend}.")
    if backend == "builtin":
        from .builtin.city import check_layout as check_builtin

        check_builtin(layout, source)


def open_backend(name: str, *, antialias: int = 1, host: str = "localhost", port: int = 2000,
                 timeout: float = 20.0, maps: tuple[str, ...] = ()) -> Backend:
    """Create a concrete backend ("builtin" or "carla")."""
    if name == "builtin":
        from .builtin.backend import BuiltinBackend

        return BuiltinBackend(antialias=antialias)
    if name == "carla":
        from .carla_backend.backend import CarlaBackend

        return CarlaBackend(host, port, timeout=timeout, maps=maps)
    raise UserError(f"Unknown backend {name!r}. Use --backend builtin or carla.")
