"""The RGB and semantic camera pair, kept across layouts and presets while its blueprint
attributes stay the same (camera attributes are fixed at spawn: a preset whose camera
section differs gets a respawned RGB camera)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..layout import CameraSpec, Transform
from ..weather import WeatherPreset
from .session import SyncSession

ROLE_PREFIX = "carla4agt"  # role_name of everything this tool spawns: leftovers are found by it
# UE4 eye adaptation moves by 1 - 2^(-dt * speed) per frame; 50 settles within 0.6 % in
# three ticks at dt 0.05 (defaults 3 and 1 need 29 to 87 ticks and carry over presets).
EXPOSURE_SPEED = "50.0"


def to_carla_transform(api: Any, t: Transform, lift: float = 0.0) -> Any:
    return api.Transform(api.Location(x=t.x, y=t.y, z=t.z + lift),
                         api.Rotation(pitch=t.pitch, yaw=t.yaw, roll=t.roll))


def rgb_attributes(camera: CameraSpec, preset: WeatherPreset) -> dict[str, str]:
    """The RGB camera's blueprint attributes under ``preset`` (its own camera section)."""
    return {**_shared(camera), **preset.camera.blueprint_attributes(),
            "exposure_speed_up": EXPOSURE_SPEED, "exposure_speed_down": EXPOSURE_SPEED}


def _shared(camera: CameraSpec) -> dict[str, str]:
    return {"image_size_x": str(camera.width), "image_size_y": str(camera.height),
            "fov": str(float(camera.fov)), "role_name": f"{ROLE_PREFIX}-camera"}


@dataclass
class CameraPair:
    """The two cameras, registered with the synchronous session as soon as they exist (a
    failure between spawn and capture cannot leak them)."""

    rgb: Any = None
    semantic: Any = None
    rgb_attributes: dict[str, str] | None = None
    semantic_attributes: dict[str, str] | None = None

    def ensure(self, world: Any, sync: SyncSession, camera: CameraSpec,
               attributes: dict[str, str], api: Any) -> None:
        """Cameras with these attributes at the camera's pose (spawned only on change)."""
        pose = to_carla_transform(api, camera.transform)
        semantic = _shared(camera)
        if self.semantic_attributes != semantic:
            self._drop(sync)
        if self.semantic is None:
            self.semantic = self._spawn(world, sync, "sensor.camera.semantic_segmentation",
                                        semantic, pose)
            self.semantic_attributes = semantic
        else:
            self.semantic.set_transform(pose)
        if self.rgb is not None and self.rgb_attributes != attributes:
            sync.remove_sensor(self.rgb)
            self.rgb = None
        if self.rgb is None:
            self.rgb = self._spawn(world, sync, "sensor.camera.rgb", attributes, pose)
            self.rgb_attributes = attributes
        else:
            self.rgb.set_transform(pose)

    def _spawn(self, world: Any, sync: SyncSession, blueprint: str,
               attributes: dict[str, str], pose: Any) -> Any:
        bp = world.get_blueprint_library().find(blueprint)
        for key, value in attributes.items():
            if bp.has_attribute(key):
                bp.set_attribute(key, value)
        sensor = world.spawn_actor(bp, pose)
        sync.add_sensor(sensor)
        return sensor

    def _drop(self, sync: SyncSession) -> None:
        for sensor in (self.rgb, self.semantic):
            if sensor is not None:
                sync.remove_sensor(sensor)
        self.rgb = self.semantic = None
        self.rgb_attributes = self.semantic_attributes = None

    def capture(self, sync: SyncSession) -> tuple[Any, Any]:
        """Tick once; this pair's (rgb, semantic) data of that frame."""
        _, images = sync.tick()
        by_sensor = {id(s): d for s, d in zip(sync.sensors, images, strict=True)}
        return by_sensor[id(self.rgb)], by_sensor[id(self.semantic)]
