"""The stand-in behaves like a CARLA server where the backend depends on it (each
behaviour's source is in the stand-in's code)."""

from __future__ import annotations

import math

import pytest

from tests.carla_standin import Server
from tests.carla_standin.server import FRAME_S


def _connect(server):
    api = server.api()
    client = api.Client("localhost", 2000)
    return api, client, client.get_world()


def _sync(world, on=True):
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = on, (0.05 if on else None)
    world.apply_settings(settings)


def _spawn(world, bp_id, carla, x=0.0, y=0.0, z=1.0):
    bp = world.get_blueprint_library().find(bp_id)
    return world.spawn_actor(bp, carla.Transform(carla.Location(x=x, y=y, z=z)))


def test_a_map_load_resets_settings_destroys_actors_and_makes_a_new_world(carla):
    server = Server()
    _, client, world = _connect(server)
    _sync(world)
    _spawn(world, "vehicle.audi.a2", carla)
    new = client.load_world("Town01")
    assert server.settings.synchronous_mode is False and server.actors == {}
    assert server.costs.map_loads == 1 and new.get_map().name == "Carla/Maps/Town01"
    with pytest.raises(RuntimeError, match="expired episode"):
        world.get_actors()
    client.load_world_if_different("Town01")
    assert server.costs.map_loads == 1


def test_costs_blocking_calls_in_async_mode_ticks_in_sync_mode(carla):
    server = Server()
    _, client, world = _connect(server)
    calls = server.costs.async_calls
    world.get_blueprint_library()
    assert server.costs.async_calls == calls + 1
    _sync(world)
    calls = server.costs.async_calls
    world.get_blueprint_library()
    world.tick()
    assert server.costs.async_calls == calls and server.costs.ticks >= 1
    assert server.costs.seconds() == pytest.approx(
        (server.costs.ticks + server.costs.async_calls) * FRAME_S)


def test_a_tick_cue_queued_in_async_mode_runs_when_sync_starts(carla):
    server = Server()
    _, client, world = _connect(server)
    client.apply_batch_sync([], True)
    assert server.costs.unrequested_frames == 0
    _sync(world)
    assert server.costs.unrequested_frames == 1


def test_two_clients_ticking_one_server_are_an_error(carla):
    server = Server()
    _, _, a = _connect(server)
    _, _, b = _connect(server)
    _sync(a)
    a.tick()
    b.tick()
    with pytest.raises(RuntimeError, match="two clients"):
        a.tick()


def test_spawn_collisions_and_get_actor_none(carla):
    server = Server()
    _, client, world = _connect(server)
    car = _spawn(world, "vehicle.audi.a2", carla, x=10.0)
    with pytest.raises(RuntimeError, match="collision"):
        _spawn(world, "vehicle.audi.a2", carla, x=11.0)  # into the first car
    with pytest.raises(RuntimeError, match="collision"):
        _spawn(world, "vehicle.audi.a2", carla, x=30.0, z=-0.1)  # into the ground
    with pytest.raises(RuntimeError, match="collision"):
        _spawn(world, "walker.pedestrian.0001", carla, x=15.0, y=9.5, z=1.2)  # a bench
    car.destroy()
    assert world.get_actor(car.id) is None


def test_walkers_animate_unless_the_pose_is_frozen(carla):
    server = Server()
    _, client, world = _connect(server)
    _sync(world)
    walker = _spawn(world, "walker.pedestrian.0001", carla, x=5.0, y=8.0, z=1.2)
    walker.set_simulate_physics(False)
    offsets = set()
    for _ in range(10):
        world.tick()
        offsets.add(walker._pose_offset())
    assert len(offsets) > 1  # physics off is not enough
    walker.get_pose_from_animation()
    walker.blend_pose(1.0)
    frozen = set()
    for _ in range(10):
        world.tick()
        frozen.add(walker._pose_offset())
    assert len(frozen) == 1
    bones = walker.get_bones()
    other = _spawn(world, "walker.pedestrian.0002", carla, x=5.0, y=-8.0, z=1.2)
    other.set_bones(carla.WalkerBoneControlIn([(b.name, b.relative)
                                               for b in bones.bone_transforms]))
    other.blend_pose(1.0)
    assert other._pose_offset() == walker._pose_offset()


def test_street_lights_change_a_tick_late(carla):
    server = Server()
    _, _, world = _connect(server)
    _sync(world)
    manager = world.get_lightmanager()
    manager.turn_on(manager.get_all_lights(carla.LightGroup.Street))
    world.tick()
    assert server.street_lights is False
    world.tick()
    assert server.street_lights is True


def test_auto_exposure_moves_at_the_ue4_rate(carla):
    """Defaults (speed up 3, down 1) at dt 0.05: bright to dark within 5 % takes ~87 ticks."""
    server = Server()
    _, _, world = _connect(server)
    _sync(world)
    bp = world.get_blueprint_library().find("sensor.camera.rgb")
    bp.set_attribute("image_size_x", "8")
    bp.set_attribute("image_size_y", "4")
    camera = world.spawn_actor(bp, carla.Transform())
    camera._adapted = 1.0
    world.set_weather(carla.WeatherParameters(sun_altitude_angle=-90.0))
    target = 0.3
    ticks = 0
    while abs(camera._adapted - target) > 0.05 * abs(1.0 - target):
        world.tick()
        ticks += 1
    assert ticks == math.ceil(math.log(0.05) / math.log(2 ** -0.05))  # 87


def test_frozen_traffic_lights_stay_frozen(carla):
    server = Server()
    _, _, world = _connect(server)
    _sync(world)
    world.freeze_all_traffic_lights(True)
    states = [t.get_state() for t in world.get_actors().filter("traffic.traffic_light*")]
    for _ in range(300):
        world.tick()
    assert [t.get_state() for t in world.get_actors().filter("traffic.*")] == states


def test_no_server_times_out_on_the_first_call(carla):
    api = Server().api()
    client = api.Client("localhost", 2999)
    with pytest.raises(RuntimeError, match="time-out"):
        client.get_server_version()
