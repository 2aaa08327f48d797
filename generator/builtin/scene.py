"""Geometry and light sources of a built-in layout (see :mod:`.city` for the record).

Every part is tagged with its CARLA 0.9.14+ semantic tag; materials select the procedural
surface in the shader. Nothing here is random except through per-object seeds derived from
the layout record, so the same layout always gives the same vertices.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..layout import ActorSpec, Layout
from .meshes import MeshBuilder

# CARLA 0.9.14+ tags used by the built-in city.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TLIGHT, SIGN, VEG, TERRAIN = range(1, 11)
PEDESTRIAN, RIDER, CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE, STATIC = 12, 13, 14, 15, 16, 18, 19, 20
ROAD_LINE, GROUND = 24, 25

# Materials (the shader's surface models).
(PLAIN, ASPHALT, MARKING, PAVING, FACADE, FOLIAGE, GRASS, PAINT, GLASS, LAMP, HEADLIGHT,
 TAILLIGHT, SIGNAL, CONCRETE, METAL, CLOTH, SKIN, BARK, RUBBER, SIGNFACE) = range(20)

FACADE_COLORS = ((0.75, 0.68, 0.55), (0.55, 0.28, 0.2), (0.6, 0.6, 0.62), (0.85, 0.84, 0.8),
                 (0.45, 0.38, 0.32), (0.5, 0.55, 0.62), (0.7, 0.58, 0.45), (0.35, 0.35, 0.37))
SIGNAL_COLORS = {"Red": (1.0, 0.1, 0.05), "Yellow": (1.0, 0.7, 0.05), "Green": (0.1, 1.0, 0.4)}


@dataclass(frozen=True)
class Light:
    """A point or spot light; ``group`` says which preset switch turns it on."""

    position: tuple[float, float, float]
    color: tuple[float, float, float]  # linear RGB times intensity
    radius: float  # metres where it fades to nothing
    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)
    cos_cutoff: float = -1.0  # -1: point light; else cosine of the spot half-angle
    group: str = "street"  # "street" or "head" (tail lights are emissive only)


@dataclass(frozen=True)
class Scene:
    vertices: np.ndarray  # float32 [N, 12], see meshes.py
    lights: tuple[Light, ...]
    first_caster: int = 0  # vertices before this (flat road and ground) cast no shadow


def _seed(*parts: object) -> float:
    """A stable per-object number in [0, 1) for texture variation."""
    return (zlib.crc32(repr(parts).encode()) % 10007) / 10007.0


def _rgb(color) -> tuple[float, float, float]:
    return tuple((np.asarray(color, np.float32) / 255.0) ** 2.2)  # sRGB-ish to linear


def _road(mb: MeshBuilder, road: dict) -> None:
    half, side, kerb = road["half_width"], road["sidewalk"], road["kerb"]
    cx, cw = road["cross_x"], road["cross_half_width"]
    tone = (0.16, 0.14, 0.12)[road["asphalt"]]
    asphalt = (tone, tone, tone * 1.05)
    x0, x1 = -60.0, 260.0
    mb.box((100, 0, -0.02), (400, 400, 0.01), 0, (0.25, 0.22, 0.18), GRASS, GROUND)
    mb.box(((x0 + x1) / 2, 0, -0.01), (x1 - x0, 2 * half, 0.01), 0, asphalt, ASPHALT, ROAD, 0.3)
    spans = [(x0, x1)] if cx < 0 else [(x0, cx - cw), (cx + cw, x1)]
    if cx >= 0:  # the crossing street, with its own sidewalks
        mb.box((cx, 0, -0.01), (2 * cw, 400, 0.01), 0, asphalt, ASPHALT, ROAD, 0.6)
        for sx in (-1, 1):
            for sy in (-1, 1):
                y_mid = sy * (half + side + 100) / 2 + sy * (half + side) / 2
                mb.box((cx + sx * (cw + side / 2), y_mid, 0), (side, 200 - half - side, kerb), 0,
                       (0.55, 0.54, 0.52), PAVING, SIDEWALK, 0.2)
    for a, b in spans:
        for sgn in (-1, 1):
            mb.box(((a + b) / 2, sgn * (half + side / 2), 0), (b - a, side, kerb), 0,
                   (0.55, 0.54, 0.52), PAVING, SIDEWALK, 0.1)
            mb.box(((a + b) / 2, sgn * (half + 0.1), 0), (b - a, 0.2, kerb + 0.005), 0,
                   (0.62, 0.62, 0.6), CONCRETE, SIDEWALK, 0.4)
    # Lane markings: dashed lines between lanes, solid or dashed centre line, edge lines.
    white, yellow = (0.85, 0.85, 0.82), (0.85, 0.65, 0.1)
    centre = yellow if road["markings"] == 2 else white
    lw = road["lane_width"]
    for a, b in spans:
        if road["markings"] == 1:
            mb.box(((a + b) / 2, 0, 0), (b - a, 0.15, 0.02), 0, centre, MARKING, ROAD_LINE)
        else:
            for x in np.arange(a + 1, b - 3, 9.0):
                mb.box((x + 1.5, 0, 0), (3.0, 0.15, 0.02), 0, centre, MARKING, ROAD_LINE)
        for lane in range(1, road["lanes"]):
            for sgn in (-1, 1):
                for x in np.arange(a + 4, b - 3, 9.0):
                    mb.box((x + 1.5, sgn * lane * lw, 0), (3.0, 0.12, 0.02), 0, white, MARKING,
                           ROAD_LINE)
        for sgn in (-1, 1):
            mb.box(((a + b) / 2, sgn * (half - 0.35), 0), (b - a, 0.12, 0.02), 0, white, MARKING,
                   ROAD_LINE)


def _static(mb: MeshBuilder, row: list, lights: list[Light]) -> None:
    kind, x, y, z, yaw, sx, sy, sz, variant = row
    seed = _seed(*row)
    if kind == "building":
        color = FACADE_COLORS[variant % len(FACADE_COLORS)]
        mb.box((x, y, z), (sx, sy, sz), yaw, color, FACADE, BUILDING, seed)
        if variant % 3 == 0:  # a roof parapet and a ground-floor band for variety
            mb.box((x, y, z + sz), (sx + 0.3, sy + 0.3, 0.6), yaw, color, CONCRETE, BUILDING)
        if variant % 4 == 1:
            mb.box((x, y, z), (sx + 0.2, sy + 0.2, 3.5), yaw, (0.3, 0.28, 0.27), CONCRETE,
                   BUILDING, seed)
    elif kind == "wall":
        tones = ((0.6, 0.58, 0.55), (0.5, 0.35, 0.28), (0.4, 0.4, 0.42))
        mb.box((x, y, z), (sx, sy, sz), yaw, tones[variant % 3], CONCRETE, WALL, seed)
    elif kind == "fence":
        tone = ((0.35, 0.36, 0.38), (0.45, 0.3, 0.2))[variant % 2]
        for h in (0.15, sz - 0.1):
            mb.box((x, y, z + h), (sx, 0.05, 0.06), yaw, tone, METAL, FENCE)
        step = 0.12 if variant % 2 else 0.25
        for fx in np.arange(x - sx / 2 + 0.05, x + sx / 2, step):
            mb.box((fx, y, z), (0.03, 0.03, sz), yaw, tone, METAL, FENCE)
    elif kind == "hedge":
        mb.box((x, y, z), (sx, sy, sz), yaw, (0.12, 0.28, 0.08), FOLIAGE, VEG, seed)
    elif kind in ("grass", "ground"):
        color = (0.22, 0.38, 0.12) if kind == "grass" else (0.35, 0.3, 0.24)
        mb.box((x, y, z), (sx, sy, sz), yaw, color, GRASS, TERRAIN if kind == "grass" else GROUND,
               seed)
    elif kind == "tree":
        mb.cylinder((x, y, z), 0.15 + 0.02 * sz, sz * 0.45, (0.25, 0.18, 0.12), BARK, VEG, seed)
        green = ((0.1, 0.3, 0.06), (0.16, 0.32, 0.08), (0.2, 0.28, 0.1), (0.08, 0.22, 0.08))
        r = 0.25 * sz
        for i, (dx, dy, dz) in enumerate(((0, 0, 0), (0.4, 0.2, -0.2), (-0.3, -0.3, 0.1))):
            mb.sphere((x + dx * r, y + dy * r, z + sz * 0.7 + dz * r), (r, r * 0.95, r * 0.8),
                      green[variant % 4], FOLIAGE, VEG, seed + i * 0.1)
    elif kind == "lamp":
        sgn = 1 if yaw > 0 else -1
        mb.cylinder((x, y, z), sx, sz, (0.3, 0.32, 0.33), METAL, POLE, seed)
        arm = 1.5
        mb.box((x, y - sgn * arm / 2, z + sz - 0.1), (0.1, arm, 0.1), 0, (0.3, 0.32, 0.33), METAL,
               POLE)
        head = (x, y - sgn * arm, z + sz - 0.25)
        mb.box(head, (0.6, 0.3, 0.18), 0, (1.0, 0.85, 0.6), LAMP, POLE)
        lights.append(Light((head[0], head[1], head[2] - 0.1), (5.0, 3.9, 2.5), 20.0,
                            (0.0, 0.0, -1.0), 0.2, "street"))
    elif kind == "sign":
        mb.cylinder((x, y, z), 0.04, sz, (0.5, 0.5, 0.52), METAL, POLE)
        colors = ((0.8, 0.05, 0.05), (0.05, 0.2, 0.7), (0.9, 0.75, 0.05), (0.9, 0.9, 0.9),
                  (0.05, 0.45, 0.15), (0.8, 0.05, 0.05))
        w = 0.7 if variant % 2 else 0.6
        mb.box((x - 0.05, y, z + sz - w), (0.04, w, w), 0, colors[variant % 6], SIGNFACE, SIGN,
               seed)
    elif kind in ("bench", "bin", "hydrant", "box"):
        size = {"bench": (1.6, 0.5, 0.5), "bin": (0.5, 0.5, 0.9), "hydrant": (0.3, 0.3, 0.7),
                "box": (0.8, 0.5, 1.3)}[kind]
        color = {"bench": (0.35, 0.22, 0.12), "bin": (0.15, 0.3, 0.15), "hydrant": (0.7, 0.1, 0.1),
                 "box": (0.4, 0.42, 0.4)}[kind]
        mb.box((x, y, z), size, yaw, color, METAL, STATIC, seed)
    elif kind == "crosswalk":
        for yy in np.arange(-sy / 2 + 0.3, sy / 2 - 0.2, 1.0):
            mb.box((x, yy + 0.25, 0), (sx, 0.5, 0.02), 0, (0.85, 0.85, 0.82), MARKING, ROAD_LINE)


def _vehicle(mb: MeshBuilder, a: ActorSpec, lights: list[Light]) -> None:
    t = a.transform
    kind = a.blueprint.split(".")[1]
    shape = a.blueprint.split(".")[2] if kind == "car" else kind
    paint = _rgb(a.color or (128, 128, 128))
    seed = _seed(a.name, a.blueprint)
    yaw = t.yaw
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))

    def at(lx: float, ly: float, lz: float) -> tuple[float, float, float]:
        return (t.x + c * lx - s * ly, t.y + s * lx + c * ly, t.z + lz)

    def box(lx, ly, lz, size, color, mat, tag):
        mb.box((t.x, t.y, t.z), size, yaw, color, mat, tag, seed, local=(lx, ly, lz))

    def wheel(lx, ly, r, w, tag):
        for dy in (-w / 2, w / 2):
            mb.box((t.x, t.y, t.z), (2 * r, 0.05, 2 * r), yaw, (0.05, 0.05, 0.05), RUBBER, tag,
                   local=(lx, ly + dy, 0))

    if kind in ("motorcycle", "bicycle"):
        tag = MOTORCYCLE if kind == "motorcycle" else BICYCLE
        r = 0.33 if kind == "motorcycle" else 0.34
        for lx in (-0.65, 0.65):
            mb.box((t.x, t.y, t.z), (2 * r, 0.1 if kind == "motorcycle" else 0.04, 2 * r), yaw,
                   (0.05, 0.05, 0.05), RUBBER, tag, local=(lx, 0, 0))
        if kind == "motorcycle":
            box(0, 0, 0.35, (1.2, 0.35, 0.45), paint, PAINT, tag)
            box(0.55, 0, 0.75, (0.2, 0.6, 0.1), (0.1, 0.1, 0.1), METAL, tag)
            box(0.72, 0, 0.55, (0.05, 0.18, 0.15), (1.0, 0.95, 0.8), HEADLIGHT, tag)
            lights.append(Light(at(0.8, 0, 0.6), (6.0, 6.0, 5.0), 18.0, (c, s, -0.08), 0.85,
                                "head"))
        else:
            box(0, 0, 0.35, (1.0, 0.04, 0.05), paint, PAINT, tag)
            box(0.1, 0, 0.45, (0.05, 0.04, 0.5), paint, PAINT, tag)
            box(-0.3, 0, 0.35, (0.05, 0.04, 0.55), paint, PAINT, tag)
            box(0.45, 0, 0.95, (0.05, 0.5, 0.04), (0.1, 0.1, 0.1), METAL, tag)
        # The rider.
        clothes = _rgb(((40, 40, 60), (150, 40, 30), (20, 60, 20))[int(seed * 3)])
        seat_z = 0.75 if kind == "motorcycle" else 0.9
        for ly in (-0.15, 0.15):
            box(-0.05, ly, 0.2, (0.18, 0.14, seat_z - 0.2), clothes, CLOTH, RIDER)
        box(0.0, 0, seat_z, (0.3, 0.42, 0.6), clothes, CLOTH, RIDER)
        box(0.25, 0, seat_z + 0.35, (0.5, 0.35, 0.1), clothes, CLOTH, RIDER)
        mb.sphere(at(0.05, 0, seat_z + 0.75), (0.13, 0.13, 0.15),
                  (0.1, 0.1, 0.1) if kind == "motorcycle" else (0.65, 0.48, 0.38),
                  GLASS if kind == "motorcycle" else SKIN, RIDER, seed, yaw)
        return

    dims = {"sedan": (4.6, 1.8, 1.45), "hatchback": (4.0, 1.75, 1.5), "suv": (4.8, 1.95, 1.8),
            "van": (5.0, 2.0, 2.1), "bus": (12.0, 2.55, 3.2), "truck": (8.0, 2.5, 3.4)}[shape]
    length, width, height = dims
    tag = {"car": CAR, "bus": BUS, "truck": TRUCK}[kind]
    r = 0.34 if kind == "car" else 0.5
    axle = length / 2 - (0.85 if kind == "car" else 1.6)
    for lx in (-axle, axle):
        wheel(lx, 0, r, width - 0.2, tag)
    if kind == "bus":
        box(0, 0, 0.35, (length, width, height - 0.35), paint, PAINT, tag)
        box(0.3, 0, 1.3, (length - 1.0, width + 0.02, 1.1), (0.05, 0.06, 0.08), GLASS, tag)
        box(0, 0, 1.2, (length + 0.02, width - 0.4, 1.4), (0.05, 0.06, 0.08), GLASS, tag)
    elif kind == "truck":
        box(length / 2 - 1.0, 0, 0.45, (2.0, width, height - 0.9), paint, PAINT, tag)
        box(length / 2 - 0.1, 0, 1.5, (0.22, width - 0.3, 0.9), (0.05, 0.06, 0.08), GLASS, tag)
        box(-1.0, 0, 0.6, (length - 2.1, width, height - 0.5), (0.8, 0.8, 0.78), PAINT, tag)
    else:
        low = 0.3
        body = height * (0.55 if shape != "van" else 0.75)
        box(0, 0, low, (length, width, body - low), paint, PAINT, tag)
        cab_len = length * (0.5 if shape == "sedan" else 0.62 if shape != "van" else 0.8)
        cab_off = -0.15 * length if shape in ("hatchback", "suv") else (
            -0.05 * length if shape == "sedan" else -0.08 * length)
        box(cab_off, 0, body, (cab_len, width - 0.15, height - body), paint, PAINT, tag)
        box(cab_off, 0, body + 0.05, (cab_len + 0.04, width - 0.25, height - body - 0.15),
            (0.04, 0.05, 0.07), GLASS, tag)
        box(cab_off, 0, body + 0.05, (cab_len - 0.3, width - 0.11, height - body - 0.15),
            (0.04, 0.05, 0.07), GLASS, tag)
    front_z = 0.75 if kind == "car" else 0.9
    for ly in (-width / 2 + 0.3, width / 2 - 0.3):
        box(length / 2, ly, front_z - 0.1, (0.06, 0.35, 0.14), (1.0, 0.95, 0.85), HEADLIGHT, tag)
        box(-length / 2, ly, front_z - 0.05, (0.06, 0.3, 0.14), (0.9, 0.05, 0.03), TAILLIGHT, tag)
        lights.append(Light(at(length / 2 + 0.1, ly, front_z), (8.0, 7.6, 6.5), 25.0,
                            (c, s, -0.06), 0.82, "head"))


def _walker(mb: MeshBuilder, a: ActorSpec) -> None:
    t = a.transform
    variant = int(a.blueprint.split(".")[-1])
    clothes = _rgb(a.color or (60, 60, 60))
    legs = _rgb(((30, 30, 40), (60, 50, 40), (20, 30, 60), (90, 90, 90))[variant % 4])
    skin = ((0.75, 0.55, 0.42), (0.45, 0.3, 0.2), (0.9, 0.7, 0.6), (0.6, 0.42, 0.3))[variant % 4]
    scale = 0.9 + 0.05 * (variant % 5)
    seed = _seed(a.name)

    def box(lx, ly, lz, size, color, mat):
        mb.box((t.x, t.y, t.z), np.multiply(size, scale), t.yaw, color, mat, PEDESTRIAN, seed,
               local=(lx * scale, ly * scale, lz * scale))

    stride = 0.12 * ((variant % 3) - 1)
    box(stride, -0.1, 0, (0.16, 0.14, 0.85), legs, CLOTH)
    box(-stride, 0.1, 0, (0.16, 0.14, 0.85), legs, CLOTH)
    box(0, 0, 0.85, (0.25, 0.44, 0.62), clothes, CLOTH)
    box(0, -0.27, 0.9, (0.12, 0.1, 0.55), clothes, CLOTH)
    box(0, 0.27, 0.9, (0.12, 0.1, 0.55), clothes, CLOTH)
    mb.sphere((t.x, t.y, t.z + 1.6 * scale), np.multiply((0.1, 0.1, 0.13), scale), skin, SKIN,
              PEDESTRIAN, seed)


def _traffic_light(mb: MeshBuilder, location, state: str, index: int) -> None:
    x, y, z = location
    sgn = 1 if y > 0 else -1
    mb.cylinder((x, y, z), 0.09, 5.2, (0.22, 0.23, 0.22), METAL, POLE)
    arm = 2.5 if sgn > 0 else 1.0  # our side (right, y > 0) reaches over the road
    mb.box((x, y - sgn * arm / 2, z + 5.0), (0.12, arm, 0.12), 0, (0.22, 0.23, 0.22), METAL, POLE)
    for hy, hz in ((y - sgn * arm, z + 4.1), (y, z + 2.4)):
        mb.box((x - 0.15, hy, hz), (0.3, 0.35, 0.95), 0, (0.06, 0.06, 0.05), METAL, TLIGHT)
        for j, name in enumerate(("Red", "Yellow", "Green")):
            lit = state == name
            color = SIGNAL_COLORS[name] if lit else tuple(0.15 * v for v in SIGNAL_COLORS[name])
            mb.box((x - 0.31, hy, hz + 0.7 - 0.3 * j), (0.03, 0.2, 0.2), 0, color,
                   SIGNAL if lit else GLASS, TLIGHT)


def build_scene(layout: Layout) -> Scene:
    """All geometry and lights of a built-in layout."""
    params = layout.backend_params
    mb = MeshBuilder()
    lights: list[Light] = []
    _road(mb, params["road"])
    first_caster = len(mb.vertices())
    for row in params["static"]:
        _static(mb, row, lights)
    for i, light in enumerate(layout.traffic_lights):
        if light.location is not None:
            _traffic_light(mb, light.location, light.state, i)
    for actor in layout.actors:
        if actor.kind == "vehicle":
            _vehicle(mb, actor, lights)
        elif actor.kind == "walker":
            _walker(mb, actor)
    return Scene(mb.vertices(), tuple(lights), first_caster)
