from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

from carla4agt_data.errors import FileFormatError, UserError
from generator.weather import (
    APPEARANCES,
    VEHICLE_LIGHT_FLAGS,
    WeatherParams,
    load_preset,
    presets_dir,
    resolve_weathers,
)


def test_all_is_the_four_in_fixed_order():
    assert [p.name for p in resolve_weathers("all")] == ["noon", "sunset", "night", "fog"]
    assert [p.name for p in resolve_weathers("fog, noon")] == ["fog", "noon"]


@pytest.mark.parametrize("name", APPEARANCES)
def test_every_preset_builds_real_weather_parameters(carla, name):
    preset = load_preset(name)
    weather = preset.weather.to_carla()
    assert isinstance(weather, carla.WeatherParameters)
    for field in dataclasses.fields(WeatherParams):
        assert math.isclose(getattr(weather, field.name), getattr(preset.weather, field.name),
                            rel_tol=1e-6, abs_tol=1e-6), field.name
    # every keyword field of the wheel is written out in the preset file
    wheel_fields = {n for n in dir(weather) if not n.startswith("_") and n[0].islower()}
    assert wheel_fields == {f.name for f in dataclasses.fields(WeatherParams)}
    assert weather.wind_intensity == 0
    assert 0 <= weather.sun_azimuth_angle <= 360
    assert isinstance(preset.lights.vehicle_light_state(), carla.VehicleLightState)


@pytest.mark.parametrize("name, carla_preset", [("noon", "ClearNoon"), ("sunset", "ClearSunset"),
                                                ("night", "ClearNight")])
def test_presets_follow_carla_presets(carla, name, carla_preset):
    ours = load_preset(name).weather
    ref = getattr(carla.WeatherParameters, carla_preset)
    for field in dataclasses.fields(WeatherParams):
        if field.name in ("wind_intensity", "sun_azimuth_angle"):
            continue  # wind off for alignment; azimuth explicit instead of CARLA's -1
        assert math.isclose(getattr(ref, field.name), getattr(ours, field.name), rel_tol=1e-5), \
            field.name


def test_appearances_are_what_they_claim():
    noon, sunset, night, fog = resolve_weathers("all")
    assert 0 < sunset.weather.sun_altitude_angle < 20 < noon.weather.sun_altitude_angle
    assert night.is_night and not noon.is_night and night.lights.street_lights
    assert "LowBeam" in night.lights.vehicle_lights
    assert fog.weather.fog_density >= 30 and fog.weather.scattering_intensity == 1.0
    assert fog.weather.mie_scattering_scale >= 2.0


def test_light_flags_exist_in_wheel(carla):
    for flag in VEHICLE_LIGHT_FLAGS:
        assert isinstance(getattr(carla.VehicleLightState, flag), carla.VehicleLightState)


def test_camera_blueprint_attributes_turn_motion_blur_off():
    attrs = load_preset("noon").camera.blueprint_attributes()
    assert attrs["motion_blur_intensity"] == "0.0"
    assert attrs["exposure_mode"] == "histogram"


def _write_variant(tmp_path, edit, name="mine.yaml"):
    data = yaml.safe_load((presets_dir() / "fog.yaml").read_text())
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_preset_by_path(tmp_path):
    path = _write_variant(tmp_path, lambda d: d.pop("name"), name="rain.yaml")
    presets = resolve_weathers(f"noon,{path}")
    assert [p.name for p in presets] == ["noon", "rain"]
    assert presets[1].source == path


@pytest.mark.parametrize("edit, field, message", [
    (lambda d: d["weather"].update(fog_densty=d["weather"].pop("fog_density")),
     "weather.fog_density", "misspelt"),
    (lambda d: d["weather"].update(fog_colour=1.0), "weather.fog_colour", "not a known field"),
    (lambda d: d["weather"].update(cloudiness="cloudy"), "weather.cloudiness", "a number"),
    (lambda d: d["weather"].update(sun_altitude_angle=120.0), "weather.sun_altitude_angle",
     "between -90 and 90"),
    (lambda d: d["weather"].update(wind_intensity=10.0), "weather.wind_intensity", "foliage"),
    (lambda d: d["lights"].update(vehicle_lights=["Headlights"]), "lights.vehicle_lights[0]",
     "unknown flag"),
    (lambda d: d["camera"].update(motion_blur_intensity=0.45), "camera.motion_blur_intensity",
     "must be 0"),
    (lambda d: d.update(version=99), "version", "version 1"),
    (lambda d: d.pop("lights"), "lights", "missing"),
    (lambda d: d.update(name="Fog Heavy"), "name", "lower-case"),
])
def test_bad_presets_name_file_and_field(tmp_path, edit, field, message):
    path = _write_variant(tmp_path, edit)
    with pytest.raises(FileFormatError, match=message) as info:
        load_preset(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UserError, match="noon, sunset, night, fog"):
        resolve_weathers("noon,foggy")


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nweather: {cloudiness: 5\n")
    with pytest.raises(FileFormatError, match="line 3"):
        load_preset(path)


def test_duplicate_appearance_refused():
    with pytest.raises(UserError, match="twice"):
        resolve_weathers("all,noon")


def test_missing_file():
    with pytest.raises(UserError, match="no such file"):
        load_preset("./nowhere.yaml")


def test_vehicle_light_state_has_one_encoder_and_decoder(carla):
    from generator.weather import light_state_flags, light_state_value

    flags = ("Position", "LowBeam", "Fog")
    state = light_state_value(flags, carla)
    assert isinstance(state, carla.VehicleLightState)
    assert light_state_flags(state, carla) == flags
    assert light_state_flags(int(state), carla) == flags
    assert light_state_flags(light_state_value((), carla), carla) == ()
