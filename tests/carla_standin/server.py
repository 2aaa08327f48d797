"""The server side of the stand-in: one simulation (episode, settings, actors, frames) and
the costs a real server would charge for what its clients asked."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import carla

FRAME_S = 0.04  # planning cost of one frame / tick (carla.md, issues #3836, #6162)
LOAD_S = 20.0  # planning cost of one map load (carla.md: 10 to 30 s)
MAPS = ("/Game/Carla/Maps/Town01", "/Game/Carla/Maps/Town02", "/Game/Carla/Maps/Town10HD_Opt")
BLUEPRINTS = ("vehicle.tesla.model3", "vehicle.audi.a2", "walker.pedestrian.0001",
              "walker.pedestrian.0002", "sensor.camera.rgb",
              "sensor.camera.semantic_segmentation", "static.prop.bench01")


@dataclass
class Costs:
    """What costs time on a real server."""

    ticks: int = 0  # synchronous ticks, whoever asked for them
    async_calls: int = 0  # blocking calls served in asynchronous mode (about a frame each)
    map_loads: int = 0
    unrequested_frames: int = 0  # tick cues queued in asynchronous mode, run at sync start

    def seconds(self) -> float:
        """Estimated seconds on a real server (carla.md's planning costs)."""
        return (self.ticks + self.async_calls) * FRAME_S + self.map_loads * LOAD_S

    def minus(self, other: Costs) -> Costs:
        return Costs(self.ticks - other.ticks, self.async_calls - other.async_calls,
                     self.map_loads - other.map_loads,
                     self.unrequested_frames - other.unrequested_frames)


class Expired(RuntimeError):
    pass


@dataclass
class Server:
    """One simulated CARLA server. Tests reach into it to arrange situations.

    ``failing``: the next N blocking calls time out; ``foreign_ticker``: another client
    drives the server in synchronous mode; ``deliver``: "inline", "thread" (sensor data
    arrives on another thread, possibly after ``tick`` returned), ``stale`` (frames
    re-sent first), ``reorder`` (the next frame first), ``silent`` (no sensor data).
    """

    host: str = "localhost"
    port: int = 2000
    version: str = "0.9.16"
    client_version: str = "0.9.16"
    maps: tuple[str, ...] = MAPS
    map_name: str = "/Game/Carla/Maps/Town10HD_Opt"
    blueprints: tuple[str, ...] = BLUEPRINTS
    has_light_manager: bool = True
    failing: int = 0
    foreign_ticker: bool = False
    deliver: str = "inline"
    stale: int = 0
    reorder: bool = False
    silent: bool = False
    costs: Costs = field(default_factory=Costs)
    frame: int = 100
    clock: float = 0.0
    episode: int = 1
    connections: int = 0
    events: list[str] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)  # every client.set_timeout
    load_timeouts: list[float] = field(default_factory=list)  # the time-out of each load
    on_tick: list[Callable[[Server], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from .world import make_traffic_lights

        # A new server runs asynchronously with a variable step (docs: adv_synchrony_timestep)
        self.settings = carla.WorldSettings(synchronous_mode=False, fixed_delta_seconds=0.0)
        self.settings.fixed_delta_seconds = None
        self.snapshot_delta = 0.0
        self.actors: dict[int, Any] = {}
        self.next_id = 1
        self.weather = carla.WeatherParameters(sun_altitude_angle=45.0)
        self.street_lights = False
        self.day_night_cycle = True  # street lights follow the sun (see World.set_weather)
        self.pending_lights: list[tuple[int, bool]] = []  # (visible from frame, on)
        self.lights_frozen = False
        self.pending_cues = 0
        self.tickers: list[Any] = []  # clients that ticked in this synchronous period
        self.traffic_lights = make_traffic_lights(self)

    # --- plumbing used by every stand-in object ------------------------------------
    def api(self) -> Any:
        from .client import make_api

        return make_api({(self.host, self.port): self})

    def check_episode(self, episode: int | None) -> None:
        if episode is not None and episode != self.episode:
            # LibCarla EpisodeProxy.cpp: objects of an old episode fail after a map load
            raise Expired("trying to access an expired episode; a new episode was started "
                          "in the simulation but an object tried accessing the old one.")

    def call(self, what: str, episode: int | None = None) -> None:
        """A blocking call reaches the server."""
        self.check_episode(episode)
        if self.failing > 0:
            self.failing -= 1
            raise RuntimeError(f"time-out of 20000ms while waiting for the simulator, make "
                               f"sure the simulator is ready and connected to "
                               f"{self.host}:{self.port}")
        if not self.settings.synchronous_mode:
            # CarlaEngine.cpp OnPreTick: Server.RunSome(1u): about one RPC per frame
            self.costs.async_calls += 1
            self._free_frames(1)
        self.events.append(what)

    def sleep(self, seconds: float) -> None:
        """Simulated time passes; an asynchronous server (or another ticking client)
        advances frames meanwhile."""
        self.clock += seconds
        if not self.settings.synchronous_mode or self.foreign_ticker:
            self._free_frames(max(1, int(seconds / FRAME_S)))

    def _free_frames(self, n: int) -> None:
        for _ in range(n):
            self._step(self.settings.fixed_delta_seconds or FRAME_S)

    # --- settings -------------------------------------------------------------------
    def get_settings(self) -> Any:
        return copy_settings(self.settings)  # every call returns a new object, like the RPC

    def apply_settings(self, settings: Any, client: Any) -> int:
        entering = settings.synchronous_mode and not self.settings.synchronous_mode
        self.settings = copy_settings(settings)
        if settings.synchronous_mode:
            self._ticked_by(client)
        else:
            self.tickers.clear()
        if entering:
            # Carla Episode TickCue: cues queued in async mode run once sync mode starts
            while self.pending_cues:
                self.pending_cues -= 1
                self.costs.unrequested_frames += 1
                self.tick(client, counted=True)
        delta = settings.fixed_delta_seconds
        if delta is not None and abs(delta - self.snapshot_delta) > 1e-6:
            # LibCarla Simulator.cpp SetEpisodeSettings (0.9.16): ticks until the
            # snapshot shows the new fixed_delta_seconds (up to 30 times)
            if settings.synchronous_mode:
                self.tick(client, counted=True)
            else:
                self._free_frames(1)
        return self.frame

    # --- ticking --------------------------------------------------------------------
    def _ticked_by(self, client: Any) -> None:
        # docs adv_synchrony_timestep: only one client may tick; two break each other
        if self.foreign_ticker:
            raise RuntimeError("stand-in: another client already drives this server in "
                               "synchronous mode")
        if client in self.tickers and self.tickers[-1] is not client:
            raise RuntimeError("stand-in: two clients tick one server in synchronous mode")
        if not self.tickers or self.tickers[-1] is not client:
            self.tickers.append(client)

    def tick(self, client: Any, counted: bool = False) -> int:
        if not self.settings.synchronous_mode:
            # World.cpp Tick in async mode only queues a cue and waits for a frame
            self.pending_cues += 1
            self.call("tick (asynchronous)")
            return self.frame
        if not counted:
            self._ticked_by(client)
        if self.failing > 0:
            self.failing -= 1
            raise RuntimeError("time-out of 20000ms while waiting for the simulator")
        self.costs.ticks += 1
        self._step(self.settings.fixed_delta_seconds or FRAME_S)
        return self.frame

    def _step(self, dt: float) -> None:
        from .actors import Camera

        self.frame += 1
        self.clock += dt
        self.snapshot_delta = dt
        for actor in list(self.actors.values()):
            actor._step(dt)
        for light in self.traffic_lights:
            light._step(dt)
        # LightManager.cpp: changes reach the scene with a later tick's callback
        for visible_from, on in list(self.pending_lights):
            if visible_from <= self.frame:
                self.street_lights = on
                self.pending_lights.remove((visible_from, on))
        cameras = [a for a in self.actors.values() if isinstance(a, Camera)]
        for camera in cameras:
            camera._adapt(dt)
        images = [(camera, camera._render(self.frame)) for camera in cameras]
        for camera, image in images:
            camera._deliver(image)
        for hook in list(self.on_tick):
            hook(self)

    # --- episodes -------------------------------------------------------------------
    def load_world(self, name: str, reset_settings: bool = True) -> None:
        from .world import make_traffic_lights

        full = self.find_map(name)
        if full is None:
            raise RuntimeError(f"map '{name}' not found")
        # Client.load_world: every actor destroyed, a NEW world, settings reset (docs
        # core_world "Changing the map"); 10 to 30 s each (carla.md)
        self.costs.map_loads += 1
        self.clock += LOAD_S
        for actor in list(self.actors.values()):
            actor._alive = False
        self.actors.clear()
        self.episode += 1
        self.map_name = full
        if reset_settings:
            self.settings = carla.WorldSettings(synchronous_mode=False)
            self.settings.fixed_delta_seconds = None
            self.tickers.clear()
        self.pending_cues = 0
        self.lights_frozen = False
        self.street_lights = False
        self.day_night_cycle = True
        self.pending_lights = []
        self.traffic_lights = make_traffic_lights(self)
        self.events.append(f"load {name}")

    def find_map(self, name: str) -> str | None:
        for full in self.maps:
            if name in (full, full.split("/")[-1]):
                return full
        return None

    # --- actors ---------------------------------------------------------------------
    def add_actor(self, blueprint: Any, transform: Any, attach_to: Any = None) -> Any:
        from .actors import make_actor

        actor = make_actor(self, self.next_id, blueprint, transform)
        self.next_id += 1
        self.actors[actor.id] = actor
        return actor

    def collision(self, blueprint_id: str, transform: Any) -> str:
        """Why an actor cannot stand at ``transform`` ("" when it can)."""
        from .actors import footprint, rest_height

        loc = transform.location
        ground = self.ground_z(loc.x, loc.y)
        if ground is None or loc.z < ground + rest_height(blueprint_id) - 0.01:
            # ActorDispatcher: a spawn that overlaps geometry fails with this message
            return "Spawn failed because of collision at spawn position"
        radius = footprint(blueprint_id)
        for other in self.actors.values():
            if other._radius <= 0:
                continue
            o = other._transform.location
            if math.hypot(o.x - loc.x, o.y - loc.y) < radius + other._radius:
                return "Spawn failed because of collision at spawn position"
        return ""

    def ground_z(self, x: float, y: float) -> float | None:
        """The map: a straight road along x, driving lanes |y| < 7 m, sidewalks 7 to 10 m
        (15 cm curb), buildings beyond; a bench on the sidewalk every 30 m."""
        if abs(y) < 7.0:
            return 0.0
        if abs(y) <= 10.0:
            if any(abs(x - bx) < 1.0 and abs(y - by) < 0.6 for bx, by in BENCHES):
                return None
            return 0.15
        return None

    def lane_type(self, x: float, y: float) -> str:
        return "Driving" if abs(y) < 7.0 else "Sidewalk" if abs(y) <= 10.0 else "NONE"


BENCHES = tuple((30.0 * k + 15.0, s * 9.5) for k in range(-4, 6) for s in (-1, 1))


SETTINGS_FIELDS = ("synchronous_mode", "no_rendering_mode", "fixed_delta_seconds", "substepping",
                   "max_substep_delta_time", "max_substeps", "max_culling_distance",
                   "deterministic_ragdolls", "tile_stream_distance", "actor_active_distance",
                   "spectator_as_ego")


def copy_settings(settings: Any) -> Any:
    out = carla.WorldSettings()
    for name in SETTINGS_FIELDS:
        setattr(out, name, getattr(settings, name))
    return out
