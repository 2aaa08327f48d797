"""Weather presets: one YAML file per appearance, validated, convertible to CARLA objects.

A preset carries every ``carla.WeatherParameters`` keyword field, the light settings
(street lights, vehicle light state) and the RGB camera settings. Both backends read the
same presets: the CARLA backend passes them to the server, the built-in renderer
interprets them.

Example:
    >>> presets = resolve_weathers("all")            # noon, sunset, night, fog
    >>> [p.name for p in resolve_weathers("noon,./rain.yaml")]
    ['noon', 'rain']
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carla4agt_data.errors import UserError
from carla4agt_data.fileio import dump_yaml

from .fields import FieldReader, shorten
from .yamlin import read_yaml_file

PRESET_VERSION = 1
APPEARANCES = ("noon", "sunset", "night", "fog")  # the built-in presets, in the fixed order

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class WeatherParams:
    """The 14 keyword fields of ``carla.WeatherParameters`` (CARLA 0.9.14 to 0.10.0)."""

    cloudiness: float  # 0..100 %
    precipitation: float  # 0..100 %
    precipitation_deposits: float  # puddles, 0..100 %
    wind_intensity: float  # 0..100 %; must be 0: wind moves foliage and shifts labels
    sun_azimuth_angle: float  # degrees, 0..360 (CARLA's presets use -1: always explicit here)
    sun_altitude_angle: float  # degrees, -90..90; below 0 is night
    fog_density: float  # 0..100
    fog_distance: float  # metres where fog starts, >= 0
    fog_falloff: float  # density falloff with height, >= 0
    wetness: float  # 0..100 %
    scattering_intensity: float  # >= 0; 0 turns fog black
    mie_scattering_scale: float  # >= 0; haze around the sun, whiter fog
    rayleigh_scattering_scale: float  # >= 0; blue of the sky
    dust_storm: float  # 0..100 %

    def to_carla(self) -> Any:
        """A new ``carla.WeatherParameters`` built by keyword (never a shared preset object)."""
        carla = import_carla()
        return carla.WeatherParameters(**dataclasses.asdict(self))


# (low, high) for each weather field; None = unbounded.
_WEATHER_RANGES: dict[str, tuple[float | None, float | None]] = {
    "cloudiness": (0, 100),
    "precipitation": (0, 100),
    "precipitation_deposits": (0, 100),
    "wind_intensity": (0, 100),
    "sun_azimuth_angle": (0, 360),
    "sun_altitude_angle": (-90, 90),
    "fog_density": (0, 100),
    "fog_distance": (0, None),
    "fog_falloff": (0, None),
    "wetness": (0, 100),
    "scattering_intensity": (0, None),
    "mie_scattering_scale": (0, None),
    "rayleigh_scattering_scale": (0, None),
    "dust_storm": (0, 100),
}

# Flag names of carla.VehicleLightState (the tests check them against the wheel).
VEHICLE_LIGHT_FLAGS = (
    "Position", "LowBeam", "HighBeam", "Brake", "RightBlinker", "LeftBlinker",
    "Reverse", "Fog", "Interior", "Special1", "Special2",
)


@dataclass(frozen=True)
class LightSettings:
    """Which lights are on in this appearance."""

    street_lights: bool  # street lamps (CARLA only switches them itself below the horizon)
    vehicle_lights: tuple[str, ...] = ()  # carla.VehicleLightState flags set on every vehicle

    def vehicle_light_state(self, api: Any = None) -> Any:
        """The flags as one ``carla.VehicleLightState`` value."""
        return light_state_value(self.vehicle_lights, api)


def light_state_value(flags: Sequence[str], api: Any = None) -> Any:
    """Flag names -> one ``carla.VehicleLightState`` (``api``: the carla module or a
    stand-in; imported when None). The one place that encodes a vehicle light state."""
    api = api if api is not None else import_carla()
    state = api.VehicleLightState.NONE
    for flag in flags:
        state |= getattr(api.VehicleLightState, flag)
    return api.VehicleLightState(state)


def light_state_flags(state: Any, api: Any = None) -> tuple[str, ...]:
    """A ``carla.VehicleLightState`` (or its int) -> the flag names set in it, in the order
    of :data:`VEHICLE_LIGHT_FLAGS`. The one place that decodes a vehicle light state."""
    api = api if api is not None else import_carla()
    value = int(state)
    return tuple(f for f in VEHICLE_LIGHT_FLAGS
                 if value & int(getattr(api.VehicleLightState, f)))


@dataclass(frozen=True)
class CameraSettings:
    """RGB camera attributes (``sensor.camera.rgb``); motion blur is always off."""

    exposure_mode: str = "histogram"  # "histogram" (auto exposure) or "manual"
    exposure_compensation: float = 0.0  # stops, log2
    gamma: float = 2.2
    motion_blur_intensity: float = 0.0
    motion_blur_max_distortion: float = 0.0
    motion_blur_min_object_screen_size: float = 0.0

    def blueprint_attributes(self) -> dict[str, str]:
        """The settings as CARLA blueprint attributes (strings)."""
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class WeatherPreset:
    """One appearance: weather, lights and camera, read from ``source``."""

    name: str  # appearance name, used in file names (noon.png) and dataset metadata
    weather: WeatherParams
    lights: LightSettings
    camera: CameraSettings
    description: str = ""
    source: Path | None = dataclasses.field(default=None, compare=False)

    @property
    def is_night(self) -> bool:
        return self.weather.sun_altitude_angle < 0

    def to_dict(self) -> dict[str, Any]:
        """The preset as plain data, in the file format."""
        return {
            "version": PRESET_VERSION,
            "name": self.name,
            "description": self.description,
            "weather": dataclasses.asdict(self.weather),
            "lights": {
                "street_lights": self.lights.street_lights,
                "vehicle_lights": list(self.lights.vehicle_lights),
            },
            "camera": dataclasses.asdict(self.camera),
        }

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict(), flow_leaves=False)


def import_carla() -> Any:
    """Import the CARLA client, or explain how to install it."""
    try:
        import carla
    except ImportError:
        raise UserError(
            "The CARLA client is not installed. Install it with "
            "\"pip install 'carla4agt[carla]'\" (CARLA 0.9.16 wheels exist for Python "
            "3.10-3.12 on x86_64 Linux and Windows)."
        ) from None
    return carla


def presets_dir() -> Path:
    """The folder of the built-in presets: ``configs/weathers`` in a checkout, else the
    copy installed as the ``carla4agt_configs`` package data."""
    checkout = Path(__file__).resolve().parent.parent / "configs" / "weathers"
    if checkout.is_dir():
        return checkout
    try:
        installed = Path(str(importlib.resources.files("carla4agt_configs") / "weathers"))
    except ModuleNotFoundError:
        installed = None
    if installed is None or not installed.is_dir():
        raise UserError(
            f"The built-in weather presets are missing (looked in {checkout}). "
            "Reinstall carla4agt, or pass preset files by path."
        )
    return installed


def builtin_preset_names() -> list[str]:
    """Names of the presets in :func:`presets_dir`, the four standard ones first."""
    found = sorted(p.stem for p in presets_dir().glob("*.yaml"))
    return [n for n in APPEARANCES if n in found] + [n for n in found if n not in APPEARANCES]


def parse_preset(data: Any, source: str | Path, default_name: str) -> WeatherPreset:
    """Validate parsed preset data; errors name ``source`` and the field."""
    top = FieldReader(data, source)
    top.check_version(PRESET_VERSION, "weather presets of", "rewrite the preset in that version")
    name = top.get("name", str, default_name)
    if not _NAME.fullmatch(name):
        raise top.error("name", f"is {shorten(repr(name))}, which cannot name an appearance",
                        "Use 1 to 64 lower-case letters, digits, '_' and '-'.")
    description = top.get("description", str, "")

    w = top.sub("weather")
    values = {}
    for field in dataclasses.fields(WeatherParams):
        lo, hi = _WEATHER_RANGES[field.name]
        values[field.name] = w.get(field.name, float, lo=lo, hi=hi)
    if values["wind_intensity"] != 0:
        raise w.error("wind_intensity", f"is {values['wind_intensity']}, but must be 0",
                      "Wind moves foliage between captures, so labels would differ "
                      "across appearances.")
    w.finish()

    li = top.sub("lights")
    street_lights = li.get("street_lights", bool)
    flags = li.list("vehicle_lights", most=len(VEHICLE_LIGHT_FLAGS))
    for i, flag in enumerate(flags):
        if not isinstance(flag, str) or flag not in VEHICLE_LIGHT_FLAGS:
            raise li.error(f"vehicle_lights[{i}]", f"has the unknown flag {shorten(repr(flag))}",
                           "Valid flags are " + ", ".join(VEHICLE_LIGHT_FLAGS) + ".")
    li.finish()

    cam = top.sub("camera")
    camera = CameraSettings(
        exposure_mode=cam.get("exposure_mode", str, "histogram", choices=("histogram", "manual")),
        exposure_compensation=cam.get("exposure_compensation", float, 0.0, lo=-10, hi=10),
        gamma=cam.get("gamma", float, 2.2, lo=0.1, hi=10),
    )
    for key in ("motion_blur_intensity", "motion_blur_max_distortion",
                "motion_blur_min_object_screen_size"):
        if cam.get(key, float, 0.0) != 0:
            raise cam.error(key, "must be 0", "Motion blur smears RGB against the label map.")
    cam.finish()
    top.finish()
    return WeatherPreset(
        name=name,
        weather=WeatherParams(**values),
        lights=LightSettings(street_lights=street_lights, vehicle_lights=tuple(flags)),
        camera=camera,
        description=description,
        source=Path(source),
    )


def load_preset(name_or_path: str | Path) -> WeatherPreset:
    """Load a built-in preset by name (``"fog"``) or a user's preset file by path."""
    token = str(name_or_path)
    if _looks_like_path(token):
        path = Path(token)
    else:
        path = presets_dir() / f"{token}.yaml"
        if not path.is_file():
            raise UserError(
                f"Unknown weather preset {token!r}. Valid names are "
                + ", ".join(builtin_preset_names())
                + ", 'all', or the path of a preset YAML file (for example ./rain.yaml)."
            )
    return parse_preset(read_yaml_file(path, max_bytes=1024 * 1024), path,
                        default_name=path.stem)


def resolve_weathers(spec: str) -> list[WeatherPreset]:
    """Presets from a ``--weathers`` value: ``all``, or names and paths separated by commas.

    ``all`` is the four standard presets in the fixed order noon, sunset, night, fog.
    """
    tokens = [t.strip() for t in str(spec).split(",") if t.strip()]
    if not tokens:
        raise UserError("No weather given. Use 'all' or names such as 'noon,fog'.")
    names: list[str] = []
    for token in tokens:
        names.extend(APPEARANCES if token == "all" else [token])
    presets = [load_preset(n) for n in names]
    seen: dict[str, WeatherPreset] = {}
    for p in presets:
        if p.name in seen:
            raise UserError(
                f"The weather {p.name!r} is given twice ({seen[p.name].source} and {p.source}). "
                "Each appearance needs a distinct name."
            )
        seen[p.name] = p
    return presets


def _looks_like_path(token: str) -> bool:
    return token.endswith((".yaml", ".yml")) or "/" in token or "\\" in token
