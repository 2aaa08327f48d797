"""Procedural street layouts for the built-in renderer, deterministic from (seed, index).

:func:`sample_layout` only chooses numbers and writes them into a :class:`Layout`: the
street and static props go to ``backend_params`` (see ``STATIC_COLUMNS``), vehicles,
two-wheelers with riders and pedestrians become actors, traffic lights traffic-light
entries. :mod:`.scene` turns that record into geometry, so a layout file alone re-renders
the same image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fields import FieldReader, shorten
from ..layout import (
    ActorSpec,
    CameraSpec,
    Layout,
    TrafficLightSpec,
    Transform,
    sampled_layout_id,
)

CITY_VERSION = 1
STATIC_COLUMNS = ("kind", "x", "y", "z", "yaw", "sx", "sy", "sz", "variant")
CAR_SHAPES = ("sedan", "hatchback", "suv", "van")
CAR_COLORS = ((235, 235, 235), (20, 20, 22), (160, 163, 168), (150, 20, 25), (25, 50, 120),
              (30, 70, 45), (200, 160, 30), (90, 90, 95), (110, 60, 30), (200, 200, 190))
CLOTHES = ((40, 40, 60), (120, 30, 30), (30, 80, 120), (200, 200, 200), (60, 90, 40),
           (150, 120, 80), (20, 20, 20), (180, 90, 140))


def _r(x: float) -> float:
    """Round to millimetres: shorter files, and exact in YAML either way."""
    return round(float(x), 3)


class _Sampler:
    """The random stream of one layout and what has been placed so far."""

    def __init__(self, seed: int, index: int) -> None:
        self.rng = np.random.default_rng([seed, index, CITY_VERSION])
        self.static: list[list] = []
        self.actors: list[ActorSpec] = []
        self.lights: list[TrafficLightSpec] = []
        self.occupied: list[tuple[float, float]] = []  # vehicle positions, to keep gaps

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def add(self, kind: str, x, y, z, yaw, sx, sy, sz, variant: int | np.integer = 0) -> None:
        self.static.append([kind, _r(x), _r(y), _r(z), _r(yaw), _r(sx), _r(sy), _r(sz),
                            int(variant)])

    def actor(self, kind: str, blueprint: str, x, y, z, yaw, color=None, lights=()) -> None:
        name = f"{blueprint.split('.')[1]}-{len(self.actors)}"
        self.actors.append(ActorSpec(name, kind, blueprint, Transform(_r(x), _r(y), _r(z), 0.0,
                                                                      _r(yaw), 0.0),
                                     color, tuple(lights)))


@dataclass(frozen=True)
class _Street:
    """The main street (along +x) and the optional crossing street (along y at cross_x)."""

    lanes: int  # per direction
    lane_w: float
    side: float  # sidewalk width
    kerb: float  # kerb height
    cross: bool
    cx: float  # crossing centre, -1 without one
    cw: float  # crossing half width
    params: dict[str, Any] = field(default_factory=dict)  # the record in backend_params

    @property
    def half(self) -> float:
        return self.lanes * self.lane_w

    def in_crossing(self, x0: float, x1: float, margin: float = 0.0) -> bool:
        return self.cross and (x1 > self.cx - self.cw - self.side - margin
                               and x0 < self.cx + self.cw + self.side + margin)


def _street(s: _Sampler) -> _Street:
    lanes = int(s.rng.integers(1, 3))
    lane_w = s.u(3.0, 3.6)
    side = s.u(2.5, 5.0)
    kerb = s.u(0.12, 0.2)
    cross = s.p(0.6)
    cx = s.u(28, 70) if cross else -1.0
    cw = s.u(5.0, 8.0) if cross else 0.0
    params = {"lanes": lanes, "lane_width": _r(lane_w), "half_width": _r(lanes * lane_w),
              "sidewalk": _r(side), "kerb": _r(kerb), "cross_x": _r(cx),
              "cross_half_width": _r(cw), "markings": int(s.rng.integers(0, 3)),
              "asphalt": int(s.rng.integers(0, 3))}
    return _Street(lanes, lane_w, side, kerb, cross, cx, cw, params)


def _frontage(s: _Sampler, st: _Street, sgn: int, x: float, w: float) -> None:
    """One lot of width ``w`` at ``x``: a building, or a gap (wall, fence, hedge, grass)."""
    y0 = st.half + st.side
    if s.p(0.78):
        setback = s.u(0, 3) if s.p(0.3) else 0.0
        depth = s.u(10, 22)
        h = s.u(6, 14) if s.p(0.4) else s.u(14, 45)
        s.add("building", x + w / 2, sgn * (y0 + setback + depth / 2), 0, 0, w, depth, h,
              s.rng.integers(0, 64))
        if setback > 1.0:
            s.add("grass", x + w / 2, sgn * (y0 + setback / 2), 0, 0, w, setback, 0.05, 0)
        return
    gap = s.pick(("wall", "fence", "hedge", "grass"))
    depth = s.u(8, 18)
    s.add("grass" if gap != "wall" else "ground", x + w / 2, sgn * (y0 + depth / 2),
          0, 0, w, depth, 0.05, 0)
    if gap == "wall":
        s.add("wall", x + w / 2, sgn * (y0 + 0.3), 0, 0, w, 0.3, s.u(1.2, 3.5),
              s.rng.integers(0, 8))
    elif gap == "fence":
        s.add("fence", x + w / 2, sgn * (y0 + 0.2), 0, 0, w, 0.05, s.u(1.0, 2.2),
              s.rng.integers(0, 8))
    elif gap == "hedge":
        s.add("hedge", x + w / 2, sgn * (y0 + 0.7), 0, 0, w, 1.2, s.u(0.8, 1.8), 0)
    for _ in range(int(s.rng.integers(0, 3))):
        s.add("tree", x + s.u(1, w - 1), sgn * (y0 + s.u(2, depth - 1)), 0, 0, 0, 0,
              s.u(5, 11), s.rng.integers(0, 8))


def _buildings(s: _Sampler, st: _Street) -> None:
    """Rows of lots on both sides, then maybe a far building closing the street."""
    for sgn in (-1, 1):
        x = -40.0
        while x < 230:
            w = s.u(7, 26)
            if st.in_crossing(x, x + w):
                x = st.cx + st.cw + st.side + 0.5
                continue
            _frontage(s, st, sgn, x, w)
            x += w + (s.u(0.5, 4) if s.p(0.3) else 0.0)
    if s.p(0.6):
        s.add("building", 240, 0, 0, 0, 20, 2 * (st.half + st.side) + 40, s.u(15, 50),
              s.rng.integers(0, 64))


def _furniture(s: _Sampler, st: _Street) -> None:
    """Street lamps, trees, benches and the like on the sidewalks, then signs."""
    half, kerb = st.half, st.kerb
    for sgn in (-1, 1):
        x = s.u(-10, 10)
        spacing = s.u(18, 30)
        while x < 200:
            if not st.in_crossing(x, x, 1.0):
                s.add("lamp", x, sgn * (half + 0.5), kerb, 90 * sgn, 0.12, 0, s.u(6, 8),
                      s.rng.integers(0, 2))
            x += spacing
        if s.p(0.6):
            x = s.u(0, 20)
            while x < 160:
                if not st.in_crossing(x, x, 2.0):
                    s.add("tree", x, sgn * (half + st.side - 1.0), kerb, 0, 0, 0, s.u(5, 10),
                          s.rng.integers(0, 8))
                x += s.u(8, 18)
        for _ in range(int(s.rng.integers(0, 4))):
            x = s.u(3, 60)
            if not st.in_crossing(x, x, 1.0):
                s.add(s.pick(("bench", "bin", "hydrant", "box")), x,
                      sgn * (half + s.u(0.8, st.side - 0.6)), kerb, 90 * sgn, 0, 0, 0,
                      s.rng.integers(0, 4))
        if s.p(0.35):  # a strip of grass (terrain) between kerb and footpath
            s.add("grass", s.u(10, 40), sgn * (half + 1.2), kerb, 0, s.u(10, 30), 1.2, 0.04, 1)
    for _ in range(int(s.rng.integers(1, 4)) if s.p(0.85) else 0):
        x = s.u(6, 45)
        sgn = s.pick((-1, 1))
        if not st.in_crossing(x, x, 1.0):
            s.add("sign", x, sgn * (half + 0.35), kerb, 180, 0, 0, s.u(2.2, 3.0),
                  s.rng.integers(0, 6))


def _signals(s: _Sampler, st: _Street) -> None:
    """Traffic lights at the crossing (or at a pedestrian crossing), facing the camera."""
    if st.cross or s.p(0.3):
        lx = st.cx - st.cw - 1.0 if st.cross else s.u(20, 50)
        state = s.pick(("Red", "Yellow", "Green"))
        for sgn in (-1, 1):
            if sgn > 0 or s.p(0.7):
                s.lights.append(TrafficLightSpec(
                    state, location=(_r(lx), _r(sgn * (st.half + 0.6)), _r(st.kerb))))
        if not st.cross:
            s.add("crosswalk", lx - 2.5, 0, 0, 0, 3.0, 2 * st.half, 0, 0)
    if st.cross:
        s.add("crosswalk", st.cx - st.cw - 2.5, 0, 0, 0, 3.0, 2 * st.half, 0, 0)


def _vehicle(s: _Sampler, st: _Street, blueprint: str, x: float, y: float, yaw: float,
             length: float, color) -> None:
    """Place a vehicle unless it would overlap another or stand in the crossing."""
    free = all(abs(x - ox) > length / 2 + 3.5 or abs(y - oy) > 1.8 for ox, oy in s.occupied)
    if free and not (st.cross and abs(x - st.cx) < st.cw + 1):
        s.occupied.append((x, y))
        s.actor("vehicle", blueprint, x, y, 0.0, yaw, color,
                ("Position", "LowBeam") if yaw > 90 or s.p(0.5) else ("Position",))


def _vehicles(s: _Sampler, st: _Street) -> None:
    """Traffic in the lanes (ours head +x on the right, CARLA's y > 0; oncoming y < 0), a bus,
    a truck, two-wheelers near the kerb, parked cars."""
    lane_w, half = st.lane_w, st.half
    for lane in range(st.lanes):
        for sgn in (-1, 1):
            y = sgn * (lane + 0.5) * lane_w
            x = s.u(6, 20)
            while x < 110:
                if s.p(0.55):
                    yaw = 0.0 if sgn > 0 else 180.0
                    _vehicle(s, st, f"builtin.car.{s.pick(CAR_SHAPES)}", x, y + s.u(-0.3, 0.3),
                             yaw + s.u(-2, 2), 4.8, s.pick(CAR_COLORS))
                x += s.u(9, 22)
    if s.p(0.35):
        sgn = s.pick((-1, 1))
        _vehicle(s, st, "builtin.bus", s.u(14, 45), sgn * 0.5 * lane_w,
                 0.0 if sgn > 0 else 180.0, 12.0,
                 s.pick(((200, 40, 30), (240, 200, 40), (30, 90, 160), (230, 230, 230))))
    if s.p(0.25):
        sgn = s.pick((-1, 1))
        _vehicle(s, st, "builtin.truck", s.u(20, 60), sgn * (st.lanes - 0.5) * lane_w,
                 0.0 if sgn > 0 else 180.0, 8.0, s.pick(CAR_COLORS))
    for blueprint, prob in (("builtin.motorcycle", 0.45), ("builtin.bicycle", 0.45)):
        for _ in range(2):
            if s.p(prob):
                sgn = s.pick((-1, 1))
                edge = half - (0.9 if blueprint.endswith("bicycle") else 1.6)
                _vehicle(s, st, blueprint, s.u(7, 35), sgn * edge,
                         (0.0 if sgn > 0 else 180.0) + s.u(-5, 5), 2.0, s.pick(CAR_COLORS))
    for sgn in (-1, 1):  # parked cars along the kerb
        x = s.u(5, 30)
        while x < 90 and s.p(0.7):
            if not st.in_crossing(x, x, 3.0):
                _vehicle(s, st, f"builtin.car.{s.pick(CAR_SHAPES)}", x, sgn * (half - 1.1),
                         (0.0 if sgn > 0 else 180.0) + s.u(-3, 3), 4.8, s.pick(CAR_COLORS))
            x += s.u(6, 14)


def _pedestrians(s: _Sampler, st: _Street) -> None:
    """Pedestrians on the sidewalks, and sometimes a group on a crossing."""
    half = st.half
    for _ in range(int(s.rng.integers(2, 12))):
        sgn = s.pick((-1, 1))
        s.actor("walker", f"builtin.pedestrian.{int(s.rng.integers(0, 8))}", s.u(4, 70),
                sgn * (half + s.u(0.8, st.side - 0.4)), st.kerb, s.u(0, 360), s.pick(CLOTHES))
    if s.p(0.4):
        x0 = (st.cx - st.cw - 2.5) if st.cross else s.u(10, 40)
        for _ in range(int(s.rng.integers(1, 4))):
            s.actor("walker", f"builtin.pedestrian.{int(s.rng.integers(0, 8))}",
                    x0 + s.u(-1, 1), s.u(-half, half), 0.0, s.pick((90.0, 270.0)),
                    s.pick(CLOTHES))


def _camera(s: _Sampler, st: _Street) -> Transform:
    """On the road, in one of our lanes, looking along the street."""
    lane = int(s.rng.integers(0, st.lanes))
    return Transform(_r(s.u(-2, 2)), _r((lane + 0.5) * st.lane_w + s.u(-0.4, 0.4)),
                     _r(s.u(1.5, 2.5)), _r(s.u(-6, 2)), _r(s.u(-8, 8)), 0.0)


def sample_layout(seed: int, index: int, *, width: int = 1024, height: int = 512,
                  fov: float = 90.0, layout_id: str | None = None) -> Layout:
    """Sample one street scene.

    Args:
        seed: dataset seed; index: layout number. Together they fix every choice.
        width, height, fov: camera image size and horizontal field of view (degrees).
        layout_id: defaults to ``builtin-<seed>-<index:06d>``.
    """
    s = _Sampler(seed, index)
    st = _street(s)
    _buildings(s, st)
    _furniture(s, st)
    _signals(s, st)
    _vehicles(s, st)
    _pedestrians(s, st)
    cam = _camera(s, st)
    # Nothing right in front of the lens.
    actors = [a for a in s.actors if a.transform.x > 14 or abs(a.transform.y - cam.y) > 2.0]
    return Layout(
        id=layout_id or sampled_layout_id("builtin", seed, index),
        map="builtin-city",
        seed=int(seed),
        camera=CameraSpec(cam, width, height, float(fov)),
        actors=tuple(actors),
        traffic_lights=tuple(s.lights),
        backend="builtin",
        backend_params={"city_version": CITY_VERSION, "index": int(index), "road": st.params,
                        "static_columns": list(STATIC_COLUMNS), "static": s.static},
    )


# What a layout file may hold for the built-in renderer (checked before anything renders).
STATIC_KINDS = ("building", "wall", "fence", "hedge", "grass", "ground", "tree", "lamp", "sign",
                "bench", "bin", "hydrant", "box", "crosswalk")
VEHICLE_BLUEPRINTS = (*(f"builtin.car.{shape}" for shape in CAR_SHAPES), "builtin.bus",
                      "builtin.truck", "builtin.motorcycle", "builtin.bicycle")
WALKER_BLUEPRINTS = tuple(f"builtin.pedestrian.{i}" for i in range(8))
MAX_STATIC = 20_000
_EXTENT = 10_000.0  # metres: positions and sizes of the procedural city
_ROAD_FIELDS: dict[str, tuple[type, float, float]] = {
    "lanes": (int, 1, 4), "lane_width": (float, 1, 10), "half_width": (float, 0, 100),
    "sidewalk": (float, 0.5, 20), "kerb": (float, 0, 1), "cross_x": (float, -1, 1000),
    "cross_half_width": (float, 0, 50), "markings": (int, 0, 2), "asphalt": (int, 0, 2),
}


def check_layout(layout: Layout, source: str | Path) -> None:
    """Refuse a builtin layout the renderer could not draw; errors name ``source``."""
    top = FieldReader({"backend": {"params": layout.backend_params}}, source)
    params = top.sub("backend").sub("params")
    params.get("city_version", int, lo=CITY_VERSION, hi=CITY_VERSION)
    params.get("index", int, lo=0)
    road = params.sub("road")
    for key, (kind, lo, hi) in _ROAD_FIELDS.items():
        road.get(key, kind, lo=lo, hi=hi)
    road.finish()
    columns = params.list("static_columns")
    if columns != list(STATIC_COLUMNS):
        raise params.error("static_columns", "differs from this renderer's columns",
                           "Use " + ", ".join(STATIC_COLUMNS) + ".")
    for i, row in enumerate(params.list("static", most=MAX_STATIC)):
        if not isinstance(row, list) or len(row) != len(STATIC_COLUMNS):
            raise params.error(f"static[{i}]", f"should be a list of {len(STATIC_COLUMNS)} "
                               "values", "See static_columns.")
        cells = FieldReader(dict(zip(STATIC_COLUMNS, row, strict=True)), source,
                            f"backend.params.static[{i}]")
        cells.get("kind", str, choices=STATIC_KINDS)
        for key in STATIC_COLUMNS[1:-1]:
            cells.get(key, float, lo=-_EXTENT, hi=_EXTENT)
        cells.get("variant", int, lo=0, hi=1_000_000)
    params.finish()
    for i, actor in enumerate(layout.actors):
        allowed = {"vehicle": VEHICLE_BLUEPRINTS, "walker": WALKER_BLUEPRINTS}.get(actor.kind)
        if allowed is None:
            raise top.error(f"actors[{i}].kind", f"is {actor.kind!r}, which the built-in "
                            "renderer does not draw", "Use vehicle or walker actors.")
        if actor.blueprint not in allowed:
            raise top.error(f"actors[{i}].blueprint", f"is {shorten(repr(actor.blueprint))}, "
                            f"not a built-in {actor.kind}", "Valid blueprints are "
                            + ", ".join(allowed) + ".")
