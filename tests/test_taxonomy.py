from __future__ import annotations

import numpy as np
import pytest

from carla4agt_data import taxonomy as tx
from carla4agt_data.errors import UserError


def test_sixteen_classes_in_cityscapes_order():
    names = [c.name for c in tx.CLASSES_16]
    assert names == ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                     "traffic sign", "vegetation", "sky", "person", "rider", "car", "bus",
                     "motorcycle", "bicycle"]
    assert [c.train_id for c in tx.CLASSES_16] == list(range(16))
    assert [c.train_id for c in tx.CLASSES_19] == list(range(19))


@pytest.mark.parametrize("table", [tx.CLASSES_16, tx.CLASSES_19], ids=["16", "19"])
def test_tables_match_cityscapes_definitions(table):
    # torchvision ships the official Cityscapes class table (labels.py of cityscapesScripts).
    from torchvision.datasets import Cityscapes

    official = {c.name: c for c in Cityscapes.classes}
    for c in table:
        ref = official[c.name]
        assert c.cityscapes_id == ref.id, c.name
        assert c.cityscapes_train_id == ref.train_id, c.name
        assert c.color == ref.color, c.name


def test_carla_tags_match_wheel_name_by_name(carla):
    wheel = {int(v): n for n, v in carla.CityObjectLabel.names.items() if int(v) != 255}
    assert {tag: name for tag, (name, _) in tx.CARLA_TAGS.items()} == wheel


def test_legacy_table_agrees_with_new_table_where_names_match():
    new_by_name = {name: cls for name, cls in tx.CARLA_TAGS.values()}
    shared = [(n, c) for n, c in tx.CARLA_TAGS_LEGACY.values() if n in new_by_name]
    assert len(shared) >= 18
    for name, cls in shared:
        assert cls == new_by_name[name], name


@pytest.mark.parametrize("version, legacy", [
    ("0.9.16", False), ("0.9.14", False), ("0.10.0", False), ("0.9.13-dirty", True),
    ("0.9.10", True), ("0.9.15.2", False), ("v0.9.12", True),
])
def test_table_chosen_from_version(version, legacy):
    expected = tx.CARLA_TAGS_LEGACY if legacy else tx.CARLA_TAGS
    assert tx.carla_tag_table(version) is expected


@pytest.mark.parametrize("version, message", [
    ("0.9.9", "not supported"), ("0.8.4", "not supported"), ("latest", "Cannot read"),
])
def test_bad_versions_are_refused(version, message):
    with pytest.raises(UserError, match=message):
        tx.carla_tag_table(version)


def test_lut_16_classes_for_new_tags(carla):
    lut = tx.tag_lut("0.9.16")
    label = carla.CityObjectLabel
    expected = {
        label.Roads: 0, label.RoadLines: 0, label.Sidewalks: 1, label.Buildings: 2,
        label.Walls: 3, label.Fences: 4, label.Poles: 5, label.TrafficLight: 6,
        label.TrafficSigns: 7, label.Vegetation: 8, label.Sky: 9, label.Pedestrians: 10,
        label.Rider: 11, label.Car: 12, label.Bus: 13, label.Motorcycle: 14, label.Bicycle: 15,
    }
    for tag in range(256):
        want = next((v for k, v in expected.items() if int(k) == tag), 255)
        assert lut[tag] == want, tag
    assert lut.dtype == np.uint8 and lut.shape == (256,)


def test_lut_19_classes_keeps_terrain_truck_train(carla):
    lut = tx.tag_lut("0.9.16", num_classes=19)
    label = carla.CityObjectLabel
    assert lut[int(label.Terrain)] == 9
    assert lut[int(label.Truck)] == 14
    assert lut[int(label.Train)] == 16
    assert lut[int(label.Bicycle)] == 18
    assert lut[int(label.Static)] == 255


def test_legacy_lut():
    lut = tx.tag_lut("0.9.13")
    assert lut[7] == 0 and lut[6] == 0  # roads, road lines
    assert lut[10] == 12  # all vehicles -> car
    assert lut[4] == 10  # pedestrians (riders too) -> person
    assert lut[22] == 255  # terrain is ignored in the 16-class protocol
    assert set(np.unique(lut)) <= set(range(16)) | {255}
    assert not ({11, 13, 14, 15} & set(np.unique(lut)))  # rider, bus, two-wheelers: absent


def test_colorize_roundtrip():
    rng = np.random.default_rng(0)
    label = rng.choice(np.r_[np.arange(16), 255], size=(37, 53)).astype(np.uint8)
    rgb = tx.colorize(label)
    assert rgb.shape == (37, 53, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[label == 12][0]) == (0, 0, 142)
    assert (rgb[label == 255] == 0).all()
    np.testing.assert_array_equal(tx.decolorize(rgb), label)


def test_decolorize_unknown_colour_is_ignore():
    rgb = np.array([[[1, 2, 3], [128, 64, 128]]], dtype=np.uint8)
    np.testing.assert_array_equal(tx.decolorize(rgb), [[255, 0]])


def test_unknown_protocol():
    with pytest.raises(UserError, match="16 and 19"):
        tx.classes(13)


def test_tag_table_names_round_trip():
    assert tx.tag_table_name("0.9.13-dirty") == "0.9.10-0.9.13"
    assert tx.tag_table_name("0.9.16") == "0.9.14+"
    for version in ("0.9.12", "0.9.15"):
        np.testing.assert_array_equal(tx.lut_for_table(tx.tag_table_name(version)),
                                      tx.tag_lut(version))
    with pytest.raises(UserError, match="Unknown tag table 'carla-0.8'"):
        tx.lut_for_table("carla-0.8")
