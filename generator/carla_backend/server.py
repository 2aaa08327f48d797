"""One client's hold on one CARLA server, kept across layouts: the loaded map, synchronous
mode (entered before anything is spawned), the camera pair, traffic lights and street
lights. A map is loaded only when a layout needs another one; :meth:`ServerSession.close`
leaves the server asynchronous with nothing of ours on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cameras import ROLE_PREFIX, CameraPair
from .connection import check_maps, map_name, reset_stale_sync
from .session import SyncSession


@dataclass(frozen=True)
class SessionOptions:
    fixed_delta: float = 0.05  # simulation seconds per tick
    frame_timeout: float = 10.0  # seconds to wait for a tick's sensor data
    timeout: float = 20.0  # seconds for every client call but map loads
    load_timeout: float = 300.0  # seconds for a map load (Town12/13 take minutes)
    stale_probe: float = 1.0  # seconds to watch a synchronous server for ticks at connect


@dataclass
class TrafficLight:
    actor: Any
    opendrive_id: str
    location: tuple[float, float, float]


class ServerSession:
    """Synchronous mode on one server for as long as the backend runs."""

    def __init__(self, api: Any, client: Any, address: str, options: SessionOptions,
                 sleep: Callable[[float], None]) -> None:
        self.api, self.client, self.address, self.options = api, client, address, options
        self.world = client.get_world()
        self.stale_reset = reset_stale_sync(self.world, sleep, options.stale_probe, address)
        self.map = map_name(self.world.get_map().name)
        self._available: list[str] | None = None
        self.sync: SyncSession = SyncSession(self.world)
        self.cameras = CameraPair()
        self.traffic_lights: list[TrafficLight] = []
        self.street_lights: bool | None = None  # unknown until this session sets them
        self._lights: tuple[Any, list[Any]] | None = None
        self.spawned: list[int] = []  # actors of the layout being captured or sampled
        self._begin()

    def _begin(self) -> None:
        """Synchronous mode first (calls are then served between ticks, not one per frame),
        then sweep what a crashed run left, freeze traffic lights."""
        self.sync = SyncSession(self.world, fixed_delta=self.options.fixed_delta,
                                frame_timeout=self.options.frame_timeout)
        self.sync.__enter__()
        self.sweep()
        self.world.freeze_all_traffic_lights(True)  # world-wide until a map load
        self.traffic_lights = []
        for light in self.world.get_actors().filter("traffic.traffic_light*"):
            loc = light.get_transform().location
            self.traffic_lights.append(TrafficLight(light, str(light.get_opendrive_id()),
                                                    (loc.x, loc.y, loc.z)))
        self.cameras = CameraPair()
        self.street_lights = None
        self._lights = None

    def sweep(self) -> int:
        """Destroy actors this tool left behind (by role name); returns how many."""
        ids = [a.id for a in self.world.get_actors()
               if str(a.attributes.get("role_name", "")).startswith(ROLE_PREFIX)]
        self.destroy(ids)
        return len(ids)

    def destroy(self, ids: list[int]) -> None:
        if ids:
            self.client.apply_batch_sync([self.api.command.DestroyActor(i) for i in ids],
                                         False)

    def check_maps(self, names: list[str]) -> None:
        """Refuse map names the server does not have (asked once per session)."""
        if self._available is None:
            self._available = list(self.client.get_available_maps())
        check_maps(self._available, names, self.address)

    def use_map(self, name: str) -> None:
        """Load ``name`` unless it is loaded; a long time-out only around the load."""
        if not name or map_name(name) == self.map:
            return
        self.check_maps([name])
        self.sync.__exit__(None, None, None)  # asynchronous before the load
        self.client.set_timeout(self.options.load_timeout)
        try:
            if hasattr(self.client, "load_world_if_different"):  # 0.9.15+
                self.client.load_world_if_different(name)
            else:
                self.client.load_world(name)
        finally:
            self.client.set_timeout(self.options.timeout)
        self.world = self.client.get_world()  # a load makes a new world object
        self.map = map_name(name)
        self._begin()

    def set_street_lights(self, on: bool) -> None:
        """Street lights on or off (only when that changes)."""
        if self.street_lights is on:
            return
        if self._lights is None:
            manager = self.world.get_lightmanager()
            # lights would otherwise follow the sun on every weather change, against the
            # preset (and against what this session believes is on)
            manager.set_day_night_cycle(False)
            self._lights = (manager, manager.get_all_lights(self.api.LightGroup.Street))
        manager, lights = self._lights
        (manager.turn_on if on else manager.turn_off)(lights)
        self.street_lights = on

    def abandon(self) -> None:
        """Drop everything without calling the server (it stopped answering)."""
        self.sync.abandon()
        self.cameras = CameraPair()

    def close(self) -> None:
        """Asynchronous mode restored first, then our actors and cameras destroyed."""
        try:
            self.sync.__exit__(None, None, None)
        finally:
            self.destroy(self.spawned)
            self.spawned = []
