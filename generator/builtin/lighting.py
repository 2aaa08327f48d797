"""Shader lighting derived from a weather preset's CARLA parameters (and nothing else).

The built-in renderer interprets the same ``WeatherParameters`` a CARLA server gets: sun
direction from altitude/azimuth, sky and sun colour from the altitude, clouds dim direct
light, exponential fog from density/distance/falloff, wetness darkens and polishes the road;
below the horizon the preset's lights section switches lamps and vehicle lights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..weather import WeatherPreset


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t


def _smooth(e0: float, e1: float, x: float) -> float:
    t = min(max((x - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3 - 2 * t)


@dataclass(frozen=True)
class Lighting:
    """Uniform values for the shaders (linear RGB)."""

    sun_dir: tuple[float, float, float]
    sun_color: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    ground_color: tuple[float, float, float]
    fog_color: tuple[float, float, float]
    fog_density: float  # per metre
    fog_start: float  # metres
    fog_falloff: float  # per metre of height
    cloudiness: float  # 0..1
    mie: float
    exposure: float
    gamma: float
    wetness: float  # 0..1
    window_share: float  # share of lit windows
    shadows: bool
    street_lights: bool
    head_lights: bool
    tail_lights: bool

    def uniforms(self) -> dict[str, object]:
        return {
            "u_sun_dir": self.sun_dir, "u_sun_color": self.sun_color,
            "u_sky_zenith": self.sky_zenith, "u_sky_horizon": self.sky_horizon,
            "u_ground_color": self.ground_color, "u_fog_color": self.fog_color,
            "u_fog_density": self.fog_density, "u_fog_start": self.fog_start,
            "u_fog_falloff": self.fog_falloff, "u_cloudiness": self.cloudiness,
            "u_mie": self.mie, "u_exposure": self.exposure, "u_gamma": self.gamma,
            "u_wetness": self.wetness, "u_window_share": self.window_share,
            "u_shadow_on": float(self.shadows), "u_street_on": float(self.street_lights),
            "u_head_on": float(self.head_lights), "u_tail_on": float(self.tail_lights),
        }


def _vec3(values) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return x, y, z


def lighting_for(preset: WeatherPreset) -> Lighting:
    w = preset.weather
    alt, az = np.radians(w.sun_altitude_angle), np.radians(w.sun_azimuth_angle)
    sun_dir = np.array([np.cos(alt) * np.cos(az), np.cos(alt) * np.sin(az), np.sin(alt)])
    clouds = w.cloudiness / 100.0
    alt_deg = w.sun_altitude_angle
    day = _smooth(-6.0, 8.0, alt_deg)  # 0 at night, 1 in daylight
    low = 1.0 - _smooth(5.0, 40.0, alt_deg)  # warm, low sun

    sun_strength = 3.2 * min(max(np.sin(alt) * 1.6 + 0.15, 0.0), 1.0) if alt_deg > 0 else 0.0
    sun_color = _mix((1.0, 0.97, 0.9), (1.0, 0.5, 0.22), low) * sun_strength * (1 - 0.8 * clouds)

    blue = min(max(w.rayleigh_scattering_scale / 0.0331, 0.0), 2.0)
    zenith_day = _mix((0.45, 0.5, 0.55), (0.16, 0.33, 0.8), min(blue, 1.0))
    zenith = _mix(_mix(zenith_day, (0.18, 0.22, 0.45), low), (0.003, 0.005, 0.012), 1 - day)
    horizon = _mix(_mix((0.62, 0.72, 0.88), (1.0, 0.45, 0.2), low), (0.008, 0.01, 0.018), 1 - day)
    grey = np.full(3, 0.6 * day + 0.01 * (1 - day))
    zenith = _mix(zenith, grey * (0.9 + 0.2 * low), 0.85 * clouds)
    horizon = _mix(horizon, grey, 0.7 * clouds)
    ground = _mix((0.22, 0.2, 0.17), (0.3, 0.16, 0.08), low) * (0.15 + 0.3 * sun_strength) * day
    ground = ground + 0.002

    mie = w.mie_scattering_scale
    fog_base = _mix(horizon, np.full(3, float(np.mean(horizon))), 0.5)
    fog_color = fog_base * (0.85 + 0.1 * min(mie, 3.0)) * (w.scattering_intensity > 0)
    fog_density = w.fog_density / 100.0 * 0.04

    # Auto exposure ("histogram") adapts only partly, like a camera: night stays dark.
    light_level = 0.3 * float(np.max(sun_color)) + float(np.mean(zenith + horizon)) * 0.5 + 0.02
    if preset.camera.exposure_mode == "histogram":
        exposure = 0.8 / light_level ** 0.1
    else:
        exposure = 0.65
    exposure *= 2.0 ** preset.camera.exposure_compensation

    lights = preset.lights
    return Lighting(
        sun_dir=_vec3(sun_dir),
        sun_color=_vec3(sun_color),
        sky_zenith=_vec3(zenith),
        sky_horizon=_vec3(horizon),
        ground_color=_vec3(ground),
        fog_color=_vec3(fog_color),
        fog_density=float(fog_density),
        fog_start=float(w.fog_distance),
        fog_falloff=float(w.fog_falloff) * 0.2,
        cloudiness=float(clouds),
        mie=float(mie),
        exposure=float(exposure),
        gamma=float(preset.camera.gamma),
        wetness=float(max(w.wetness, w.precipitation_deposits) / 100.0),
        window_share=float(0.35 * (1.0 - _smooth(-8.0, 6.0, alt_deg))),
        shadows=alt_deg > 0,
        street_lights=lights.street_lights,
        head_lights=bool({"LowBeam", "HighBeam"} & set(lights.vehicle_lights)),
        tail_lights=bool({"Position", "Brake"} & set(lights.vehicle_lights)),
    )
