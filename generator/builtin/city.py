"""Procedural street layouts for the built-in renderer, deterministic from (seed, index).

:func:`sample_layout` only chooses numbers and writes them into a :class:`Layout`: the
street and static props go to ``backend_params`` (see ``STATIC_COLUMNS``), vehicles,
two-wheelers with riders and pedestrians become actors, traffic lights traffic-light
entries. :mod:`.scene` turns that record into geometry, so a layout file alone re-renders
the same image.
"""

from __future__ import annotations

import numpy as np

from ..layout import ActorSpec, CameraSpec, Layout, TrafficLightSpec, Transform

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
    def __init__(self, seed: int, index: int) -> None:
        self.rng = np.random.default_rng([seed, index, CITY_VERSION])
        self.static: list[list] = []
        self.actors: list[ActorSpec] = []
        self.lights: list[TrafficLightSpec] = []

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def add(self, kind: str, x, y, z, yaw, sx, sy, sz, variant: int = 0) -> None:
        self.static.append([kind, _r(x), _r(y), _r(z), _r(yaw), _r(sx), _r(sy), _r(sz),
                            int(variant)])

    def actor(self, kind: str, blueprint: str, x, y, z, yaw, color=None, lights=()) -> None:
        name = f"{blueprint.split('.')[1]}-{len(self.actors)}"
        self.actors.append(ActorSpec(name, kind, blueprint, Transform(_r(x), _r(y), _r(z), 0.0,
                                                                      _r(yaw), 0.0),
                                     color, tuple(lights)))


def sample_layout(seed: int, index: int, *, width: int = 1024, height: int = 512,
                  fov: float = 90.0, layout_id: str | None = None) -> Layout:
    """Sample one street scene.

    Args:
        seed: dataset seed; index: layout number. Together they fix every choice.
        width, height, fov: camera image size and horizontal field of view (degrees).
        layout_id: defaults to ``builtin-<seed>-<index:06d>``.
    """
    s = _Sampler(seed, index)
    lanes = int(s.rng.integers(1, 3))  # lanes per direction
    lane_w = s.u(3.0, 3.6)
    half = lanes * lane_w
    side = s.u(2.5, 5.0)
    kerb = s.u(0.12, 0.2)
    cross = s.p(0.6)
    cx = s.u(28, 70) if cross else -1.0
    cw = s.u(5.0, 8.0) if cross else 0.0
    road = {"lanes": lanes, "lane_width": _r(lane_w), "half_width": _r(half), "sidewalk": _r(side),
            "kerb": _r(kerb), "cross_x": _r(cx), "cross_half_width": _r(cw),
            "markings": int(s.rng.integers(0, 3)), "asphalt": int(s.rng.integers(0, 3))}

    def in_crossing(x0: float, x1: float, margin: float = 0.0) -> bool:
        return cross and x1 > cx - cw - side - margin and x0 < cx + cw + side + margin

    # Building rows on both sides, with gaps of walls, fences, hedges and grass.
    for sgn in (-1, 1):
        x = -40.0
        while x < 230:
            w = s.u(7, 26)
            if in_crossing(x, x + w):
                x = cx + cw + side + 0.5
                continue
            y0 = half + side
            if s.p(0.78):
                setback = s.u(0, 3) if s.p(0.3) else 0.0
                depth = s.u(10, 22)
                h = s.u(6, 14) if s.p(0.4) else s.u(14, 45)
                s.add("building", x + w / 2, sgn * (y0 + setback + depth / 2), 0, 0, w, depth, h,
                      s.rng.integers(0, 64))
                if setback > 1.0:
                    s.add("grass", x + w / 2, sgn * (y0 + setback / 2), 0, 0, w, setback, 0.05,
                          0)
            else:
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
            x += w + (s.u(0.5, 4) if s.p(0.3) else 0.0)
        # Far buildings closing the street.
    if s.p(0.6):
        s.add("building", 240, 0, 0, 0, 20, 2 * (half + side) + 40, s.u(15, 50),
              s.rng.integers(0, 64))

    # Sidewalk furniture: street lamps, trees, signs, static props.
    kerb_y = half + 0.5
    for sgn in (-1, 1):
        x = s.u(-10, 10)
        spacing = s.u(18, 30)
        while x < 200:
            if not in_crossing(x, x, 1.0):
                s.add("lamp", x, sgn * kerb_y, kerb, 90 * sgn, 0.12, 0, s.u(6, 8),
                      s.rng.integers(0, 2))
            x += spacing
        if s.p(0.6):
            x = s.u(0, 20)
            while x < 160:
                if not in_crossing(x, x, 2.0):
                    s.add("tree", x, sgn * (half + side - 1.0), kerb, 0, 0, 0, s.u(5, 10),
                          s.rng.integers(0, 8))
                x += s.u(8, 18)
        for _ in range(int(s.rng.integers(0, 4))):
            x = s.u(3, 60)
            if not in_crossing(x, x, 1.0):
                s.add(s.pick(("bench", "bin", "hydrant", "box")), x,
                      sgn * (half + s.u(0.8, side - 0.6)), kerb, 90 * sgn, 0, 0, 0,
                      s.rng.integers(0, 4))
        if s.p(0.35):  # a strip of grass (terrain) between kerb and footpath
            s.add("grass", s.u(10, 40), sgn * (half + 1.2), kerb, 0, s.u(10, 30), 1.2, 0.04, 1)
    for _ in range(int(s.rng.integers(1, 4)) if s.p(0.85) else 0):
        x = s.u(6, 45)
        sgn = s.pick((-1, 1))
        if not in_crossing(x, x, 1.0):
            s.add("sign", x, sgn * (half + 0.35), kerb, 180, 0, 0, s.u(2.2, 3.0),
                  s.rng.integers(0, 6))

    # Traffic lights at the crossing (or at a pedestrian crossing), facing the camera.
    states = ("Red", "Yellow", "Green")
    if cross or s.p(0.3):
        lx = cx - cw - 1.0 if cross else s.u(20, 50)
        state = s.pick(states)
        for sgn in (-1, 1):
            if sgn > 0 or s.p(0.7):
                s.lights.append(TrafficLightSpec(state, location=(_r(lx), _r(sgn * (half + 0.6)),
                                                                  _r(kerb))))
        if not cross:
            s.add("crosswalk", lx - 2.5, 0, 0, 0, 3.0, 2 * half, 0, 0)
    if cross:
        s.add("crosswalk", cx - cw - 2.5, 0, 0, 0, 3.0, 2 * half, 0, 0)

    # Vehicles in the lanes: ours head +x on the right (CARLA: y > 0 is right), oncoming y < 0.
    occupied: list[tuple[float, float]] = []

    def free(x: float, y: float, length: float) -> bool:
        return all(abs(x - ox) > length / 2 + 3.5 or abs(y - oy) > 1.8 for ox, oy in occupied)

    def vehicle(blueprint: str, x: float, y: float, yaw: float, length: float, color) -> None:
        if free(x, y, length) and not (cross and abs(x - cx) < cw + 1):
            occupied.append((x, y))
            s.actor("vehicle", blueprint, x, y, 0.0, yaw, color,
                    ("Position", "LowBeam") if yaw > 90 or s.p(0.5) else ("Position",))

    for lane in range(lanes):
        for sgn in (-1, 1):
            y = sgn * (lane + 0.5) * lane_w
            x = s.u(6, 20)
            while x < 110:
                if s.p(0.55):
                    yaw = 0.0 if sgn > 0 else 180.0
                    vehicle(f"builtin.car.{s.pick(CAR_SHAPES)}", x, y + s.u(-0.3, 0.3),
                            yaw + s.u(-2, 2), 4.8, s.pick(CAR_COLORS))
                x += s.u(9, 22)
    if s.p(0.35):
        sgn = s.pick((-1, 1))
        vehicle("builtin.bus", s.u(14, 45), sgn * 0.5 * lane_w, 0.0 if sgn > 0 else 180.0, 12.0,
                s.pick(((200, 40, 30), (240, 200, 40), (30, 90, 160), (230, 230, 230))))
    if s.p(0.25):
        sgn = s.pick((-1, 1))
        vehicle("builtin.truck", s.u(20, 60), sgn * (lanes - 0.5) * lane_w,
                0.0 if sgn > 0 else 180.0, 8.0, s.pick(CAR_COLORS))
    for blueprint, prob in (("builtin.motorcycle", 0.45), ("builtin.bicycle", 0.45)):
        for _ in range(2):
            if s.p(prob):
                sgn = s.pick((-1, 1))
                edge = half - (0.9 if blueprint.endswith("bicycle") else 1.6)
                vehicle(blueprint, s.u(7, 35), sgn * edge, (0.0 if sgn > 0 else 180.0) +
                        s.u(-5, 5), 2.0, s.pick(CAR_COLORS))
    for sgn in (-1, 1):  # parked cars along the kerb
        x = s.u(5, 30)
        while x < 90 and s.p(0.7):
            if not in_crossing(x, x, 3.0):
                vehicle(f"builtin.car.{s.pick(CAR_SHAPES)}", x, sgn * (half - 1.1),
                        (0.0 if sgn > 0 else 180.0) + s.u(-3, 3), 4.8, s.pick(CAR_COLORS))
            x += s.u(6, 14)

    # Pedestrians on the sidewalks and on the crossings.
    for _ in range(int(s.rng.integers(2, 12))):
        sgn = s.pick((-1, 1))
        s.actor("walker", f"builtin.pedestrian.{int(s.rng.integers(0, 8))}", s.u(4, 70),
                sgn * (half + s.u(0.8, side - 0.4)), kerb, s.u(0, 360), s.pick(CLOTHES))
    if s.p(0.4):
        x0 = (cx - cw - 2.5) if cross else s.u(10, 40)
        for _ in range(int(s.rng.integers(1, 4))):
            s.actor("walker", f"builtin.pedestrian.{int(s.rng.integers(0, 8))}",
                    x0 + s.u(-1, 1), s.u(-half, half), 0.0, s.pick((90.0, 270.0)),
                    s.pick(CLOTHES))

    # Camera on the road, in one of our lanes, looking along the street.
    lane = int(s.rng.integers(0, lanes))
    cam = Transform(_r(s.u(-2, 2)), _r((lane + 0.5) * lane_w + s.u(-0.4, 0.4)),
                    _r(s.u(1.5, 2.5)), _r(s.u(-6, 2)), _r(s.u(-8, 8)), 0.0)
    actors = [a for a in s.actors if a.transform.x > 14 or abs(a.transform.y - cam.y) > 2.0]
    return Layout(
        id=layout_id or f"builtin-{seed}-{index:06d}",
        map="builtin-city",
        seed=int(seed),
        camera=CameraSpec(cam, width, height, float(fov)),
        actors=tuple(actors),
        traffic_lights=tuple(s.lights),
        backend="builtin",
        backend_params={"city_version": CITY_VERSION, "index": int(index), "road": road,
                        "static_columns": list(STATIC_COLUMNS), "static": s.static},
    )
