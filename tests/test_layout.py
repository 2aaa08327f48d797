from __future__ import annotations

import math

import pytest
import yaml

from carla4agt_data.errors import FileFormatError, UserError
from generator.layout import (
    ActorSpec,
    CameraSpec,
    Layout,
    TrafficLightSpec,
    Transform,
    check_layout_id,
    load_layout,
    parse_layout,
    save_layout,
)


def make_layout(**changes) -> Layout:
    base = dict(
        id="town10-000042",
        map="Town10HD_Opt",
        seed=42,
        camera=CameraSpec(Transform(12.5, -3.25, 1.8, -2.0, 370.0, 0.0), 1024, 512, 90.0),
        actors=(
            ActorSpec("vehicle-0", "vehicle", "vehicle.tesla.model3",
                      Transform(20.1, -3.3, 0.0013, 0.0, 1 / 3, 0.0), (12, 200, 7), ("Position",)),
            ActorSpec("walker-0", "walker", "walker.pedestrian.0001",
                      Transform(25.0, 2.0, 0.95, 0.0, -90.0, 0.0)),
        ),
        traffic_lights=(TrafficLightSpec("Red", opendrive_id="381"),
                        TrafficLightSpec("Green", location=(1.5, 2.25, 0.0))),
        backend="carla",
        backend_params={"client_version": "0.9.16", "settle_ticks": [20, 1e-7]},
    )
    base.update(changes)
    return Layout(**base)


def test_roundtrip_file_exact(tmp_path):
    layout = make_layout()
    path = tmp_path / "layout.yaml"
    save_layout(layout, path)
    loaded = load_layout(path)
    assert loaded == layout
    assert loaded.actors[0].transform.yaw == 1 / 3  # floats survive bit for bit
    assert loaded.to_yaml() == path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["layout.yaml"]  # no temporary left


def test_roundtrip_is_stable_from_hand_written_file(tmp_path):
    text = make_layout().to_yaml().replace("fov: 90.0", "fov: 90")  # an int where a float goes
    layout = parse_layout(text)
    assert layout.camera.fov == 90.0 and isinstance(layout.camera.fov, float)
    assert parse_layout(layout.to_yaml()) == layout


def test_transform_to_carla(carla):
    t = make_layout().camera.transform.to_carla()
    assert isinstance(t, carla.Transform)
    assert math.isclose(t.location.x, 12.5) and math.isclose(t.rotation.yaw, 370.0)


def _edited(edit) -> str:
    data = make_layout().to_dict()
    edit(data)
    return yaml.safe_dump(data)


@pytest.mark.parametrize("edit, field, message", [
    (lambda d: d.pop("camera"), "camera", "missing"),
    (lambda d: d.update(version=99), "version", "schema version 1"),
    (lambda d: d["camera"].pop("fov"), "camera.fov", "missing"),
    (lambda d: d["camera"].update(width=0), "camera.width", "between 32 and"),
        (lambda d: d["camera"].update(height=16384), "camera.height", "between 32 and 8192"),
    (lambda d: d["camera"]["location"].update(x="far"), "camera.location.x", "a number"),
    (lambda d: d.update(id="../etc"), "id", "folder name"),
    (lambda d: d["actors"][1].update(name="vehicle-0"), "actors[1].name", "repeats"),
    (lambda d: d["actors"][0].update(color=[1, 2, 300]), "actors[0].color", "0..255"),
    (lambda d: d["actors"][0].update(kind="spaceship"), "actors[0].kind", "unknown value"),
    (lambda d: d["actors"][0].update(colour=[1, 2, 3]), "actors[0].colour", "Did you mean"),
    (lambda d: d["traffic_lights"][0].pop("opendrive_id"), "traffic_lights[0]", "neither"),
    (lambda d: d["backend"].update(name="unreal"), "backend.name", "'builtin', 'carla'"),
    (lambda d: d.update(seed=True), "seed", "an integer"),
])
def test_invalid_layouts_name_the_field(edit, field, message):
    with pytest.raises(FileFormatError, match=message) as info:
        parse_layout(_edited(edit), "scene.yaml")
    assert info.value.field == field
    assert str(info.value).startswith("scene.yaml: ")


def test_not_a_mapping():
    with pytest.raises(FileFormatError, match="expected a mapping"):
        parse_layout("- just\n- a list\n", "scene.yaml")


@pytest.mark.parametrize("good", ["a", "town10-000042", "Town_01.v2", "0"])
def test_good_layout_ids(good):
    assert check_layout_id(good) == good


@pytest.mark.parametrize("bad", ["", "..", "a/b", "a\\b", "../x", "a..b", ".hidden", "é", "a b",
                                 "x" * 129])
def test_bad_layout_ids(bad):
    with pytest.raises(UserError, match="folder name"):
        check_layout_id(bad)


def test_a_missing_layout_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_layout(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="no such file"):  # and a UserError (a ValueError)
        load_layout(tmp_path / "nope.yaml")
