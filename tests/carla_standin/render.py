"""Images of the stand-in: a pinhole view of the road, sidewalks, sky and actors (boxes),
tags in CARLA 0.9.14+ numbering; RGB from the weather, lights and exposure."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SKY, ROAD, SIDEWALK, PEDESTRIAN, CAR, POLE = 11, 1, 2, 12, 14, 6
PALETTE = {SKY: (0.9, 0.95, 1.0), ROAD: (0.25, 0.25, 0.27), SIDEWALK: (0.5, 0.48, 0.45),
           PEDESTRIAN: (0.6, 0.3, 0.2), CAR: (0.2, 0.3, 0.7), POLE: (0.4, 0.4, 0.4)}


def render_tags(server: Any, cam: Any, w: int, h: int,
                fov: float) -> tuple[np.ndarray, np.ndarray]:
    """Tag image and the mask of vehicle pixels (for their lights)."""
    from .actors import Vehicle, Walker

    tags = np.full((h, w), ROAD, np.uint8)
    tags[: h // 2] = SKY
    tags[h // 2: h // 2 + max(1, h // 16)] = SIDEWALK
    vehicles = np.zeros((h, w), bool)
    f = (w / 2) / math.tan(math.radians(fov) / 2)
    yaw = math.radians(cam.rotation.yaw)
    c = cam.location
    drawn = []
    for actor in server.actors.values():
        if not isinstance(actor, Vehicle | Walker):
            continue
        loc = actor._transform.location
        dx, dy = loc.x - c.x, loc.y - c.y
        forward = dx * math.cos(yaw) + dy * math.sin(yaw)
        right = -dx * math.sin(yaw) + dy * math.cos(yaw)
        if forward < 1.0:
            continue
        drawn.append((forward, right, actor))
    for forward, right, actor in sorted(drawn, key=lambda d: -d[0]):
        walker = isinstance(actor, Walker)
        half, tall = (0.3, 1.8) if walker else (0.9, 1.5)
        u = w / 2 + f * right / forward + (actor._pose_offset() if walker else 0)
        ground = actor._transform.location.z - (0.95 if walker else 0.0)
        v_bottom = h / 2 + f * (c.z - ground) / forward
        u0, u1 = int(round(u - f * half / forward)), int(round(u + f * half / forward)) + 1
        v0, v1 = int(round(v_bottom - f * tall / forward)), int(round(v_bottom)) + 1
        u0, u1, v0, v1 = max(u0, 0), min(u1, w), max(v0, 0), min(v1, h)
        if u0 < u1 and v0 < v1:
            tags[v0:v1, u0:u1] = PEDESTRIAN if walker else CAR
            vehicles[v0:v1, u0:u1] = not walker
            if walker:
                vehicles[v0:v1, u0:u1] = False
    return tags, vehicles


def render_rgb(server: Any, tags: np.ndarray, vehicle_mask: np.ndarray, *, exposure: float,
               compensation: float, gamma: float, blur: float) -> np.ndarray:
    """BGRA image: radiance from the sun, fog and lights, divided by the exposure."""
    from .actors import Vehicle, scene_luminance

    weather = server.weather
    base = np.zeros((*tags.shape, 3))
    for tag, color in PALETTE.items():
        base[tags == tag] = color
    radiance = base * scene_luminance(server)
    fog = min(1.0, weather.fog_density / 100.0)
    radiance = radiance * (1 - fog) + fog * 0.6 * scene_luminance(server)
    lights_on = any(isinstance(a, Vehicle) and int(a._light_state) & 2
                    for a in server.actors.values())
    if lights_on:
        radiance[vehicle_mask] += 0.2
    value = radiance / max(exposure, 1e-3) * 0.35 * 2.0 ** compensation
    value = np.clip(value, 0.0, 1.0) ** (2.2 / gamma)
    if blur > 0:  # motion blur smears horizontally
        value = 0.5 * (value + np.roll(value, 1, axis=1))
    bgra = np.zeros((*tags.shape, 4), np.uint8)
    bgra[..., :3] = np.round(value[..., ::-1] * 255).astype(np.uint8)
    bgra[..., 3] = 255
    return bgra
