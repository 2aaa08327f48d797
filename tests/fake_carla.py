"""A small stand-in for the parts of a CARLA server that capture code talks to.

It behaves like CARLA where it matters for the tests: ``tick()`` returns increasing frame
ids; sensors deliver each frame from another thread, possibly late (after ``tick`` has
returned), with stale frames queued first, or out of order; a server can stop answering.
Value types (``WorldSettings``) are the real ``carla`` ones where the wheel can build them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FakeImage:
    frame: int
    payload: str = ""


@dataclass
class FakeSensor:
    world: FakeWorld
    name: str
    callback: Any = None
    stopped: bool = False
    destroyed: bool = False

    def listen(self, callback) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.world.events.append(f"stop {self.name}")
        self.stopped = True

    def destroy(self) -> None:
        self.world.events.append(f"destroy {self.name}")
        self.destroyed = True


@dataclass
class FakeWorld:
    """``delay``: seconds before a frame is delivered; ``stale``: frames re-sent first;
    ``reorder``: deliver the next frame before this one; ``dead``: stop delivering."""

    settings: Any
    frame: int = 100
    delay: float = 0.0
    stale: int = 0
    reorder: bool = False
    dead: bool = False
    sensors: list[FakeSensor] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def get_settings(self):
        import carla

        # like the server: every call returns a new object (None = variable time step)
        s, copy = self.settings, carla.WorldSettings()
        copy.synchronous_mode = s.synchronous_mode
        copy.no_rendering_mode = s.no_rendering_mode
        copy.fixed_delta_seconds = s.fixed_delta_seconds
        return copy

    def apply_settings(self, settings) -> int:
        self.settings = settings
        self.events.append(f"settings sync={settings.synchronous_mode}")
        return self.frame

    def spawn_sensor(self, name: str) -> FakeSensor:
        sensor = FakeSensor(self, name)
        self.sensors.append(sensor)
        return sensor

    def tick(self) -> int:
        self.frame += 1
        frame = self.frame
        if not self.dead:
            threading.Thread(target=self._deliver, args=(frame,), daemon=True).start()
        return frame

    def _deliver(self, frame: int) -> None:
        time.sleep(self.delay)
        for sensor in self.sensors:
            if sensor.callback is None or sensor.stopped:
                continue
            for old in range(frame - self.stale, frame):
                sensor.callback(FakeImage(old, f"{sensor.name}@{old}"))
            if self.reorder:
                sensor.callback(FakeImage(frame + 1, f"{sensor.name}@{frame + 1}"))
            sensor.callback(FakeImage(frame, f"{sensor.name}@{frame}"))


# --- a stand-in client, world and actors for replaying layouts -------------------------

class _Blueprint:
    def __init__(self, bp_id: str, attributes: dict[str, str]) -> None:
        self.id = bp_id
        self.attributes = dict(attributes)

    def has_attribute(self, key: str) -> bool:
        return key in self.attributes

    def set_attribute(self, key: str, value: str) -> None:
        self.attributes[key] = value


class _Library:
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def filter(self, pattern: str) -> list[_Blueprint]:
        import fnmatch

        return [self.find(i) for i in self.ids if fnmatch.fnmatch(i, pattern)]

    def find(self, bp_id: str) -> _Blueprint:
        if bp_id not in self.ids:
            raise IndexError(f"blueprint '{bp_id}' not found")
        attrs = {"role_name": ""}
        if bp_id.startswith("vehicle."):
            attrs["color"] = "0,0,0"
        if bp_id.startswith("sensor.camera"):
            attrs.update(image_size_x="800", image_size_y="600", fov="90")
        if bp_id == "sensor.camera.rgb":
            attrs.update(exposure_mode="histogram", exposure_compensation="0", gamma="2.2",
                         motion_blur_intensity="0.45", motion_blur_max_distortion="0.35",
                         motion_blur_min_object_screen_size="0.1")
        return _Blueprint(bp_id, attrs)


@dataclass
class _Actor:
    world: ReplayWorld
    id: int
    blueprint: _Blueprint
    transform: Any
    physics: bool = True
    light_state: Any = None
    transforms: list[Any] = field(default_factory=list)

    @property
    def attributes(self) -> dict[str, str]:
        return self.blueprint.attributes

    def set_transform(self, transform) -> None:
        self.transforms.append(transform)
        self.transform = transform

    def get_transform(self):
        return self.transform

    def get_light_state(self):
        import carla

        if self.light_state is not None:
            return self.light_state
        # parked-looking vehicles show their position lights, as after a server's autopilot
        return carla.VehicleLightState.Position if self.blueprint.id.startswith(
            "vehicle.") else carla.VehicleLightState.NONE


class _Camera(_Actor):
    def __init__(self, world, actor_id, blueprint, transform) -> None:
        super().__init__(world, actor_id, blueprint, transform)
        self.callback = None
        self.stopped = False

    def listen(self, callback) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.stopped = True
        self.world.events.append(f"stop camera {self.id}")

    def destroy(self) -> None:
        self.world.actors.pop(self.id, None)
        self.world.events.append(f"destroy camera {self.id}")


@dataclass
class _Image:
    frame: int
    width: int
    height: int
    raw_data: bytes


class _ActorList(list):
    def filter(self, pattern: str) -> list:
        import fnmatch

        return [a for a in self if fnmatch.fnmatch(a.blueprint.id, pattern)]


class _TrafficLight:
    """A traffic light that cycles its state every tick unless frozen."""

    STATES = ("Red", "Yellow", "Green")

    def __init__(self, world, actor_id: int, opendrive_id: int, location) -> None:
        import carla

        self.world, self.id, self.opendrive_id = world, actor_id, opendrive_id
        self.blueprint = _Blueprint("traffic.traffic_light", {"role_name": ""})
        self.transform = carla.Transform(location)
        self.state = "Green"

    @property
    def attributes(self):
        return self.blueprint.attributes

    def get_transform(self):
        return self.transform

    def get_opendrive_id(self) -> int:
        return self.opendrive_id

    def get_state(self):
        import carla

        return getattr(carla.TrafficLightState, self.state)

    def set_state(self, state) -> None:
        self.state = str(state).split(".")[-1]


class _LightManager:
    def __init__(self, world) -> None:
        self.world = world

    def get_all_lights(self, group):
        return [f"street-{i}" for i in range(3)]

    def turn_on(self, lights) -> None:
        self.world.street_lights = True

    def turn_off(self, lights) -> None:
        self.world.street_lights = False


class ReplayWorld(FakeWorld):
    """Cameras render images from the actors (tags) and the weather (RGB, whose exposure
    converges over a few ticks after a weather change, like auto exposure). ``drift``
    moves every vehicle's tags by a pixel per weather change (something that moved)."""

    def __init__(self, settings, *, blueprints: list[str], ground_z: float = 0.0) -> None:
        super().__init__(settings)
        self.library = _Library(blueprints)
        self.ground_z = ground_z
        self.actors: dict[int, _Actor] = {}
        self.next_id = 1
        self.weather = None
        self.weather_changes = 0
        self.exposure = 128.0
        self.street_lights = False
        self.frozen_lights = False
        self.drift = False
        self.map_name = "Carla/Maps/Town10HD_Opt"
        self.traffic_lights: list[_TrafficLight] = []

    def add_traffic_light(self, opendrive_id: int, x: float, y: float) -> _TrafficLight:
        import carla

        light = _TrafficLight(self, 1000 + opendrive_id, opendrive_id,
                              carla.Location(x=x, y=y, z=0.0))
        self.traffic_lights.append(light)
        return light

    def get_blueprint_library(self):
        return self.library

    def get_map(self):
        from types import SimpleNamespace

        import carla

        points = [carla.Transform(carla.Location(x=10.0 * i, y=3.5 * (i % 3), z=0.3),
                                  carla.Rotation(yaw=0.0)) for i in range(12)]
        return SimpleNamespace(name=self.map_name,
                               get_spawn_points=lambda: list(reversed(points)))

    def get_actors(self):
        return _ActorList([*self.actors.values(), *self.traffic_lights])

    def get_actor(self, actor_id: int):
        return self.actors[actor_id]

    def add_actor(self, bp, transform, cls=_Actor):
        actor = cls(self, self.next_id, bp, transform)
        self.actors[actor.id] = actor
        self.next_id += 1
        return actor

    def spawn_actor(self, bp, transform):
        camera = self.add_actor(bp, transform, _Camera)
        self.sensors.append(camera)
        return camera

    def freeze_all_traffic_lights(self, frozen: bool) -> None:
        self.frozen_lights = frozen

    def set_weather(self, weather) -> None:
        self.weather = weather
        self.weather_changes += 1

    def get_lightmanager(self):
        return _LightManager(self)

    def _render(self, camera: _Camera, frame: int) -> _Image:
        w = int(camera.attributes["image_size_x"])
        h = int(camera.attributes["image_size_y"])
        tags = np.full((h, w), 1, np.uint8)
        tags[: h // 2] = 11
        shift = self.weather_changes if self.drift else 0
        for actor in self.actors.values():
            if actor.blueprint.id.startswith("vehicle."):
                x0 = (int(actor.transform.location.x * 3) + shift) % (w - 4)
                tags[h // 2: h // 2 + 4, x0:x0 + 4] = 14
        bgra = np.zeros((h, w, 4), np.uint8)
        if camera.blueprint.id == "sensor.camera.semantic_segmentation":
            bgra[..., 2] = tags
        else:
            bgra[..., :3] = np.clip(self.exposure * (0.5 + tags[..., None] / 28.0), 0, 255)
        return _Image(frame, w, h, bgra.tobytes())

    def tick(self) -> int:
        import carla

        for actor in self.actors.values():  # physics: actors fall to rest on the ground
            if actor.physics and not isinstance(actor, _Camera):
                loc = actor.transform.location
                rest = self.ground_z + (0.95 if actor.blueprint.id.startswith("walker") else 0.0)
                z = max(rest, loc.z - 0.2)
                actor.transform = carla.Transform(carla.Location(x=loc.x, y=loc.y, z=z),
                                                  actor.transform.rotation)
        if not self.frozen_lights:  # running traffic lights change
            for light in self.traffic_lights:
                light.state = light.STATES[(light.STATES.index(light.state) + 1) % 3]
        alt = self.weather.sun_altitude_angle if self.weather is not None else 45.0
        target = 200.0 if alt > 0 else 40.0
        self.exposure += (target - self.exposure) * 0.6  # auto exposure settles over ticks
        self.frame += 1
        for camera in self.sensors:
            if camera.callback is not None and not camera.stopped:
                camera.callback(self._render(camera, self.frame))
        return self.frame


@dataclass
class _Response:
    actor_id: int = 0
    error: str = ""


class FakeCommands:
    """``carla.command`` look-alikes that the stand-in client executes."""

    FutureActor = object()

    class SpawnActor:
        def __init__(self, blueprint, transform) -> None:
            self.blueprint, self.transform, self.follow = blueprint, transform, []

        def then(self, command):
            self.follow.append(command)
            return self

    class SetSimulatePhysics:
        def __init__(self, actor, enabled: bool) -> None:
            self.actor, self.enabled = actor, enabled

    class DestroyActor:
        def __init__(self, actor_id: int) -> None:
            self.actor_id = actor_id

    class SetVehicleLightState:
        def __init__(self, actor_id: int, state) -> None:
            self.actor_id, self.state = actor_id, state


class ReplayClient:
    def __init__(self, world: ReplayWorld) -> None:
        self.world = world
        self.batches: list[list[Any]] = []

    def get_world(self) -> ReplayWorld:
        return self.world

    def get_server_version(self) -> str:
        return "0.9.16"

    def load_world(self, name: str):
        """Like CARLA: a map load reverts the settings to asynchronous mode."""
        import carla

        self.world.map_name = f"Carla/Maps/{name}"
        self.world.settings = carla.WorldSettings(synchronous_mode=False)
        self.world.frozen_lights = False
        self.world.events.append(f"load {name}")
        return self.world

    def apply_batch_sync(self, commands, do_tick: bool = False) -> list[_Response]:
        self.batches.append(list(commands))
        out = []
        for cmd in commands:
            if isinstance(cmd, FakeCommands.SpawnActor):
                if cmd.transform.location.z <= self.world.ground_z + 0.01:
                    out.append(_Response(error="Spawn failed because of collision at spawn "
                                               "position"))
                    continue
                actor = self.world.add_actor(cmd.blueprint, cmd.transform)
                for follow in cmd.follow:
                    if isinstance(follow, FakeCommands.SetSimulatePhysics):
                        actor.physics = follow.enabled
                out.append(_Response(actor.id))
            elif isinstance(cmd, FakeCommands.DestroyActor):
                self.world.actors.pop(cmd.actor_id, None)
                out.append(_Response(cmd.actor_id))
            elif isinstance(cmd, FakeCommands.SetVehicleLightState):
                self.world.actors[cmd.actor_id].light_state = cmd.state
                out.append(_Response(cmd.actor_id))
        if do_tick:
            self.world.tick()
        return out


def fake_api(carla_module) -> Any:
    """Real carla value types with the stand-in commands."""
    from types import SimpleNamespace

    return SimpleNamespace(
        Transform=carla_module.Transform, Location=carla_module.Location,
        Rotation=carla_module.Rotation, VehicleLightState=carla_module.VehicleLightState,
        LightGroup=carla_module.LightGroup, TrafficLightState=carla_module.TrafficLightState,
        command=FakeCommands)
