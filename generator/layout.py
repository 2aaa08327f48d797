"""Layout schema v1: one scene (camera, actors, traffic lights) that every appearance replays.

A layout file is YAML; :func:`load_layout` validates it and names the file and field that
is wrong, :func:`save_layout` writes it atomically, and the two round-trip exactly.

Example:
    >>> layout = load_layout("raw/town10-000042/layout.yaml")
    >>> layout.camera.fov, len(layout.actors)
    (90.0, 31)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carla4agt_data.errors import MissingFileError, UserError
from carla4agt_data.fileio import dump_yaml, write_atomic
from carla4agt_data.names import check_layout_id as check_layout_id  # the one id rule

from .fields import FieldReader
from .weather import VEHICLE_LIGHT_FLAGS, import_carla
from .yamlin import parse_yaml_text, read_yaml_file

LAYOUT_VERSION = 1
BACKENDS = ("builtin", "carla")
ACTOR_KINDS = ("vehicle", "walker", "prop")
TRAFFIC_LIGHT_STATES = ("Red", "Yellow", "Green", "Off", "Unknown")

MIN_SIDE = 32  # pixels: smaller images hold too few pixels to check or train on
MAX_SIDE = 8192  # pixels of a rendered image (after supersampling), either side
MAX_COORDINATE = 1e6  # metres from the map origin (CARLA's largest maps span 10 km)
MAX_ANGLE = 3600.0  # degrees; CARLA keeps yaw 370 as 370, so angles are not normalised
MAX_ACTORS = 5000
MAX_TRAFFIC_LIGHTS = 1000
MAX_SEED = 2**63 - 1


def sampled_layout_id(backend: str, seed: int, index: int) -> str:
    """The id of layout number ``index`` sampled with ``seed``: ``builtin-7-000042``."""
    return f"{backend}-{seed}-{index:06d}"


@dataclass(frozen=True)
class Transform:
    """A pose in CARLA's world frame (left-handed, z up)."""

    x: float = 0.0  # metres
    y: float = 0.0
    z: float = 0.0
    pitch: float = 0.0  # degrees, not normalised (CARLA keeps yaw 370 as 370)
    yaw: float = 0.0
    roll: float = 0.0

    def to_carla(self) -> Any:
        carla = import_carla()
        return carla.Transform(
            carla.Location(x=self.x, y=self.y, z=self.z),
            carla.Rotation(pitch=self.pitch, yaw=self.yaw, roll=self.roll),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": {"x": float(self.x), "y": float(self.y), "z": float(self.z)},
            "rotation": {"pitch": float(self.pitch), "yaw": float(self.yaw),
                         "roll": float(self.roll)},
        }


@dataclass(frozen=True)
class CameraSpec:
    """The ego camera: pose and intrinsics, shared by the RGB and semantic cameras."""

    transform: Transform
    width: int = 1024  # pixels
    height: int = 512
    fov: float = 90.0  # horizontal field of view, degrees


@dataclass(frozen=True)
class ActorSpec:
    """One spawned actor with its settled pose."""

    name: str  # unique in the layout
    kind: str  # "vehicle", "walker" or "prop"
    blueprint: str  # e.g. "vehicle.tesla.model3"
    transform: Transform
    color: tuple[int, int, int] | None = None  # RGB of the blueprint's "color" attribute
    light_state: tuple[str, ...] = ()  # carla.VehicleLightState flags at sampling time


@dataclass(frozen=True)
class TrafficLightSpec:
    """A frozen traffic light, keyed by OpenDRIVE id or location (actor ids change)."""

    state: str  # "Red", "Yellow", "Green", "Off" or "Unknown"
    opendrive_id: str | None = None
    location: tuple[float, float, float] | None = None  # metres


@dataclass(frozen=True)
class Layout:
    """One scene layout, replayed under every weather preset."""

    id: str  # folder name in raw/ and the key in the dataset
    map: str  # CARLA map name ("Town10HD_Opt"), or the builtin city's name
    seed: int  # seed of the sampler that chose this layout
    camera: CameraSpec
    actors: tuple[ActorSpec, ...] = ()
    traffic_lights: tuple[TrafficLightSpec, ...] = ()
    backend: str = "builtin"  # the backend that can render it
    backend_params: dict[str, Any] = field(default_factory=dict)  # free-form, per backend

    def to_dict(self) -> dict[str, Any]:
        """The layout as plain data, in the file format."""
        cam = self.camera
        return {
            "version": LAYOUT_VERSION,
            "id": self.id,
            "map": self.map,
            "seed": self.seed,
            "camera": {**cam.transform.to_dict(), "width": cam.width, "height": cam.height,
                       "fov": float(cam.fov)},
            "actors": [_actor_to_dict(a) for a in self.actors],
            "traffic_lights": [_light_to_dict(t) for t in self.traffic_lights],
            "backend": {"name": self.backend, "params": self.backend_params},
        }

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


def _actor_to_dict(a: ActorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name, "kind": a.kind, "blueprint": a.blueprint,
                           **a.transform.to_dict()}
    if a.color is not None:
        out["color"] = list(a.color)
    if a.light_state:
        out["light_state"] = list(a.light_state)
    return out


def _light_to_dict(t: TrafficLightSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"state": t.state}
    if t.opendrive_id is not None:
        out["opendrive_id"] = t.opendrive_id
    if t.location is not None:
        out["location"] = [float(v) for v in t.location]
    return out


def _read_transform(r: FieldReader) -> Transform:
    loc, rot = r.sub("location"), r.sub("rotation")
    def at(key: str) -> float:
        return loc.get(key, float, lo=-MAX_COORDINATE, hi=MAX_COORDINATE)

    def angle(key: str) -> float:
        return rot.get(key, float, lo=-MAX_ANGLE, hi=MAX_ANGLE)

    transform = Transform(x=at("x"), y=at("y"), z=at("z"),
                          pitch=angle("pitch"), yaw=angle("yaw"), roll=angle("roll"))
    loc.finish()
    rot.finish()
    return transform


def _read_floats(r: FieldReader, key: str, n: int, kind: type = float,
                 bound: float = MAX_COORDINATE) -> tuple[Any, ...]:
    values = r.list(key)
    if len(values) != n:
        raise r.error(key, f"should have {n} values, got {len(values)}")
    holder = FieldReader({str(i): v for i, v in enumerate(values)}, r.file, r.path(key) or "")
    return tuple(holder.get(str(i), kind, lo=-bound, hi=bound) for i in range(n))


def _read_actor(r: FieldReader) -> ActorSpec:
    color = None
    if r.has("color"):
        color = _read_floats(r, "color", 3, int)
        if not all(0 <= c <= 255 for c in color):
            raise r.error("color", f"is {list(color)}", "Use three integers 0..255.")
    lights = tuple(r.list("light_state", [], most=len(VEHICLE_LIGHT_FLAGS)))
    for i, flag in enumerate(lights):
        if not isinstance(flag, str) or flag not in VEHICLE_LIGHT_FLAGS:
            raise r.error(f"light_state[{i}]", f"has the unknown flag {str(flag)[:40]!r}",
                          "Valid flags are " + ", ".join(VEHICLE_LIGHT_FLAGS) + ".")
    actor = ActorSpec(
        name=r.get("name", str),
        kind=r.get("kind", str, choices=ACTOR_KINDS),
        blueprint=r.get("blueprint", str),
        transform=_read_transform(r),
        color=color,
        light_state=lights,
    )
    r.finish()
    return actor


def _read_traffic_light(r: FieldReader) -> TrafficLightSpec:
    light = TrafficLightSpec(
        state=r.get("state", str, choices=TRAFFIC_LIGHT_STATES),
        opendrive_id=r.get("opendrive_id", str, None),
        location=_read_floats(r, "location", 3) if r.has("location") else None,
    )
    if light.opendrive_id is None and light.location is None:
        raise r.error(None, "has neither opendrive_id nor location",
                      "Key a traffic light by one of them; actor ids change between sessions.")
    r.finish()
    return light


def layout_from_dict(data: Any, source: str | Path) -> Layout:
    """Validate parsed layout data; errors name ``source`` and the field."""
    top = FieldReader(data, source)
    top.check_version(LAYOUT_VERSION, "layouts of schema", "re-sample the layout")
    layout_id = top.get("id", str)
    try:
        check_layout_id(layout_id)
    except UserError as exc:
        raise top.error("id", str(exc).rstrip(".")) from None

    cam = top.sub("camera")
    camera = CameraSpec(
        transform=_read_transform(cam),
        width=cam.get("width", int, lo=MIN_SIDE, hi=MAX_SIDE),
        height=cam.get("height", int, lo=MIN_SIDE, hi=MAX_SIDE),
        fov=cam.get("fov", float, lo=1, hi=179),
    )
    cam.finish()

    actors = tuple(_read_actor(r) for r in top.readers("actors", [], most=MAX_ACTORS))
    names: set[str] = set()
    for i, actor in enumerate(actors):
        if actor.name in names:
            raise top.error(f"actors[{i}].name", f"repeats the name {actor.name!r}",
                            "Actor names must be unique within a layout.")
        names.add(actor.name)

    backend = top.sub("backend")
    layout = Layout(
        id=layout_id,
        map=top.get("map", str),
        seed=top.get("seed", int, lo=0, hi=MAX_SEED),
        camera=camera,
        actors=actors,
        traffic_lights=tuple(_read_traffic_light(r) for r in
                             top.readers("traffic_lights", [], most=MAX_TRAFFIC_LIGHTS)),
        backend=backend.get("name", str, choices=BACKENDS),
        backend_params=backend.sub("params", {}).data,
    )
    backend.finish()
    top.finish()
    return layout


def parse_layout(text: str, source: str | Path = "<layout>") -> Layout:
    """A layout from YAML text."""
    return layout_from_dict(parse_yaml_text(text, source), source)


def load_layout(path: str | Path) -> Layout:
    """Read and validate a layout file."""
    return layout_from_dict(read_yaml_file(path), path)


def find_layout_files(source: Path) -> list[Path]:
    """Layout files at ``source``: the file itself, or the ``*.yaml`` files under a folder
    (a raw folder's ``<id>/layout.yaml`` included), without ``run.yaml`` and hidden
    (temporary) entries, sorted."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise MissingFileError(f"{source}: no such file or folder. Pass a layout file or a "
                               "folder of layout files (or a raw folder).")
    files = sorted(p for p in source.rglob("*.yaml")
                   if p.name != "run.yaml"
                   and not any(part.startswith(".") for part in p.relative_to(source).parts))
    if not files:
        raise UserError(f"{source}: no layout files found (looked for *.yaml files, and "
                        "<id>/layout.yaml in a raw folder).")
    return files


def save_layout(layout: Layout, path: str | Path) -> None:
    """Write a layout file atomically (a reader never sees half a file)."""
    write_atomic(path, layout.to_yaml())
