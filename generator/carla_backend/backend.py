"""The CARLA backend: one server session kept across layouts, reconnect with back-off,
sampling and replay.

One backend object is the only client of its server (one render process per server):
it enters synchronous mode once, loads a map only when a layout needs another one (the
runner hands it each map's layouts as a block), and leaves the server asynchronous with
nothing of ours on it when closed, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from carla4agt_data.errors import UserError
from carla4agt_data.processes import sigterm_as_interrupt
from carla4agt_data.raw import Capture
from carla4agt_data.taxonomy import tag_table_name

from ..backends import LayoutUnavailable
from ..layout import Layout, sampled_layout_id
from ..weather import WeatherPreset, import_carla
from .connection import NoServer, connect
from .replay import ReplayOptions, replay
from .sampler import sample_layout
from .server import ServerSession, SessionOptions
from .session import CaptureTimeout


class CarlaBackend:
    """Samples and replays layouts on one CARLA server.

    Args:
        host, port: the server's RPC address.
        timeout: seconds for every client call but map loads (``load_timeout``).
        retries: attempts per layout when the server stops answering; between attempts
            the client reconnects after ``backoff`` x 2^attempt seconds.
        maps: maps to sample on: layout i on ``maps[i % len(maps)]`` (default: the
            loaded map). Checked against the server's maps at the first connection.
        api: the ``carla`` module (tests pass the stand-in's); ``sleep``: for back-off
            and the stale-server probe.
    """

    name = "carla"

    def __init__(self, host: str = "localhost", port: int = 2000, *, timeout: float = 20.0,
                 load_timeout: float = 300.0, retries: int = 3, backoff: float = 2.0,
                 options: ReplayOptions | None = None, maps: Sequence[str] = (),
                 api: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.host, self.port = host, port
        self.retries, self.backoff = retries, backoff
        self.maps = tuple(maps)
        self.options = options or ReplayOptions()
        self.session_options = SessionOptions(timeout=timeout, load_timeout=max(load_timeout,
                                                                                timeout))
        self.api = api if api is not None else import_carla()
        self._sleep = sleep
        self._session: ServerSession | None = None
        self.server_version = self.client_version = ""
        self.reconnects = 0
        self.stale_resets = 0
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(sigterm_as_interrupt())  # SIGTERM cleans up like Ctrl-C

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self) -> ServerSession:
        client, self.server_version, self.client_version = connect(
            self.api, self.host, self.port, self.session_options.timeout)
        session = ServerSession(self.api, client, self.address, self.session_options,
                                self._sleep)
        self.stale_resets += session.stale_reset
        try:
            if self.maps:
                session.check_maps(list(self.maps))
        except BaseException:
            session.close()
            raise
        return session

    def session(self) -> ServerSession:
        if self._session is None:
            self._session = self._connect()
        return self._session

    @property
    def tag_table(self) -> str:
        self.session()
        return tag_table_name(self.server_version)

    def versions(self) -> dict[str, str]:
        self.session()
        return {"carla_server": self.server_version, "carla_client": self.client_version}

    def _retrying(self, what: str, fn: Callable[[ServerSession], Any], layout_id: str) -> Any:
        for attempt in range(self.retries):
            try:
                return fn(self.session())
            except (RuntimeError, CaptureTimeout, NoServer) as exc:  # time-outs: RuntimeError
                if isinstance(exc, NoServer) and not self.reconnects and not attempt:
                    raise  # never reached it: not a layout's problem
                if self._session is not None:
                    self._session.abandon()
                self._session = None
                if attempt + 1 == self.retries:
                    raise LayoutUnavailable(
                        layout_id, f"{what}: the CARLA server at {self.address} failed "
                        f"{self.retries} times ({exc}). Check the server and run the same "
                        "command again: finished layouts are kept.") from None
                self.reconnects += 1
                self._sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def map_for(self, index: int) -> str:
        return self.maps[index % len(self.maps)] if self.maps else ""

    def sample_layout(self, seed: int, index: int, *, width: int, height: int,
                      fov: float) -> Layout:
        return self._retrying(f"Sampling layout {index}", lambda session: sample_layout(
            session, seed, index, width=width, height=height, fov=fov,
            map_name=self.map_for(index)), layout_id=sampled_layout_id("carla", seed, index))

    def render(self, layout: Layout, presets: Sequence[WeatherPreset]) -> Iterator[Capture]:
        if layout.backend != "carla":
            raise UserError(f"Layout {layout.id} was sampled for the {layout.backend!r} backend; "
                            "the CARLA backend replays only CARLA layouts.")
        yield from self._retrying(f"Layout {layout.id}", lambda session: replay(
            session, layout, presets, self.options), layout_id=layout.id)

    def close(self) -> None:
        """Asynchronous mode restored, our actors and cameras destroyed."""
        try:
            if self._session is not None:
                with contextlib.suppress(RuntimeError):  # a server that is gone
                    self._session.close()
        finally:
            self._session = None
            self._signals.close()
