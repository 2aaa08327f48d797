"""The built-in renderer: exact labels, determinism, coverage, distinct appearances."""

from __future__ import annotations

import numpy as np
import pytest

from carla4agt_data.errors import UserError
from carla4agt_data.raw import read_rgb, read_tags, rgb_name, tags_name
from carla4agt_data.taxonomy import CLASSES_16, tag_lut
from generator.builtin.city import sample_layout
from generator.builtin.lighting import lighting_for
from generator.builtin.renderer import BuiltinRenderer
from generator.builtin.scene import build_scene
from generator.layout import parse_layout
from generator.weather import resolve_weathers

from .conftest import SMALL

PRESETS = resolve_weathers("all")


@pytest.fixture(scope="module")
def renderer():
    with BuiltinRenderer(*SMALL) as r:
        yield r


def _render(renderer, layout, presets=PRESETS):
    renderer.load(build_scene(layout), layout.camera)
    tags = renderer.render_tags()
    return tags, [renderer.render_rgb(p) for p in presets]


def test_labels_identical_across_appearances_on_disk(small_raw):
    for folder in sorted(p for p in small_raw.iterdir() if p.is_dir()):
        blobs = {(folder / tags_name(p.name)).read_bytes() for p in PRESETS}
        assert len(blobs) == 1, folder.name
        tags = read_tags(folder / tags_name("noon"))
        assert tags.shape == (SMALL[1], SMALL[0]) and tags.dtype == np.uint8


def test_rerender_from_layout_file_alone_is_byte_identical(small_raw, renderer):
    folder = sorted(p for p in small_raw.iterdir() if p.is_dir())[1]
    layout = parse_layout((folder / "layout.yaml").read_text())
    tags, rgbs = _render(renderer, layout)
    np.testing.assert_array_equal(tags, read_tags(folder / tags_name("noon")))
    for preset, rgb in zip(PRESETS, rgbs, strict=True):
        np.testing.assert_array_equal(rgb, read_rgb(folder / rgb_name(preset.name)))


def test_same_seed_same_layout_other_seed_other_layout():
    assert sample_layout(3, 5) == sample_layout(3, 5)
    assert sample_layout(3, 5) != sample_layout(4, 5)
    assert sample_layout(3, 5).id == "builtin-3-000005"


def test_labels_are_exact_tag_ids_with_sharp_edges(renderer):
    layout = sample_layout(1, 4, width=SMALL[0], height=SMALL[1])
    tags, _ = _render(renderer, layout, PRESETS[:1])
    known = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 24, 25}
    assert set(np.unique(tags)) <= known
    h = tags.shape[0]
    assert (tags[: h // 4] == 11).mean() > 0.05  # sky in the upper quarter
    assert np.isin(tags[-3:], [1, 24]).mean() > 0.4  # road and its lines at the bottom
    assert not (tags[h // 2:] == 11).any()  # never sky below the horizon (pitch is small)


def test_class_coverage_over_100_layouts(renderer):
    lut = tag_lut("0.9.16")
    per_class = np.zeros(16, int)
    raw_tags: set[int] = set()
    for i in range(100):
        layout = sample_layout(0, i, width=SMALL[0], height=SMALL[1])
        renderer.load(build_scene(layout), layout.camera)
        tags = renderer.render_tags()
        present = np.unique(lut[tags])
        per_class[present[present < 16]] += 1
        raw_tags |= set(np.unique(tags).tolist())
    names = {c.name: per_class[c.train_id] for c in CLASSES_16}
    assert all(v >= 1 for v in names.values()), names
    for rare in ("rider", "motorcycle", "bicycle", "bus", "traffic light", "traffic sign"):
        assert names[rare] >= 10, (rare, names[rare])
    assert {10, 15, 20, 25} <= raw_tags  # terrain, truck, static, ground: remapped to ignore


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ [0.299, 0.587, 0.114]


def test_appearances_measurably_distinct(renderer):
    layout = sample_layout(2, 11, width=SMALL[0], height=SMALL[1])
    tags, (noon, sunset, night, fog) = _render(renderer, layout)
    names = ("noon", "sunset", "night", "fog")
    lum = {n: _luminance(im) for n, im in zip(names, (noon, sunset, night, fog), strict=True)}
    assert lum["night"].mean() < 0.6 * lum["noon"].mean()
    assert lum["sunset"].mean() < lum["noon"].mean()
    images = {"noon": noon, "sunset": sunset, "night": night, "fog": fog}
    for a in images:
        for b in images:
            if a < b:
                assert np.abs(images[a].astype(int) - images[b]).mean() > 10, (a, b)
    red_blue = {n: im[..., 0].mean() / im[..., 2].mean() for n, im in images.items()}
    assert red_blue["sunset"] > 1.1 * red_blue["noon"]  # warm light
    # Fog lowers contrast, more with distance: compare the far middle of the image (the
    # end of the street) with the near bottom.
    h, w = tags.shape
    far = (slice(h // 3, h // 2), slice(w // 3, 2 * w // 3))
    near = (slice(3 * h // 4, h), slice(None))
    ratio_far = lum["fog"][far].std() / lum["noon"][far].std()
    ratio_near = lum["fog"][near].std() / lum["noon"][near].std()
    assert ratio_far < ratio_near and ratio_far < 0.6


def test_night_switches_lights_from_the_preset():
    noon, _, night, fog = PRESETS
    assert lighting_for(night).street_lights and lighting_for(night).head_lights
    assert not lighting_for(night).shadows and lighting_for(noon).shadows
    assert not lighting_for(noon).street_lights and lighting_for(noon).window_share == 0
    assert lighting_for(fog).fog_density > 10 * lighting_for(noon).fog_density
    assert max(lighting_for(night).sun_color) == 0


def test_lighting_follows_weather_parameters():
    import dataclasses

    noon = PRESETS[0]
    cloudy = dataclasses.replace(noon, weather=dataclasses.replace(noon.weather, cloudiness=90.0))
    assert max(lighting_for(cloudy).sun_color) < 0.5 * max(lighting_for(noon).sun_color)
    east = dataclasses.replace(noon, weather=dataclasses.replace(noon.weather,
                                                                 sun_azimuth_angle=90.0))
    x, y, z = lighting_for(east).sun_dir
    assert abs(x) < 1e-6 and y > 0.7 and z == pytest.approx(np.sin(np.radians(45)))
    low = dataclasses.replace(noon, weather=dataclasses.replace(noon.weather,
                                                                sun_altitude_angle=10.0))
    r, g, b = lighting_for(low).sun_color
    assert r > 1.5 * b  # a low sun is warm


def test_supersampling_changes_rgb_not_labels():
    layout = sample_layout(1, 2, width=SMALL[0], height=SMALL[1])
    with BuiltinRenderer(*SMALL, antialias=2) as r2, BuiltinRenderer(*SMALL) as r1:
        t1, (a1,) = _render(r1, layout, PRESETS[:1])
        t2, (a2,) = _render(r2, layout, PRESETS[:1])
    np.testing.assert_array_equal(t1, t2)
    assert a2.shape == a1.shape and 0 < np.abs(a1.astype(int) - a2).mean() < 20


def test_missing_egl_is_one_clear_message(monkeypatch):
    import moderngl

    def fail(**kwargs):
        raise Exception("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_standalone_context", fail)
    with pytest.raises(UserError, match="libegl1 libgl1-mesa-dri"):
        BuiltinRenderer(*SMALL)
