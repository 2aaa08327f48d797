"""Replaying a layout on a server session under several weather presets.

Actors are spawned in one batch, each raised (spawning exactly at a settled pose collides
with the ground), physics off, then moved to its settled pose in the same chain; walkers
show their recorded pose; recorded traffic lights get their state. For each preset the
camera pair gets that preset's attributes (respawned only on change), the weather is set
by keyword, street and vehicle lights follow its lights section, a fixed warm-up lets
exposure and lights settle, and both images of one frame are captured. Every
appearance's tag map is compared with the first; a layout whose maps differ is retried
once, then reported with the count of differing pixels. The layout's actors are destroyed
on every exit path (the cameras stay for the next layout).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from carla4agt_data.raw import Capture

from ..backends import LayoutFailed, LayoutSkipped
from ..layout import Layout
from ..weather import WeatherPreset, light_state_value
from .cameras import ROLE_PREFIX, rgb_attributes, to_carla_transform
from .server import ServerSession
from .walkers import BONES_KEY, set_pose

SPAWN_LIFT = 0.5  # metres above the settled pose at spawn time


class SpawnError(LayoutSkipped):
    """Actors of a layout could not be spawned (recorded; the run goes on)."""

    def __init__(self, layout_id: str, message: str) -> None:
        super().__init__(layout_id, message)


@dataclass(frozen=True)
class ReplayOptions:
    # Ticks before the capture: light-manager changes show 1 to 2 frames late, and
    # exposure (speed 50) settles within 0.6 % in three ticks.
    warmup_ticks: int = 3
    tag_tolerance: int = 0  # differing tag pixels accepted between appearances


def image_rgb(image: Any) -> np.ndarray:
    """BGRA raw data -> RGB ``uint8 [H, W, 3]``."""
    bgra = np.frombuffer(image.raw_data, np.uint8).reshape(image.height, image.width, 4)
    return np.ascontiguousarray(bgra[..., 2::-1])


def image_tags(image: Any) -> np.ndarray:
    """Raw semantic image -> tag ids (the red channel; never the converted palette)."""
    bgra = np.frombuffer(image.raw_data, np.uint8).reshape(image.height, image.width, 4)
    return bgra[..., 2].copy()


def spawn_layout(session: ServerSession, layout: Layout) -> list[int]:
    """One batch: spawn raised, physics off, settled pose. Returns the actor ids."""
    api, world = session.api, session.world
    library = world.get_blueprint_library()
    batch = []
    future = api.command.FutureActor
    for actor in layout.actors:
        try:
            bp = library.find(actor.blueprint)
        except (IndexError, RuntimeError, KeyError):
            raise SpawnError(layout.id, f"Layout {layout.id}: the server has no blueprint "
                             f"{actor.blueprint!r} (actor {actor.name}). Is it the same map "
                             "and CARLA version the layout was sampled on?") from None
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", f"{ROLE_PREFIX}-{actor.name}")
        if actor.color is not None and bp.has_attribute("color"):
            bp.set_attribute("color", ",".join(str(c) for c in actor.color))
        batch.append(api.command.SpawnActor(bp, to_carla_transform(api, actor.transform,
                                                                   SPAWN_LIFT))
                     .then(api.command.SetSimulatePhysics(future, False))
                     .then(api.command.ApplyTransform(
                         future, to_carla_transform(api, actor.transform))))
    responses = session.client.apply_batch_sync(batch, False) if batch else []
    ids = [r.actor_id for r in responses if r.actor_id]
    session.spawned = ids
    failed = [f"{a.name} ({r.error})" for a, r in zip(layout.actors, responses, strict=True)
              if r.error]
    if failed:
        raise SpawnError(layout.id, f"Layout {layout.id}: could not spawn "
                         f"{', '.join(failed)}. Something stands there (a leftover actor is "
                         "swept on the next connection); the layout is recorded as failed.")
    return ids


def pose_walkers(session: ServerSession, layout: Layout, ids: list[int]) -> None:
    bones = layout.backend_params.get(BONES_KEY, {})
    for actor_id, spec in zip(ids, layout.actors, strict=True):
        if spec.kind != "walker":
            continue
        walker = session.world.get_actor(actor_id)
        if walker is None:  # gone since the spawn: get_actor says None, not an error
            raise SpawnError(layout.id, f"Layout {layout.id}: walker {spec.name} vanished "
                             "right after it was spawned; the layout is recorded as failed.")
        set_pose(walker, bones.get(spec.name), session.api)


def set_traffic_lights(session: ServerSession, layout: Layout) -> int:
    """Give the recorded lights their state (all are frozen by the session); lights are
    matched by OpenDRIVE id, else by location (within a metre). Returns how many matched."""
    matched = 0
    for spec in layout.traffic_lights:
        for light in session.traffic_lights:
            same = spec.opendrive_id is not None and light.opendrive_id == spec.opendrive_id
            if not same and spec.location is not None:
                same = sum((a - b) ** 2 for a, b in zip(light.location, spec.location,
                                                         strict=True)) < 1.0
            if same:
                light.actor.set_state(getattr(session.api.TrafficLightState, spec.state))
                matched += 1
                break
    return matched


def _vehicle_lights(session: ServerSession, vehicle_ids: list[int],
                    preset: WeatherPreset) -> int:
    api = session.api
    state = light_state_value(preset.lights.vehicle_lights, api)
    if vehicle_ids:
        session.client.apply_batch_sync(
            [api.command.SetVehicleLightState(i, state) for i in vehicle_ids], False)
    return int(state)


def capture(session: ServerSession, layout: Layout, preset: WeatherPreset,
            vehicle_ids: list[int], options: ReplayOptions,
            lights: list[Any]) -> Capture:
    """One appearance: camera attributes, weather, lights, warm-up, one frame."""
    start = time.perf_counter()
    session.cameras.ensure(session.world, session.sync, layout.camera,
                           rgb_attributes(layout.camera, preset), session.api)
    session.world.set_weather(preset.weather.to_carla())  # after the cameras exist
    wanted = tuple(sorted(preset.lights.vehicle_lights))
    if lights[0] != wanted:  # vehicles keep their lights from one preset to the next
        _vehicle_lights(session, vehicle_ids, preset)
        lights[0] = wanted
    session.set_street_lights(preset.lights.street_lights)
    for _ in range(options.warmup_ticks):
        session.sync.advance()
    rgb, tags = session.cameras.capture(session.sync)
    return Capture(preset.name, image_rgb(rgb), image_tags(tags), time.perf_counter() - start,
                   {"warmup_ticks": options.warmup_ticks, "frame": int(rgb.frame)})


def replay_once(session: ServerSession, layout: Layout, presets: Sequence[WeatherPreset],
                options: ReplayOptions) -> list[Capture]:
    """One attempt: spawn, capture every preset, destroy the layout's actors."""
    session.use_map(layout.map)
    try:
        ids = spawn_layout(session, layout)
        pose_walkers(session, layout, ids)
        set_traffic_lights(session, layout)
        vehicles = [i for i, a in zip(ids, layout.actors, strict=True) if a.kind == "vehicle"]
        lights: list[Any] = [None]
        return [capture(session, layout, p, vehicles, options, lights) for p in presets]
    finally:
        session.destroy(session.spawned)
        session.spawned = []


def replay(session: ServerSession, layout: Layout, presets: Sequence[WeatherPreset],
           options: ReplayOptions = ReplayOptions()) -> list[Capture]:
    """Capture ``layout`` under every preset; one retry when the tag maps disagree."""
    differing = 0
    for _attempt in range(2):
        captures = replay_once(session, layout, presets, options)
        first = captures[0].tags
        differing = max(int((c.tags != first).sum()) for c in captures)
        if differing <= options.tag_tolerance:
            return captures
    raise LayoutFailed(layout.id, differing)
