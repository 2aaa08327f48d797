"""Actors of the stand-in: vehicles, walkers (animated skeletons), cameras that render
tags and auto-exposed RGB, traffic lights (``REAL``: the wheel's class)."""

from __future__ import annotations

import math
import threading
from typing import Any

import carla
import numpy as np

from .render import render_rgb, render_tags

BONES = ("crl_root", "crl_hips__C", "crl_arm__L", "crl_arm__R", "crl_thigh__L")


def footprint(blueprint_id: str) -> float:
    """Radius of an actor's collision footprint in metres (0: none)."""
    if blueprint_id.startswith("vehicle."):
        return 2.0
    if blueprint_id.startswith("walker."):
        return 0.4
    if blueprint_id.startswith("static."):
        return 0.8
    return 0.0


def rest_height(blueprint_id: str) -> float:
    """Height of an actor's origin above the ground at rest (a walker's capsule centre)."""
    return 0.95 if blueprint_id.startswith("walker.") else 0.0


class Actor:
    REAL = "Actor"

    def __init__(self, server: Any, actor_id: int, blueprint: Any, transform: Any) -> None:
        self._server = server
        self.id = actor_id
        self.type_id = blueprint.id
        self.attributes = dict(blueprint._attributes)
        self._transform = transform
        self._physics = not blueprint.id.startswith(("sensor.", "static."))
        self._alive = True
        self._radius = footprint(blueprint.id)
        self._velocity = carla.Vector3D()

    @property
    def is_alive(self) -> bool:
        return self._alive

    def _call(self, what: str) -> None:
        if not self._alive:
            # Actor.cpp: calls on a destroyed actor fail
            raise RuntimeError(f"trying to operate on a destroyed actor; an actor's "
                               f"function was called, but the actor is already destroyed "
                               f"({what})")
        self._server.call(what)

    def get_transform(self) -> Any:
        self._call("get_transform")
        return self._transform

    def get_velocity(self) -> Any:
        return self._velocity  # from the last snapshot (Actor.cpp GetVelocity: no call)

    def get_location(self) -> Any:
        self._call("get_location")
        return self._transform.location

    def set_transform(self, transform: Any) -> None:
        if not self._alive:
            raise RuntimeError("trying to operate on a destroyed actor")
        self._transform = transform  # Client.cpp SetActorTransform: an asynchronous call

    def set_simulate_physics(self, enabled: bool = True) -> None:
        self._call("set_simulate_physics")
        self._physics = bool(enabled)

    def destroy(self) -> bool:
        self._call("destroy")
        return self._server_destroy()

    def _server_destroy(self) -> bool:
        was = self._alive
        self._alive = False
        self._server.actors.pop(self.id, None)
        return was

    def _step(self, dt: float) -> None:
        if self._physics:  # physics on: falls to rest on the ground
            loc = self._transform.location
            ground = self._server.ground_z(loc.x, loc.y)
            if ground is None:  # fell through: CARLA destroys actors below the kill-Z
                self._server_destroy()
                return
            rest = ground + rest_height(self.type_id)
            z = max(rest, loc.z - 0.2)
            self._velocity = carla.Vector3D(z=(z - loc.z) / dt)
            self._transform = carla.Transform(carla.Location(x=loc.x, y=loc.y, z=z),
                                             self._transform.rotation)


class Vehicle(Actor):
    REAL = "Vehicle"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # parked vehicles show their position lights, as after the server's autopilot
        self._light_state = carla.VehicleLightState.Position

    def get_light_state(self) -> Any:
        self._call("get_light_state")
        return self._light_state

    def set_light_state(self, light_state: Any) -> None:
        self._call("set_light_state")
        self._light_state = carla.VehicleLightState(int(light_state))


class BoneOut:
    REAL = "bone_transform_out"

    def __init__(self, name: str, relative: Any) -> None:
        self.name, self.relative = name, relative
        self.world = self.component = relative


class BonesOut:
    REAL = "WalkerBoneControlOut"

    def __init__(self, bones: list[BoneOut]) -> None:
        self.bone_transforms = bones


class Walker(Actor):
    """The animation blueprint plays an idle animation even without a controller and with
    physics off (carla.md "What a real server does"): silhouettes move unless the pose is
    frozen with get_pose_from_animation + blend_pose(1.0), or set with set_bones."""

    REAL = "Walker"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._phase = (self.id * 0.37) % (2 * math.pi)  # where its idle animation is
        self._custom: dict[str, tuple[float, ...]] = {}  # bone -> (x, y, z, pitch, yaw, roll)
        self._blend = 0.0

    def _animated(self) -> dict[str, tuple[float, ...]]:
        return {bone: (0.0, 0.0, 0.1 * k, round(12.0 * math.sin(self._phase + k), 3), 0.0,
                       0.0) for k, bone in enumerate(BONES)}

    def _shown(self) -> dict[str, tuple[float, ...]]:
        anim = self._animated()
        if self._blend <= 0.0:
            return anim
        out = {}
        for bone, a in anim.items():
            c = self._custom.get(bone, a)
            out[bone] = tuple(x + (y - x) * self._blend for x, y in zip(a, c, strict=True))
        return out

    def _pose_offset(self) -> int:
        """Horizontal silhouette shift in pixels that the shown pose causes."""
        return int(round(self._shown()["crl_arm__L"][3] / 5.0))

    def _step(self, dt: float) -> None:
        super()._step(dt)
        self._phase += 2.0 * dt  # the idle animation keeps playing

    def get_bones(self) -> BonesOut:
        self._call("get_bones")
        return BonesOut([BoneOut(b, carla.Transform(carla.Location(x=v[0], y=v[1], z=v[2]),
                                                    carla.Rotation(pitch=v[3], yaw=v[4],
                                                                   roll=v[5])))
                         for b, v in self._shown().items()])

    def set_bones(self, bones: Any) -> None:
        # Walker.set_bones(WalkerBoneControlIn): transforms relative to the parent bone
        for bone in bones.bone_transforms:
            t = bone.transform
            self._custom[bone.name] = (t.location.x, t.location.y, t.location.z,
                                      t.rotation.pitch, t.rotation.yaw, t.rotation.roll)

    def blend_pose(self, blend: float) -> None:
        self._blend = float(blend)  # Walker.cpp BlendPose: an asynchronous call

    def show_pose(self) -> None:
        self.blend_pose(1.0)

    def hide_pose(self) -> None:
        self.blend_pose(0.0)

    def get_pose_from_animation(self) -> None:
        self._custom = self._animated()  # WalkerController.cpp GetPoseFromAnimation


class Image:
    REAL = "Image"

    def __init__(self, frame: int, width: int, height: int, fov: float, raw: bytes) -> None:
        self.frame, self.width, self.height, self.fov, self.raw_data = (frame, width, height,
                                                                        fov, raw)


class Camera(Actor):
    """An RGB or semantic camera. RGB uses UE4 eye adaptation: the exposure moves by
    1 - 2^(-dt * speed) per frame towards the scene's (carla.md, UE4 PostProcessSettings
    AutoExposureSpeedUp/Down), from where the previous appearance left it."""

    REAL = "Sensor"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._callback: Any = None
        self._drop_next = False
        self._adapted = 0.5  # eye adaptation state of a new camera

    @property
    def is_listening(self) -> bool:
        return self._callback is not None

    def listen(self, callback: Any) -> None:
        self._call("listen")
        self._callback = callback
        # before 0.9.14 the first frame after listen may be lost (CARLA PR #5616)
        self._drop_next = self._server.version.startswith(("0.9.10", "0.9.11", "0.9.12",
                                                          "0.9.13"))

    def stop(self) -> None:
        self._call("stop")
        self._callback = None

    def destroy(self) -> bool:
        self._callback = None
        return super().destroy()

    def _attr(self, key: str, default: str) -> str:
        return self.attributes.get(key, default)

    def _adapt(self, dt: float) -> None:
        if self.type_id != "sensor.camera.rgb" or self._attr("exposure_mode", "") == "manual":
            return
        # docs ref_sensors exposure_min_bright: eye adaptation stops at a floor, so night
        # stays darker than day
        target = max(scene_luminance(self._server), 0.3)
        key = "exposure_speed_up" if target > self._adapted else "exposure_speed_down"
        speed = float(self._attr(key, "1.0"))
        self._adapted += (target - self._adapted) * (1.0 - 2.0 ** (-dt * speed))

    def _render(self, frame: int) -> Image:
        w, h = int(self._attr("image_size_x", "800")), int(self._attr("image_size_y", "600"))
        fov = float(self._attr("fov", "90"))
        tags, vehicle_mask = render_tags(self._server, self._transform, w, h, fov)
        if self.type_id == "sensor.camera.semantic_segmentation":
            bgra = np.zeros((h, w, 4), np.uint8)
            bgra[..., 2] = tags  # docs ref_sensors: the tag in the red channel
        else:
            manual = self._attr("exposure_mode", "") == "manual"
            bgra = render_rgb(self._server, tags, vehicle_mask,
                              exposure=0.3 if manual else self._adapted,
                              compensation=float(self._attr("exposure_compensation", "0")),
                              gamma=float(self._attr("gamma", "2.2")),
                              blur=float(self._attr("motion_blur_intensity", "0")))
        return Image(frame, w, h, fov, bgra.tobytes())

    def _deliver(self, image: Image) -> None:
        callback = self._callback
        if callback is None or self._server.silent:
            return
        if self._drop_next:
            self._drop_next = False
            return
        server = self._server

        def send() -> None:
            for old in range(image.frame - server.stale, image.frame):  # stale copies first
                callback(Image(old, image.width, image.height, image.fov, image.raw_data))
            if server.reorder:  # the next frame's data first (kept for its own tick)
                callback(Image(image.frame + 1, image.width, image.height, image.fov,
                               image.raw_data))
            callback(image)

        # Sensor data arrives on the client's streaming threads (docs adv_synchrony)
        if server.deliver == "thread":
            threading.Thread(target=send, daemon=True).start()
        else:
            send()


class TrafficLight(Actor):
    """Cycles Green, Yellow, Red unless frozen, world-wide (World.freeze_all_traffic_lights)."""

    REAL = "TrafficLight"
    CYCLE = (("Green", 10.0), ("Yellow", 3.0), ("Red", 10.0))

    def __init__(self, server: Any, actor_id: int, opendrive_id: str, location: Any) -> None:
        self._server, self.id, self._opendrive_id = server, actor_id, opendrive_id
        self.type_id = "traffic.traffic_light"
        self.attributes: dict[str, str] = {}
        self._transform = carla.Transform(location)
        self._alive, self._physics, self._radius = True, False, 0.0
        self._velocity = carla.Vector3D()
        self._elapsed = 7.0 * (actor_id % 3)
        self._state = "Green"

    def _step(self, dt: float) -> None:
        if self._server.lights_frozen:
            return
        self._elapsed += dt
        period = sum(d for _, d in self.CYCLE)
        t = self._elapsed % period
        for state, duration in self.CYCLE:
            if t < duration:
                self._state = state
                return
            t -= duration

    def get_state(self) -> Any:
        self._call("get_state")
        return getattr(carla.TrafficLightState, self._state)

    def set_state(self, state: Any) -> None:
        self._state = str(state).split(".")[-1]  # Client.cpp SetTrafficLightState: async

    def get_opendrive_id(self) -> str:
        self._call("get_opendrive_id")
        return self._opendrive_id


def scene_luminance(server: Any) -> float:
    """Mean luminance the eye adaptation aims at (day about 1, night about 0.05)."""
    alt = server.weather.sun_altitude_angle
    day = max(0.0, math.sin(math.radians(alt))) if alt > 0 else 0.0
    return 0.04 + 1.3 * day + (0.03 if server.street_lights else 0.0)


def make_actor(server: Any, actor_id: int, blueprint: Any, transform: Any) -> Actor:
    kind = (Vehicle if blueprint.id.startswith("vehicle.") else
            Walker if blueprint.id.startswith("walker.") else
            Camera if blueprint.id.startswith("sensor.camera") else Actor)
    return kind(server, actor_id, blueprint, transform)
