"""Replaying a layout under the presets, on the stand-in server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from generator.carla_backend.cameras import ROLE_PREFIX
from generator.carla_backend.replay import SPAWN_LIFT, SpawnError
from generator.layout import ActorSpec, CameraSpec, Layout, TrafficLightSpec, Transform
from generator.weather import resolve_weathers
from tests.carla_standin import Server
from tests.test_carla_backend import standin_backend


def _layout() -> Layout:
    return Layout(
        id="town10-000001", map="Town10HD_Opt", seed=1,
        camera=CameraSpec(Transform(0, 0, 1.8, -2, 0, 0), 64, 32, 90.0),
        actors=(ActorSpec("car-0", "vehicle", "vehicle.tesla.model3",
                          Transform(12.0, 1.75, 0.0, 0, 0, 0), (200, 10, 10)),
                ActorSpec("car-1", "vehicle", "vehicle.tesla.model3",
                          Transform(20.0, -1.75, 0.0, 0, 180, 0)),
                ActorSpec("walker-0", "walker", "walker.pedestrian.0001",
                          Transform(9.0, 8.0, 1.1, 0, 90, 0))),
        traffic_lights=(TrafficLightSpec("Red", opendrive_id="301"),),
        backend="carla")


@pytest.fixture
def setup():
    server = Server()
    backend = standin_backend(server)
    yield server, backend
    backend.close()


def test_replay_captures_every_preset_with_one_tag_map(setup):
    server, backend = setup
    captures = list(backend.render(_layout(), resolve_weathers("all")))
    assert [c.appearance for c in captures] == ["noon", "sunset", "night", "fog"]
    for c in captures:
        assert c.rgb.shape == (32, 64, 3) and c.tags.shape == (32, 64)
        assert (c.tags == captures[0].tags).all()
        assert c.info["warmup_ticks"] == 3
    assert {14, 12, 11, 1} <= set(captures[0].tags.ravel().tolist())  # cars, walker
    assert captures[2].rgb.mean() < 0.5 * captures[0].rgb.mean()  # night is darker
    # only the cameras stay (for the next layout); the recorded light is frozen in its state
    assert {a.type_id.split(".")[0] for a in server.actors.values()} == {"sensor"}
    assert server.lights_frozen
    assert next(t for t in server.traffic_lights if t._opendrive_id == "301")._state == "Red"


def test_actors_spawn_raised_without_physics_at_their_pose(setup, monkeypatch):
    server, backend = setup
    seen = {}
    original = server.add_actor

    def spy(bp, transform, attach_to=None):
        actor = original(bp, transform)
        seen[actor.id] = (actor, transform.location.z)
        return actor

    monkeypatch.setattr(server, "add_actor", spy)
    list(backend.render(_layout(), resolve_weathers("noon,night")))
    vehicles = [(a, z) for a, z in seen.values() if a.type_id.startswith("vehicle.")]
    assert len(vehicles) == 2
    for actor, spawn_z in vehicles:
        assert spawn_z == pytest.approx(SPAWN_LIFT)  # at the pose itself it would collide
        assert actor._physics is False and actor._transform.location.z == pytest.approx(0.0)
        assert actor.attributes["role_name"].startswith(f"{ROLE_PREFIX}-car-")
    red = next(a for a, _ in vehicles if a.attributes["role_name"].endswith("car-0"))
    assert red.attributes["color"] == "200,10,10"
    assert server.street_lights is True  # night turned them on (a tick later)


def test_cameras_share_pose_size_and_blur_off(setup):
    server, backend = setup
    list(backend.render(_layout(), resolve_weathers("noon")))
    rgb, sem = sorted((a for a in server.actors.values() if a.type_id.startswith("sensor.")),
                      key=lambda a: a.type_id)
    assert (rgb.type_id, sem.type_id) == ("sensor.camera.rgb",
                                          "sensor.camera.semantic_segmentation")
    assert rgb._transform == sem._transform
    for key in ("image_size_x", "image_size_y", "fov"):
        assert rgb.attributes[key] == sem.attributes[key]
    assert float(rgb.attributes["motion_blur_intensity"]) == 0.0
    assert float(rgb.attributes["exposure_speed_down"]) >= 50


def test_spawn_failures_name_the_actors_and_clean_up(setup):
    server, backend = setup
    blocked = replace(_layout(), actors=(
        ActorSpec("car-0", "vehicle", "vehicle.tesla.model3",
                  Transform(10.0, 0, -SPAWN_LIFT - 0.2)),
        ActorSpec("car-1", "vehicle", "vehicle.tesla.model3", Transform(30.0, 0, 0.0))))
    with pytest.raises(SpawnError, match=r"could not spawn car-0 \(Spawn failed because of "
                                         "collision"):
        list(backend.render(blocked, resolve_weathers("noon")))
    assert not [a for a in server.actors.values() if a.type_id.startswith("vehicle.")]
    unknown = replace(_layout(), actors=(
        ActorSpec("bus-0", "vehicle", "vehicle.mitsubishi.fusorosa", Transform(1.0, 0, 0)),))
    with pytest.raises(SpawnError, match="no blueprint 'vehicle.mitsubishi.fusorosa'"):
        list(backend.render(unknown, resolve_weathers("noon")))


def test_a_moving_scene_is_retried_then_failed(setup):
    from generator.backends import LayoutFailed

    server, backend = setup
    spawns = []
    from tests.test_carla_backend import jolt

    server.on_tick.append(jolt)
    original = server.add_actor
    server.add_actor = lambda *a, **k: spawns.append(1) or original(*a, **k)
    with pytest.raises(LayoutFailed, match="differ in") as info:
        list(backend.render(_layout(), resolve_weathers("noon,fog")))
    assert info.value.layout_id == "town10-000001"
    assert len(spawns) == 2 * 3 + 2  # the layout's actors twice (one retry), cameras once


def test_street_lights_follow_the_preset_not_the_sun(setup, tmp_path):
    """A night preset without street lights after noon: the server's day-night cycle
    would switch them on with the sun; the preset says off."""
    server, backend = setup
    night = Path(resolve_weathers("night")[0].source).read_text()
    dark = tmp_path / "dark.yaml"
    dark.write_text(night.replace("name: night", "name: dark").replace(
        "street_lights: true", "street_lights: false"))
    captures = []
    server.on_tick.append(lambda s: captures.append(s.street_lights))
    list(backend.render(_layout(), resolve_weathers(f"noon,{dark}")))
    assert captures[-1] is False  # at the capture of "dark"
