"""Replaying a layout on a CARLA server under several weather presets.

Everything goes through ``api`` (the ``carla`` module in production; a stand-in in the
tests) and a connected ``client``. Actors are spawned raised with physics off and then
moved to their settled pose (spawning exactly there collides with the ground); traffic
lights are frozen; the RGB and semantic cameras share one transform. For each preset the
weather is set by keyword, street and vehicle lights follow its lights section, the RGB
camera warms up until consecutive frames stop changing (the tick count is recorded), and
both images of one frame are captured. Every appearance's tag map is compared with the
first; a layout whose maps differ is retried once, then reported with the count of
differing pixels. Whatever was spawned is destroyed on every exit path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from carla4agt_data.errors import UserError
from carla4agt_data.raw import Capture

# The protocol's errors; LayoutUnavailable re-exported for older imports
from ..backends import LayoutFailed
from ..backends import LayoutUnavailable as LayoutUnavailable
from ..layout import Layout, Transform
from ..weather import WeatherPreset
from .session import SyncSession

ROLE_PREFIX = "carla4agt"  # role_name of everything this tool spawns: leftovers are found by it
SPAWN_LIFT = 0.5  # metres above the settled pose at spawn time


class SpawnError(UserError):
    """Actors of a layout could not be spawned."""


@dataclass(frozen=True)
class ReplayOptions:
    warmup_cap: int = 30  # most ticks to wait for the RGB image to settle
    warmup_tolerance: float = 0.5  # mean absolute change (0..255) that counts as settled
    tag_tolerance: int = 0  # differing tag pixels accepted between appearances
    fixed_delta: float = 0.05
    frame_timeout: float = 10.0


def to_carla_transform(api: Any, t: Transform, lift: float = 0.0) -> Any:
    return api.Transform(api.Location(x=t.x, y=t.y, z=t.z + lift),
                         api.Rotation(pitch=t.pitch, yaw=t.yaw, roll=t.roll))


def image_rgb(image: Any) -> np.ndarray:
    """BGRA raw data -> RGB ``uint8 [H, W, 3]``."""
    bgra = np.frombuffer(image.raw_data, np.uint8).reshape(image.height, image.width, 4)
    return np.ascontiguousarray(bgra[..., 2::-1])


def image_tags(image: Any) -> np.ndarray:
    """Raw semantic image -> tag ids (the red channel; never the converted palette)."""
    bgra = np.frombuffer(image.raw_data, np.uint8).reshape(image.height, image.width, 4)
    return bgra[..., 2].copy()


def _preview(image: Any) -> np.ndarray:
    """Every 4th pixel each way of the BGR channels, as int16: enough to see whether the
    image still changes during warm-up, at a sixteenth of the cost of the full frame."""
    bgra = np.frombuffer(image.raw_data, np.uint8).reshape(image.height, image.width, 4)
    return bgra[::4, ::4, :3].astype(np.int16)


def ensure_map(client: Any, name: str) -> Any:
    """The world, with map ``name`` loaded if another one is (settings revert on a load;
    the capture session sets synchronous mode again for each layout)."""
    world = client.get_world()
    if name and world.get_map().name.split("/")[-1] != name:
        world = client.load_world(name)
    return world


def set_traffic_lights(world: Any, layout: Layout, api: Any) -> int:
    """Freeze every traffic light and give the recorded ones their state; lights are
    matched by OpenDRIVE id, else by location (within a metre). Returns how many matched."""
    world.freeze_all_traffic_lights(True)
    lights = list(world.get_actors().filter("traffic.traffic_light*"))
    matched = 0
    for spec in layout.traffic_lights:
        for light in lights:
            same = (spec.opendrive_id is not None
                    and str(light.get_opendrive_id()) == spec.opendrive_id)
            if not same and spec.location is not None:
                loc = light.get_transform().location
                same = ((loc.x - spec.location[0]) ** 2 + (loc.y - spec.location[1]) ** 2
                        + (loc.z - spec.location[2]) ** 2) < 1.0
            if same:
                light.set_state(getattr(api.TrafficLightState, spec.state))
                matched += 1
                break
    return matched


def sweep_leftovers(client: Any, world: Any, api: Any) -> int:
    """Destroy actors a crashed earlier run left behind (only ours, by role name)."""
    ids = [a.id for a in world.get_actors()
           if str(a.attributes.get("role_name", "")).startswith(ROLE_PREFIX)]
    if ids:
        client.apply_batch_sync([api.command.DestroyActor(i) for i in ids], False)
    return len(ids)


def spawn_layout(client: Any, world: Any, layout: Layout, api: Any) -> list[int]:
    """Spawn every actor raised, physics off, then set its settled pose; returns ids."""
    library = world.get_blueprint_library()
    batch, names = [], []
    for actor in layout.actors:
        try:
            bp = library.find(actor.blueprint)
        except (IndexError, RuntimeError, KeyError):
            raise SpawnError(f"Layout {layout.id}: the server has no blueprint "
                             f"{actor.blueprint!r} (actor {actor.name}). Is it the same map "
                             "and CARLA version the layout was sampled on?") from None
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", f"{ROLE_PREFIX}-{actor.name}")
        if actor.color is not None and bp.has_attribute("color"):
            bp.set_attribute("color", ",".join(str(c) for c in actor.color))
        spawn = api.command.SpawnActor(bp, to_carla_transform(api, actor.transform, SPAWN_LIFT))
        batch.append(spawn.then(api.command.SetSimulatePhysics(api.command.FutureActor, False)))
        names.append(actor.name)
    responses = client.apply_batch_sync(batch, True)
    ids = [r.actor_id for r in responses if not r.error]
    failed = [f"{n} ({r.error})" for n, r in zip(names, responses, strict=True) if r.error]
    if failed:
        if ids:
            client.apply_batch_sync([api.command.DestroyActor(i) for i in ids], False)
        raise SpawnError(f"Layout {layout.id}: could not spawn {', '.join(failed)}. A leftover "
                         "actor may stand there; re-run to sweep it.")
    for actor_id, actor in zip(ids, layout.actors, strict=True):
        world.get_actor(actor_id).set_transform(to_carla_transform(api, actor.transform))
    return ids


def _apply_lights(client: Any, world: Any, vehicle_ids: list[int], preset: WeatherPreset,
                  api: Any) -> None:
    state = api.VehicleLightState.NONE
    for flag in preset.lights.vehicle_lights:
        state |= getattr(api.VehicleLightState, flag)
    if vehicle_ids:
        client.apply_batch_sync([api.command.SetVehicleLightState(i, api.VehicleLightState(state))
                                 for i in vehicle_ids], False)
    manager = world.get_lightmanager()
    street = manager.get_all_lights(api.LightGroup.Street)
    (manager.turn_on if preset.lights.street_lights else manager.turn_off)(street)


def _spawn_cameras(world: Any, layout: Layout, api: Any,
                   rgb_attributes: dict[str, str]) -> tuple[Any, Any]:
    """RGB and semantic cameras at one transform, same size and field of view."""
    library = world.get_blueprint_library()
    cam = layout.camera
    pose = to_carla_transform(api, cam.transform)
    out = []
    for blueprint, extra in (("sensor.camera.rgb", rgb_attributes),
                             ("sensor.camera.semantic_segmentation", {})):
        bp = library.find(blueprint)
        shared = {"image_size_x": cam.width, "image_size_y": cam.height, "fov": cam.fov,
                  "role_name": f"{ROLE_PREFIX}-camera"}
        for key, value in {**shared, **extra}.items():
            if bp.has_attribute(key):
                bp.set_attribute(key, str(value))
        out.append(world.spawn_actor(bp, pose))
    return out[0], out[1]


def _capture(sync: SyncSession, preset: WeatherPreset, world: Any, client: Any,
             vehicle_ids: list[int], options: ReplayOptions, api: Any) -> Capture:
    world.set_weather(preset.weather.to_carla())
    _apply_lights(client, world, vehicle_ids, preset, api)
    start = time.perf_counter()
    _, (previous, _) = sync.tick()
    previous_rgb = _preview(previous)
    ticks = 1
    while ticks < options.warmup_cap:
        _, (rgb, tags) = sync.tick()
        ticks += 1
        current = _preview(rgb)
        change = float(np.abs(current - previous_rgb).mean())
        previous_rgb = current
        if change <= options.warmup_tolerance:
            break
    _, (rgb, tags) = sync.tick()
    return Capture(preset.name, image_rgb(rgb), image_tags(tags), time.perf_counter() - start,
                   {"warmup_ticks": ticks, "frame": int(rgb.frame)})


def _destroy(client: Any, api: Any, ids: list[int]) -> None:
    if ids:
        client.apply_batch_sync([api.command.DestroyActor(i) for i in ids], False)


def replay_once(client: Any, layout: Layout, presets: Sequence[WeatherPreset], api: Any,
                options: ReplayOptions) -> list[Capture]:
    """One attempt: spawn, capture every preset, destroy. Raises nothing on mismatch."""
    world = ensure_map(client, layout.map)
    sweep_leftovers(client, world, api)
    ids: list[int] = []
    try:
        ids = spawn_layout(client, world, layout, api)
        vehicle_ids = [i for i, a in zip(ids, layout.actors, strict=True) if a.kind == "vehicle"]
        set_traffic_lights(world, layout, api)
        # Camera attributes are fixed at spawn: those of the first preset (motion blur off
        # in every preset). Per-preset exposure settings would need a respawned camera.
        rgb_cam, sem_cam = _spawn_cameras(world, layout, api,
                                          presets[0].camera.blueprint_attributes())
        with SyncSession(world, fixed_delta=options.fixed_delta,
                         frame_timeout=options.frame_timeout) as sync:
            sync.add_sensor(rgb_cam)
            sync.add_sensor(sem_cam)
            return [_capture(sync, p, world, client, vehicle_ids, options, api) for p in presets]
    finally:
        _destroy(client, api, ids)  # the session already restored settings and cameras


def replay(client: Any, layout: Layout, presets: Sequence[WeatherPreset], api: Any,
           options: ReplayOptions = ReplayOptions()) -> list[Capture]:
    """Capture ``layout`` under every preset; one retry when the tag maps disagree."""
    differing = 0
    for _attempt in range(2):
        captures = replay_once(client, layout, presets, api, options)
        first = captures[0].tags
        differing = max(int((c.tags != first).sum()) for c in captures)
        if differing <= options.tag_tolerance:
            return captures
    raise LayoutFailed(layout.id, differing)
