"""The CARLA backend: connection, version, reconnect with back-off, sampling and replay."""

from __future__ import annotations

import importlib.metadata
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from carla4agt_data.errors import UserError
from carla4agt_data.raw import Capture
from carla4agt_data.taxonomy import carla_tag_table, tag_table_name

from ..layout import Layout
from ..weather import WeatherPreset, import_carla
from .replay import LayoutUnavailable, ReplayOptions, replay
from .sampler import sample_layout
from .session import CaptureTimeout


class CarlaBackend:
    """Samples and replays layouts on one CARLA server.

    Args:
        host, port: the server's RPC address.
        timeout: seconds for every client call (map loads need 60 or more).
        retries: attempts per layout when the server stops answering; between attempts
            the client reconnects after ``backoff`` x 2^attempt seconds.
        maps: maps to sample on, round-robin by layout number (default: the loaded map).
        api, client_factory: the ``carla`` module and ``carla.Client`` (tests pass
            stand-ins).
    """

    name = "carla"

    def __init__(self, host: str = "localhost", port: int = 2000, *, timeout: float = 20.0,
                 retries: int = 3, backoff: float = 2.0, options: ReplayOptions | None = None,
                 maps: Sequence[str] = (), api: Any = None,
                 client_factory: Callable[[str, int], Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.retries, self.backoff = retries, backoff
        self.maps = tuple(maps)  # layout i is sampled on maps[i % len(maps)]
        self.options = options or ReplayOptions()
        self.api = api if api is not None else import_carla()
        self._factory = client_factory or self.api.Client
        self._sleep = sleep
        self._client: Any = None
        self.server_version = ""
        self.reconnects = 0

    def _connect(self) -> Any:
        client = self._factory(self.host, self.port)
        client.set_timeout(self.timeout)
        try:
            version = client.get_server_version()
        except RuntimeError as exc:
            raise UserError(f"No CARLA server answers at {self.host}:{self.port} ({exc}). Start "
                            "one (CarlaUE4.sh -RenderOffScreen), check --host/--port, or use "
                            "--backend builtin.") from None
        carla_tag_table(version)  # refuses versions before 0.9.10
        if tag_table_name(version) != "0.9.14+" and version != self.server_version:
            warnings.warn(f"CARLA {version} tags riders as pedestrians and every vehicle alike: "
                          "rider, bus, motorcycle and bicycle cannot be told apart. Use a "
                          "0.9.14 or newer server for all 16 classes.", stacklevel=2)
        self.server_version = version
        return client

    def _client_or_connect(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    @property
    def tag_table(self) -> str:
        self._client_or_connect()
        return tag_table_name(self.server_version)

    def versions(self) -> dict[str, str]:
        try:
            client_version = importlib.metadata.version("carla")
        except importlib.metadata.PackageNotFoundError:
            client_version = "unknown"
        self._client_or_connect()
        return {"carla_server": self.server_version, "carla_client": client_version}

    def _retrying(self, what: str, fn: Callable[[Any], Any], layout_id: str = "") -> Any:
        for attempt in range(self.retries):
            try:
                return fn(self._client_or_connect())
            except (RuntimeError, CaptureTimeout) as exc:  # CARLA's time-outs are RuntimeError
                self._client = None
                if attempt + 1 == self.retries:
                    raise LayoutUnavailable(
                        layout_id, f"{what}: the CARLA server at {self.host}:{self.port} failed "
                        f"{self.retries} times ({exc}). Check the server and run the same "
                        "command again: finished layouts are kept.") from None
                self.reconnects += 1
                self._sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def sample_layout(self, seed: int, index: int, *, width: int, height: int,
                      fov: float) -> Layout:
        return self._retrying(f"Sampling layout {index}", lambda client: sample_layout(
            client, seed, index, width=width, height=height, fov=fov, api=self.api,
            map_name=self.maps[index % len(self.maps)] if self.maps else "",
            fixed_delta=self.options.fixed_delta, frame_timeout=self.options.frame_timeout),
            layout_id=f"carla-{seed}-{index:06d}")

    def render(self, layout: Layout, presets: Sequence[WeatherPreset]) -> Iterator[Capture]:
        if layout.backend != "carla":
            raise UserError(f"Layout {layout.id} was sampled for the {layout.backend!r} backend; "
                            "the CARLA backend replays only CARLA layouts.")
        yield from self._retrying(f"Layout {layout.id}", lambda client: replay(
            client, layout, presets, self.api, self.options), layout_id=layout.id)

    def close(self) -> None:
        self._client = None
