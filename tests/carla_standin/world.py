"""World, map, blueprints and light manager of the stand-in (``REAL``: the wheel's class)."""

from __future__ import annotations

import fnmatch
from typing import Any

import carla


class World:
    REAL = "World"

    def __init__(self, server: Any, episode: int, client: Any) -> None:
        self._server, self._episode, self._client = server, episode, client

    def _call(self, what: str) -> Any:
        self._server.call(what, self._episode)
        return self._server

    @property
    def id(self) -> int:
        return self._episode

    def get_settings(self) -> Any:
        return self._call("get_settings").get_settings()

    def apply_settings(self, settings: Any, seconds: float = 0.0) -> int:
        return self._call("apply_settings").apply_settings(settings, self._client)

    def tick(self, seconds: float = 0.0) -> int:
        self._server.check_episode(self._episode)
        return self._server.tick(self._client)

    def get_snapshot(self) -> WorldSnapshot:
        server = self._call("get_snapshot")
        return WorldSnapshot(server.frame, server.snapshot_delta, server.clock)

    def get_map(self) -> Map:
        return Map(self._call("get_map"))

    def get_blueprint_library(self) -> BlueprintLibrary:
        server = self._call("get_blueprint_library")
        return BlueprintLibrary([ActorBlueprint(b) for b in server.blueprints])

    def get_actors(self, actor_ids: list[int] | None = None) -> ActorList:
        server = self._call("get_actors")
        actors = [*server.actors.values(), *server.traffic_lights]
        if actor_ids is not None:  # docs python_api World.get_actors: only the ids found
            wanted = set(actor_ids)
            actors = [a for a in actors if a.id in wanted]
        return ActorList(actors)

    def get_actor(self, actor_id: int) -> Any:
        server = self._call("get_actor")
        # World.cpp GetActor: None (not an exception) for an actor that is gone
        found = server.actors.get(actor_id)
        return found if found is not None and found._alive else None

    def spawn_actor(self, blueprint: Any, transform: Any, attach_to: Any = None,
                    attachment_type: Any = carla.AttachmentType.Rigid, bone: str = "") -> Any:
        server = self._call(f"spawn_actor {blueprint.id}")
        error = "" if blueprint.id.startswith("sensor.") else server.collision(blueprint.id,
                                                                               transform)
        if error:
            raise RuntimeError(error)
        return server.add_actor(blueprint, transform)

    def set_weather(self, weather: Any) -> None:
        server = self._call("set_weather")
        server.weather = weather
        if server.day_night_cycle:
            # docs python_api LightManager.set_day_night_cycle: scene lights follow the
            # sun's altitude unless that cycle is switched off
            server.pending_lights.append((server.frame + 2, weather.sun_altitude_angle < 0))

    def get_weather(self) -> Any:
        return self._call("get_weather").weather

    def freeze_all_traffic_lights(self, frozen: bool) -> None:
        # World.freeze_all_traffic_lights: world-wide, until unfrozen (docs python_api)
        self._call("freeze_all_traffic_lights").lights_frozen = bool(frozen)

    def reset_all_traffic_lights(self) -> None:
        for light in self._call("reset_all_traffic_lights").traffic_lights:
            light._elapsed = 0.0

    def get_lightmanager(self) -> LightManager:
        server = self._call("get_lightmanager")
        if not server.has_light_manager:
            # CARLA 0.10.0 (UE5) has no World.get_lightmanager (carla.md)
            raise AttributeError("'World' object has no attribute 'get_lightmanager'")
        return LightManager(server)


class WorldSnapshot:
    REAL = "WorldSnapshot"

    def __init__(self, frame: int, delta: float, elapsed: float) -> None:
        self.frame, self.delta_seconds, self.elapsed_seconds = frame, delta, elapsed


class ActorList(list):
    REAL = "ActorList"

    def filter(self, wildcard_pattern: str) -> ActorList:
        return ActorList(a for a in self if fnmatch.fnmatch(a.type_id, wildcard_pattern))

    def find(self, id: int) -> Any:  # noqa: A002  (the wheel's name)
        return next((a for a in self if a.id == id), None)


class ActorBlueprint:
    REAL = "ActorBlueprint"

    def __init__(self, bp_id: str) -> None:
        self.id = bp_id
        self._attributes = {"role_name": ""}
        if bp_id.startswith("vehicle."):
            self._attributes["color"] = "0,0,0"
        if bp_id.startswith("sensor.camera"):
            self._attributes.update(image_size_x="800", image_size_y="600", fov="90")
        if bp_id == "sensor.camera.rgb":
            # docs ref_sensors "RGB camera": auto exposure by histogram, UE4 speeds
            self._attributes.update(
                exposure_mode="histogram", exposure_compensation="0.0", gamma="2.2",
                exposure_speed_up="3.0", exposure_speed_down="1.0",
                motion_blur_intensity="0.45", motion_blur_max_distortion="0.35",
                motion_blur_min_object_screen_size="0.1")

    @property
    def tags(self) -> list[str]:
        return self.id.split(".")

    def has_attribute(self, id: str) -> bool:  # noqa: A002  (the wheel's name)
        return id in self._attributes

    def set_attribute(self, key: str, value: str) -> None:
        if key not in self._attributes:
            raise IndexError(f"no attribute '{key}'")  # ActorBlueprint.cpp SetAttribute
        self._attributes[key] = str(value)


class BlueprintLibrary:
    REAL = "BlueprintLibrary"

    def __init__(self, blueprints: list[ActorBlueprint]) -> None:
        self._blueprints = blueprints

    def __iter__(self):  # noqa: ANN204
        return iter(self._blueprints)

    def __len__(self) -> int:
        return len(self._blueprints)

    def filter(self, wildcard_pattern: str) -> BlueprintLibrary:
        return BlueprintLibrary([b for b in self._blueprints
                                 if fnmatch.fnmatch(b.id, wildcard_pattern)])

    def find(self, id: str) -> ActorBlueprint:  # noqa: A002  (the wheel's name)
        for bp in self._blueprints:
            if bp.id == id:
                return ActorBlueprint(bp.id)  # a copy: setting attributes changes only it
        raise IndexError(f"blueprint '{id}' not found")  # BlueprintLibrary.cpp at()


class Waypoint:
    REAL = "Waypoint"

    def __init__(self, transform: Any, lane_type: Any) -> None:
        self.transform, self.lane_type = transform, lane_type


class Map:
    REAL = "Map"

    def __init__(self, server: Any) -> None:
        self._server = server
        self.name = server.map_name.replace("/Game/", "")  # Map.name: "Carla/Maps/Town01"

    def get_spawn_points(self) -> list[Any]:
        return [carla.Transform(carla.Location(x=10.0 * i, y=y, z=0.3),
                                carla.Rotation(yaw=0.0 if y > 0 else 180.0))
                for i in range(-6, 12) for y in (-5.25, -1.75, 1.75, 5.25)]

    def get_waypoint(self, location: Any, project_to_road: bool = True,
                     lane_type: Any = carla.LaneType.Driving) -> Waypoint | None:
        # Map.get_waypoint: the nearest waypoint of that lane type (docs python_api)
        y = location.y
        if lane_type == carla.LaneType.Sidewalk:
            y = max(7.5, min(9.5, abs(y))) * (1 if y >= 0 else -1)
            z = 0.15
        else:
            y = max(-5.25, min(5.25, y))
            z = 0.0
        kind = carla.LaneType.Sidewalk if abs(y) >= 7.0 else carla.LaneType.Driving
        return Waypoint(carla.Transform(carla.Location(x=location.x, y=y, z=z),
                                        carla.Rotation(yaw=0.0)), kind)


class Light:
    REAL = "Light"

    def __init__(self, light_id: int) -> None:
        self.id = light_id


class LightManager:
    REAL = "LightManager"

    def __init__(self, server: Any) -> None:
        self._server = server

    def get_all_lights(self, light_group: Any = carla.LightGroup.NONE) -> list[Light]:
        self._server.call("get_all_lights")
        return [Light(i) for i in range(4)]

    def set_day_night_cycle(self, active: bool) -> None:
        self._server.call("set_day_night_cycle")
        self._server.day_night_cycle = bool(active)

    def turn_on(self, lights: Any) -> None:
        self._switch(True)

    def turn_off(self, lights: Any) -> None:
        self._switch(False)

    def _switch(self, on: bool) -> None:
        server = self._server
        server.call("light manager")
        server.pending_lights.append((server.frame + 2, on))


def make_traffic_lights(server: Any) -> list[Any]:
    from .actors import TrafficLight

    return [TrafficLight(server, 5000 + k, str(300 + k),
                         carla.Location(x=40.0 * k, y=8.0, z=0.0)) for k in range(-1, 3)]
