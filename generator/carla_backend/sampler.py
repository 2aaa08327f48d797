"""Sampling a layout on a CARLA server: camera on a driving lane, vehicles and walkers in
view, physics settled, poses recorded. The client's choices depend only on (seed, index)
and the server's sorted spawn points and blueprints."""

from __future__ import annotations

from typing import Any

import numpy as np

from carla4agt_data.errors import UserError

from ..layout import (
    TRAFFIC_LIGHT_STATES,
    ActorSpec,
    CameraSpec,
    Layout,
    TrafficLightSpec,
    Transform,
)
from ..weather import VEHICLE_LIGHT_FLAGS
from .replay import ROLE_PREFIX, SPAWN_LIFT, ensure_map
from .session import SyncSession


def _pose(t: Any) -> Transform:
    return Transform(round(t.location.x, 4), round(t.location.y, 4), round(t.location.z, 4),
                     round(t.rotation.pitch, 4), round(t.rotation.yaw, 4),
                     round(t.rotation.roll, 4))


def _key(t: Any) -> tuple[float, float, float]:
    return (round(t.location.x, 2), round(t.location.y, 2), round(t.location.z, 2))


def _traffic_lights(world: Any, near: Any, radius: float = 100.0) -> tuple[TrafficLightSpec, ...]:
    """States of the traffic lights within ``radius`` metres, by OpenDRIVE id and location."""
    out = []
    for light in world.get_actors().filter("traffic.traffic_light*"):
        loc = light.get_transform().location
        if (loc.x - near.x) ** 2 + (loc.y - near.y) ** 2 > radius ** 2:
            continue
        state = str(light.get_state()).split(".")[-1]
        out.append(TrafficLightSpec(state if state in TRAFFIC_LIGHT_STATES else "Unknown",
                                    opendrive_id=str(light.get_opendrive_id()),
                                    location=(round(loc.x, 3), round(loc.y, 3),
                                              round(loc.z, 3))))
    return tuple(sorted(out, key=lambda t: (t.opendrive_id or "", t.location)))


def sample_layout(client: Any, seed: int, index: int, *, width: int, height: int, fov: float,
                  api: Any, map_name: str = "", vehicles: tuple[int, int] = (4, 12),
                  walkers: tuple[int, int] = (2, 8),
                  settle_ticks: int = 40, fixed_delta: float = 0.05,
                  frame_timeout: float = 10.0) -> Layout:
    """Spawn a random scene around a random spawn point, let it settle, record it, clean up."""
    world = ensure_map(client, map_name)
    rng = np.random.default_rng([seed, index])
    points = sorted(world.get_map().get_spawn_points(), key=_key)
    if len(points) < 2:
        raise UserError("The map has fewer than two spawn points; choose another map.")
    cam_point = points[int(rng.integers(len(points)))]
    loc, rot = cam_point.location, cam_point.rotation
    camera = Transform(round(loc.x, 4), round(loc.y, 4), round(loc.z + rng.uniform(1.5, 2.5), 4),
                       round(float(rng.uniform(-5, 0)), 4),
                       round(rot.yaw + float(rng.uniform(-5, 5)), 4), 0.0)
    yaw = np.radians(rot.yaw)
    forward = np.array([np.cos(yaw), np.sin(yaw)])

    def ahead(t: Any) -> float:
        d = np.array([t.location.x - loc.x, t.location.y - loc.y])
        return float(d @ forward) if 3 < np.linalg.norm(d) < 80 else -1.0

    candidates = [p for p in points if ahead(p) > 0] or [p for p in points if p is not cam_point]
    library = world.get_blueprint_library()
    vehicle_bps = sorted(bp.id for bp in library.filter("vehicle.*"))
    walker_bps = sorted(bp.id for bp in library.filter("walker.pedestrian.*"))
    specs: list[tuple[str, str, str, Any, tuple[int, int, int] | None]] = []
    order = rng.permutation(len(candidates))
    for k in order[: int(rng.integers(vehicles[0], vehicles[1] + 1))]:
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        specs.append(("vehicle", f"vehicle-{len(specs)}",
                      vehicle_bps[int(rng.integers(len(vehicle_bps)))], candidates[k], color))
    for _ in range(int(rng.integers(walkers[0], walkers[1] + 1)) if walker_bps else 0):
        base = candidates[int(rng.integers(len(candidates)))]
        side = float(rng.choice([-1, 1])) * float(rng.uniform(4.0, 6.0))  # beside the lane
        t = api.Transform(api.Location(x=base.location.x - np.sin(yaw) * side,
                                       y=base.location.y + np.cos(yaw) * side,
                                       z=base.location.z + 1.0),
                          api.Rotation(yaw=float(rng.uniform(0, 360))))
        specs.append(("walker", f"walker-{len(specs)}",
                      walker_bps[int(rng.integers(len(walker_bps)))], t, None))

    batch, kept = [], []
    for kind, name, bp_id, transform, color in specs:
        bp = library.find(bp_id)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", f"{ROLE_PREFIX}-{name}")
        if color is not None and bp.has_attribute("color"):
            bp.set_attribute("color", ",".join(map(str, color)))
        raised = api.Transform(api.Location(x=transform.location.x, y=transform.location.y,
                                            z=transform.location.z + SPAWN_LIFT),
                               transform.rotation)
        batch.append(api.command.SpawnActor(bp, raised))
        kept.append((kind, name, bp_id, color))
    responses = client.apply_batch_sync(batch, True)
    spawned = [(r.actor_id, spec) for r, spec in zip(responses, kept, strict=True) if not r.error]
    ids = [actor_id for actor_id, _ in spawned]
    try:
        with SyncSession(world, fixed_delta=fixed_delta, frame_timeout=frame_timeout) as sync:
            for _ in range(settle_ticks):  # physics on: vehicles and walkers come to rest
                sync.tick()
        actors = []
        for actor_id, (kind, name, bp_id, color) in spawned:
            actor = world.get_actor(actor_id)
            lights: tuple[str, ...] = ()
            if kind == "vehicle":
                state = int(actor.get_light_state())
                lights = tuple(f for f in VEHICLE_LIGHT_FLAGS
                               if state & int(getattr(api.VehicleLightState, f)))
            actors.append(ActorSpec(name, kind, bp_id, _pose(actor.get_transform()), color,
                                    lights))
        traffic = _traffic_lights(world, loc)
    finally:
        if ids:
            client.apply_batch_sync([api.command.DestroyActor(i) for i in ids], False)
    map_name = world.get_map().name.split("/")[-1]
    return Layout(
        id=f"carla-{seed}-{index:06d}", map=map_name, seed=int(seed),
        camera=CameraSpec(camera, width, height, float(fov)), actors=tuple(actors),
        traffic_lights=traffic, backend="carla",
        backend_params={"server_version": client.get_server_version(),
                        "settle_ticks": settle_ticks, "spawned": len(ids),
                        "requested": len(specs)})

