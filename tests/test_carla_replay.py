"""Replaying a layout under the presets, against the stand-in client and world."""

from __future__ import annotations

import pytest

from generator.carla_backend.replay import (
    ROLE_PREFIX,
    SPAWN_LIFT,
    LayoutFailed,
    ReplayOptions,
    SpawnError,
    replay,
)
from generator.layout import ActorSpec, CameraSpec, Layout, TrafficLightSpec, Transform
from generator.weather import resolve_weathers

from .fake_carla import ReplayClient, ReplayWorld, fake_api

BLUEPRINTS = ["vehicle.tesla.model3", "walker.pedestrian.0001", "sensor.camera.rgb",
              "sensor.camera.semantic_segmentation"]


def _layout() -> Layout:
    return Layout(
        id="town10-000001", map="Town10HD_Opt", seed=1,
        camera=CameraSpec(Transform(0, 0, 1.8, -2, 0, 0), 64, 32, 90.0),
        actors=(ActorSpec("car-0", "vehicle", "vehicle.tesla.model3",
                          Transform(10.0, 2.0, 0.0, 0, 0, 0), (200, 10, 10)),
                ActorSpec("car-1", "vehicle", "vehicle.tesla.model3",
                          Transform(4.0, -2.0, 0.0, 0, 180, 0)),
                ActorSpec("walker-0", "walker", "walker.pedestrian.0001",
                          Transform(6.0, 4.0, 0.9, 0, 90, 0))),
        traffic_lights=(TrafficLightSpec("Red", opendrive_id="12"),),
        backend="carla")


@pytest.fixture
def setup(carla):
    world = ReplayWorld(carla.WorldSettings(synchronous_mode=False), blueprints=BLUEPRINTS)
    return ReplayClient(world), world, fake_api(carla)


def test_replay_captures_every_preset_with_one_tag_map(setup, carla):
    client, world, api = setup
    presets = resolve_weathers("all")
    captures = replay(client, _layout(), presets, api)
    assert [c.appearance for c in captures] == ["noon", "sunset", "night", "fog"]
    for c in captures:
        assert c.rgb.shape == (32, 64, 3) and c.tags.shape == (32, 64)
        assert (c.tags == captures[0].tags).all()
        assert 2 <= c.info["warmup_ticks"] < ReplayOptions().warmup_cap
    assert {14, 11, 1} <= set(captures[0].tags.ravel().tolist())
    assert captures[2].rgb.mean() < 0.5 * captures[0].rgb.mean()  # night is darker
    # everything this run spawned is gone, and the settings are the original ones
    assert world.actors == {} and world.settings.synchronous_mode is False
    assert world.frozen_lights


def test_actors_spawn_raised_without_physics_then_settle(setup, carla):
    client, world, api = setup
    seen = {}
    original_add = world.add_actor

    def spy(bp, transform, cls=None):
        actor = original_add(bp, transform) if cls is None else original_add(bp, transform, cls)
        seen[actor.id] = actor
        return actor

    world.add_actor = spy
    replay(client, _layout(), resolve_weathers("noon,night"), api)
    vehicles = [a for a in seen.values() if a.blueprint.id.startswith("vehicle.")]
    assert len(vehicles) == 2
    for actor in vehicles:
        assert actor.physics is False
        assert actor.attributes["role_name"].startswith(f"{ROLE_PREFIX}-car-")
        assert actor.transforms[-1].location.z == pytest.approx(0.0)  # settled pose
    red = next(a for a in vehicles if a.attributes["role_name"].endswith("car-0"))
    assert red.attributes["color"] == "200,10,10"
    # spawned SPAWN_LIFT above the saved pose: at the pose itself the stand-in collides
    spawn_z = [c.transform.location.z for batch in client.batches for c in batch
               if type(c).__name__ == "SpawnActor"]
    assert spawn_z and all(z == pytest.approx(SPAWN_LIFT) or z > SPAWN_LIFT for z in spawn_z)
    # night turned the street lights and low beams on
    assert world.street_lights is True
    assert int(red.light_state) == int(carla.VehicleLightState.Position
                                       | carla.VehicleLightState.LowBeam)


def test_leftovers_of_a_crashed_run_are_swept(setup, carla):
    client, world, api = setup
    bp = world.get_blueprint_library().find("vehicle.tesla.model3")
    bp.set_attribute("role_name", f"{ROLE_PREFIX}-car-0")
    leftover = world.add_actor(bp, carla.Transform(carla.Location(z=1.0)))
    foreign_bp = world.get_blueprint_library().find("vehicle.tesla.model3")
    foreign_bp.set_attribute("role_name", "hero")
    foreign = world.add_actor(foreign_bp, carla.Transform(carla.Location(z=1.0)))
    replay(client, _layout(), resolve_weathers("noon"), api)
    assert leftover.id not in world.actors and foreign.id in world.actors


def test_moving_scene_is_retried_then_failed(setup):
    client, world, api = setup
    world.drift = True
    attempts = []
    original = world.freeze_all_traffic_lights

    def count(frozen):
        attempts.append(frozen)
        original(frozen)

    world.freeze_all_traffic_lights = count
    with pytest.raises(LayoutFailed, match="differ in 16 pixels") as info:
        replay(client, _layout(), resolve_weathers("noon,fog"), api)
    assert info.value.layout_id == "town10-000001" and len(attempts) == 2
    assert world.actors == {} and world.settings.synchronous_mode is False


def test_spawn_failures_name_the_actors_and_clean_up(setup, carla):
    client, world, api = setup
    bad = Layout(**{**_layout().__dict__, "actors": (
        ActorSpec("car-0", "vehicle", "vehicle.tesla.model3", Transform(1.0, 0, -SPAWN_LIFT)),
        ActorSpec("car-1", "vehicle", "vehicle.tesla.model3", Transform(3.0, 0, 0.0)))})
    with pytest.raises(SpawnError, match=r"could not spawn car-0 \(Spawn failed because of "
                                         "collision"):
        replay(client, bad, resolve_weathers("noon"), api)
    assert world.actors == {}
    unknown = Layout(**{**_layout().__dict__, "actors": (
        ActorSpec("bus-0", "vehicle", "vehicle.mitsubishi.fusorosa", Transform(1.0, 0, 0)),)})
    with pytest.raises(SpawnError, match="no blueprint 'vehicle.mitsubishi.fusorosa'"):
        replay(client, unknown, resolve_weathers("noon"), api)


def test_cameras_share_pose_size_and_blur_off(setup):
    client, world, api = setup
    spawned = []
    original = world.spawn_actor

    def spy(bp, transform):
        spawned.append((bp, transform))
        return original(bp, transform)

    world.spawn_actor = spy
    replay(client, _layout(), resolve_weathers("noon"), api)
    (rgb_bp, rgb_pose), (sem_bp, sem_pose) = spawned
    assert (rgb_bp.id, sem_bp.id) == ("sensor.camera.rgb", "sensor.camera.semantic_segmentation")
    assert rgb_pose == sem_pose
    for key in ("image_size_x", "image_size_y", "fov"):
        assert rgb_bp.attributes[key] == sem_bp.attributes[key]
    assert rgb_bp.attributes["motion_blur_intensity"] == "0.0"
