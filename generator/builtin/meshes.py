"""Triangle meshes of simple primitives, collected into one interleaved vertex array.

Each vertex carries position (3), normal (3), albedo (3) and (material, tag, seed) (3):
12 float32 values. Tags are CARLA 0.9.14+ semantic tag ids; small integers are exact in
float32, and the label shader rounds them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLOATS_PER_VERTEX = 12


def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    """36 vertices of the cube [-0.5, 0.5]^2 x [0, 1] (base on z=0) with face normals."""
    faces = [  # normal, four corners counter-clockwise seen from outside
        ((1, 0, 0), [(0.5, -0.5, 0), (0.5, 0.5, 0), (0.5, 0.5, 1), (0.5, -0.5, 1)]),
        ((-1, 0, 0), [(-0.5, 0.5, 0), (-0.5, -0.5, 0), (-0.5, -0.5, 1), (-0.5, 0.5, 1)]),
        ((0, 1, 0), [(0.5, 0.5, 0), (-0.5, 0.5, 0), (-0.5, 0.5, 1), (0.5, 0.5, 1)]),
        ((0, -1, 0), [(-0.5, -0.5, 0), (0.5, -0.5, 0), (0.5, -0.5, 1), (-0.5, -0.5, 1)]),
        ((0, 0, 1), [(-0.5, -0.5, 1), (0.5, -0.5, 1), (0.5, 0.5, 1), (-0.5, 0.5, 1)]),
        ((0, 0, -1), [(-0.5, 0.5, 0), (0.5, 0.5, 0), (0.5, -0.5, 0), (-0.5, -0.5, 0)]),
    ]
    pos, nrm = [], []
    for normal, c in faces:
        for i in (0, 1, 2, 0, 2, 3):
            pos.append(c[i])
            nrm.append(normal)
    return np.array(pos, np.float32), np.array(nrm, np.float32)


def _unit_cylinder(segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder of radius 1 from z=0 to z=1 with smooth sides and flat caps."""
    a = np.linspace(0, 2 * np.pi, segments + 1)
    c, s = np.cos(a), np.sin(a)
    pos, nrm = [], []
    for i in range(segments):
        p0, p1 = (c[i], s[i]), (c[i + 1], s[i + 1])
        quad = [(p0, 0), (p1, 0), (p1, 1), (p0, 0), (p1, 1), (p0, 1)]
        for (x, y), z in quad:
            pos.append((x, y, z))
            nrm.append((x, y, 0))
        for z, nz, order in ((1, 1, (p0, p1)), (0, -1, (p1, p0))):
            for (x, y) in ((0, 0), *order):
                pos.append((x, y, z))
                nrm.append((0, 0, nz))
    return np.array(pos, np.float32), np.array(nrm, np.float32)


def _unit_sphere(rings: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Sphere of radius 1 centred on the origin."""
    th = np.linspace(0, np.pi, rings + 1)
    ph = np.linspace(0, 2 * np.pi, segments + 1)

    def point(i: int, j: int) -> tuple[float, float, float]:
        return (np.sin(th[i]) * np.cos(ph[j]), np.sin(th[i]) * np.sin(ph[j]), np.cos(th[i]))

    pos = []
    for i in range(rings):
        for j in range(segments):
            a, b, c, d = point(i, j), point(i + 1, j), point(i + 1, j + 1), point(i, j + 1)
            pos += [a, b, c, a, c, d]
    p = np.array(pos, np.float32)
    return p, p.copy()


_BOX = _unit_box()
_CYL = _unit_cylinder(10)
_SPHERE = _unit_sphere(6, 10)


def _yaw_matrix(yaw_deg: float) -> np.ndarray:
    t = np.radians(yaw_deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)


@dataclass
class MeshBuilder:
    """Accumulates primitives; :meth:`vertices` returns one ``float32 [N, 12]`` array."""

    _chunks: list[np.ndarray] = field(default_factory=list)

    def _add(self, unit: tuple[np.ndarray, np.ndarray], scale, yaw: float, offset, color,
             material: int, tag: int, seed: float) -> None:
        pos, nrm = unit
        rot = _yaw_matrix(yaw)
        scale = np.asarray(scale, np.float32)
        p = (pos * scale) @ rot.T + np.asarray(offset, np.float32)
        n = (nrm / np.where(scale == 0, 1, scale)) @ rot.T  # normals transform by inverse scale
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-8)
        out = np.empty((len(p), FLOATS_PER_VERTEX), np.float32)
        out[:, 0:3] = p
        out[:, 3:6] = n
        out[:, 6:9] = np.asarray(color, np.float32)
        out[:, 9:12] = (material, tag, seed)
        self._chunks.append(out)

    def box(self, center, size, yaw: float, color, material: int, tag: int, seed: float = 0.0,
            local=(0.0, 0.0, 0.0)) -> None:
        """Box with its base centred at ``center`` (x, y, z of the bottom face), rotated by
        ``yaw`` degrees; ``local`` offsets it in the box's own frame before the rotation."""
        rot = _yaw_matrix(yaw)
        offset = np.asarray(center, np.float32) + rot @ np.asarray(local, np.float32)
        self._add(_BOX, size, yaw, offset, color, material, tag, seed)

    def cylinder(self, base, radius: float, height: float, color, material: int, tag: int,
                 seed: float = 0.0) -> None:
        self._add(_CYL, (radius, radius, height), 0.0, base, color, material, tag, seed)

    def sphere(self, center, radii, color, material: int, tag: int, seed: float = 0.0,
               yaw: float = 0.0) -> None:
        self._add(_SPHERE, radii, yaw, center, color, material, tag, seed)

    def vertices(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros((0, FLOATS_PER_VERTEX), np.float32)
        return np.concatenate(self._chunks)
