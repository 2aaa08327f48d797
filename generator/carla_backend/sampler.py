"""Sampling a layout on a server session: camera on a driving lane, vehicles and walkers
(on sidewalks) in view, physics settled, poses recorded (walkers with their bones),
traffic-light states drawn. The choices depend only on (seed, index) and the server's
sorted spawn points and blueprints."""

from __future__ import annotations

from typing import Any

import numpy as np

from carla4agt_data.errors import UserError

from ..layout import (
    ActorSpec,
    CameraSpec,
    Layout,
    TrafficLightSpec,
    Transform,
    sampled_layout_id,
)
from ..weather import light_state_flags
from .cameras import ROLE_PREFIX
from .replay import SPAWN_LIFT
from .server import ServerSession
from .walkers import BONES_KEY, freeze_pose, read_bones

LIGHT_STATES = ("Red", "Yellow", "Green")
REST_SPEED = 0.01  # m/s: an actor this slow has come to rest
SETTLE_CHECK = 5  # ticks between checks whether everything is at rest
LIGHT_RADIUS = 100.0  # metres around the camera whose traffic lights are recorded


def _pose(t: Any) -> Transform:
    return Transform(round(t.location.x, 4), round(t.location.y, 4), round(t.location.z, 4),
                     round(t.rotation.pitch, 4), round(t.rotation.yaw, 4),
                     round(t.rotation.roll, 4))


def _key(t: Any) -> tuple[float, float, float]:
    return (round(t.location.x, 2), round(t.location.y, 2), round(t.location.z, 2))


def settle(session: ServerSession, ids: list[int], most: int) -> int:
    """Tick with physics on until every actor is at rest (checked every few ticks, from
    the snapshot's velocities), at most ``most`` ticks. Returns the ticks taken."""
    for tick in range(1, most + 1):
        session.sync.advance()
        if tick % SETTLE_CHECK == 0 and all(
                _speed(a.get_velocity()) < REST_SPEED
                for a in session.world.get_actors(ids)):
            return tick
    return most


def _speed(v: Any) -> float:
    return float((v.x ** 2 + v.y ** 2 + v.z ** 2) ** 0.5)


def draw_traffic_lights(session: ServerSession, near: Any,
                        rng: np.random.Generator) -> tuple[TrafficLightSpec, ...]:
    """States for the lights near the camera, drawn from the layout's own generator (the
    server's lights are frozen world-wide, so reading them would record one state forever)."""
    out = []
    for light in sorted(session.traffic_lights, key=lambda t: (t.opendrive_id, t.location)):
        x, y, z = light.location
        if (x - near.x) ** 2 + (y - near.y) ** 2 > LIGHT_RADIUS ** 2:
            continue
        out.append(TrafficLightSpec(LIGHT_STATES[int(rng.integers(len(LIGHT_STATES)))],
                                    opendrive_id=light.opendrive_id,
                                    location=(round(x, 3), round(y, 3), round(z, 3))))
    return tuple(out)


def sample_layout(session: ServerSession, seed: int, index: int, *, width: int, height: int,
                  fov: float, map_name: str = "", vehicles: tuple[int, int] = (4, 12),
                  walkers: tuple[int, int] = (2, 8), settle_ticks: int = 30) -> Layout:
    """Spawn a random scene around a random spawn point, let it settle, record it, clean up."""
    session.use_map(map_name)
    api, world = session.api, session.world
    rng = np.random.default_rng([seed, index])
    carla_map = world.get_map()
    points = sorted(carla_map.get_spawn_points(), key=_key)
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
        r, g, b = (int(c) for c in rng.integers(0, 256, 3))
        color: tuple[int, int, int] | None = (r, g, b)
        specs.append(("vehicle", f"vehicle-{len(specs)}",
                      vehicle_bps[int(rng.integers(len(vehicle_bps)))], candidates[k], color))
    for _ in range(int(rng.integers(walkers[0], walkers[1] + 1)) if walker_bps else 0):
        base = candidates[int(rng.integers(len(candidates)))]
        side = float(rng.choice([-1, 1])) * float(rng.uniform(4.0, 8.0))
        along = float(rng.uniform(-3.0, 3.0))
        bp_id = walker_bps[int(rng.integers(len(walker_bps)))]
        heading = float(rng.uniform(0, 360))
        near = api.Location(x=base.location.x + np.cos(yaw) * along - np.sin(yaw) * side,
                            y=base.location.y + np.sin(yaw) * along + np.cos(yaw) * side,
                            z=base.location.z)
        # on a sidewalk, never on the road (no navigation mesh needed without AI)
        waypoint = carla_map.get_waypoint(near, True, api.LaneType.Sidewalk)
        if waypoint is None:
            continue
        w = waypoint.transform.location
        t = api.Transform(api.Location(x=w.x, y=w.y, z=w.z + 1.0), api.Rotation(yaw=heading))
        specs.append(("walker", f"walker-{len(specs)}", bp_id, t, None))
    light_rng = np.random.default_rng([seed, index, 1])  # independent of what spawned

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
    responses = session.client.apply_batch_sync(batch, False) if batch else []
    spawned = [(r.actor_id, spec) for r, spec in zip(responses, kept, strict=True) if not r.error]
    session.spawned = [actor_id for actor_id, _ in spawned]
    try:
        settled = settle(session, [i for i, _ in spawned], settle_ticks)
        live = [(world.get_actor(i), spec) for i, spec in spawned]
        live = [(a, spec) for a, spec in live if a is not None]  # None: gone meanwhile
        for actor, (kind, _, _, _) in live:
            if kind == "walker":
                freeze_pose(actor)
        session.sync.advance()  # the frozen poses show from this frame on
        actors, bones = [], {}
        for actor, (kind, name, bp_id, color) in live:
            lights: tuple[str, ...] = ()
            if kind == "vehicle":
                lights = light_state_flags(actor.get_light_state(), api)
            else:
                bones[name] = read_bones(actor)
            actors.append(ActorSpec(name, kind, bp_id, _pose(actor.get_transform()), color,
                                    lights))
        traffic = draw_traffic_lights(session, loc, light_rng)
    finally:
        session.destroy(session.spawned)
        session.spawned = []
    params: dict[str, Any] = {"server_version": session.client.get_server_version(),
                              "settle_ticks": settled, "spawned": len(spawned),
                              "requested": len(specs)}
    if bones:
        params[BONES_KEY] = bones
    return Layout(
        id=sampled_layout_id("carla", seed, index), map=session.map, seed=int(seed),
        camera=CameraSpec(camera, width, height, float(fov)), actors=tuple(actors),
        traffic_lights=traffic, backend="carla", backend_params=params)
