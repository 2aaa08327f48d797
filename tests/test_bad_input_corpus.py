"""A corpus of bad layouts, presets and option values, built by code (issue 13).

Every case must end in exit 1 (a user error) or 2 (a usage error), without a traceback,
naming the user's file or value, and writing nothing outside the output folder. Property
tests (hypothesis) mutate valid layout and preset files: each either loads or fails with
one clear UserError, never another exception.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carla4agt.cli import cli
from carla4agt_data.errors import UserError
from generator.backends import check_layout
from generator.builtin.city import sample_layout
from generator.layout import load_layout, parse_layout
from generator.weather import load_preset, parse_preset, presets_dir
from generator.yamlin import parse_yaml_text

# ---------------------------------------------------------------------------------------
# Valid starting points


@cache
def _layout_dict() -> dict[str, Any]:
    data = sample_layout(3, 1, width=64, height=32).to_dict()
    data["backend"]["params"]["static"] = data["backend"]["params"]["static"][:6]
    data["actors"] = data["actors"][:4]
    return data


def layout_dict() -> dict[str, Any]:
    return copy.deepcopy(_layout_dict())


def preset_dict() -> dict[str, Any]:
    return yaml.safe_load((presets_dir() / "noon.yaml").read_text())


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """An edit that sets a dotted path (``camera.width``, ``actors.0.kind``)."""

    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _drop(path: str) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[part]
        del node[last]
    return edit


BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\n"
        "id: *f\n")
HUGE_INT = "9" * 5000


@dataclass(frozen=True)
class FileCase:
    name: str
    text: Callable[[], str | bytes]  # the file's content
    commands: tuple[str, ...] = ("check", "render")  # which commands must refuse it


def _edited(*edits: Callable[[dict], None], base: Callable[[], dict] = layout_dict) -> Callable:
    def text() -> str:
        data = base()
        for edit in edits:
            edit(data)
        return yaml.safe_dump(data, sort_keys=False)
    return text


def _raw(layout_edit: Callable[[str], str]) -> Callable[[], str]:
    return lambda: layout_edit(yaml.safe_dump(layout_dict(), sort_keys=False))


LAYOUT_CASES = [
    FileCase("empty", lambda: ""),
    FileCase("not-yaml", lambda: "id: [1, 2\ncamera: {"),
    FileCase("a-list", lambda: "- 1\n- 2\n"),
    FileCase("binary", lambda: b"\xff\xfe\x00garbage\x80"),
    FileCase("version-99", _edited(_set("version", 99))),
    FileCase("version-text", _edited(_set("version", "one"))),
    FileCase("id-escapes", _edited(_set("id", "../../etc/x"))),
    FileCase("id-absolute", _edited(_set("id", "/abs/x"))),
    FileCase("id-newline", _edited(_set("id", "builtin-3-000001\n"))),
    FileCase("id-hidden", _edited(_set("id", ".hidden"))),
    FileCase("id-long", _edited(_set("id", "x" * 300))),
    FileCase("id-number", _edited(_set("id", 12))),
    FileCase("no-camera", _edited(_drop("camera"))),
    FileCase("width-zero", _edited(_set("camera.width", 0))),
    FileCase("width-text", _edited(_set("camera.width", "wide"))),
    FileCase("width-huge", _edited(_set("camera.width", 10**12))),
    FileCase("fov-500", _edited(_set("camera.fov", 500))),
    FileCase("x-nan", _edited(_set("camera.location.x", float("nan")))),
    FileCase("x-inf", _raw(lambda t: t.replace("camera:\n", "camera:\n  zz: 1\n", 1))),
    FileCase("x-1e400", _raw(lambda t: t.replace("x: ", "x: 1e400 #", 1))),
    FileCase("x-huge-digits", _raw(lambda t: t.replace("seed: 3", f"seed: {HUGE_INT}", 1))),
    FileCase("x-far", _edited(_set("camera.location.x", 1e30))),
    FileCase("yaw-huge", _edited(_set("camera.rotation.yaw", 1e12))),
    FileCase("seed-negative", _edited(_set("seed", -1))),
    FileCase("seed-2-100", _edited(_set("seed", 2**100))),
    FileCase("seed-bool", _edited(_set("seed", True))),
    FileCase("actors-text", _edited(_set("actors", "many"))),
    FileCase("actor-kind", _edited(_set("actors.0.kind", "spaceship"))),
    FileCase("actor-blueprint", _edited(_set("actors.0.blueprint", "builtin.car.rocket"))),
    FileCase("actor-blueprint-short", _edited(_set("actors.0.blueprint", "car"))),
    FileCase("actor-prop", _edited(_set("actors.0.kind", "prop"))),
    FileCase("actor-light", _edited(_set("actors.0.light_state", ["Disco"]))),
    FileCase("actor-light-list", _edited(_set("actors.0.light_state", [["Position"]]))),
    FileCase("actor-color", _edited(_set("actors.0.color", [1, 2, 300]))),
    FileCase("actor-color-2", _edited(_set("actors.0.color", [1, 2]))),
    FileCase("actor-unknown-field", _edited(_set("actors.0.colour", [1, 2, 3]))),
    FileCase("actor-name-repeat", _edited(_set("actors.1.name", "placeholder"),
                                          lambda d: d["actors"][1].update(
                                              name=d["actors"][0]["name"]))),
    FileCase("lanes-1e8", _edited(_set("backend.params.road.lanes", 100000000))),
    FileCase("lanes-text", _edited(_set("backend.params.road.lanes", "two"))),
    FileCase("road-missing", _edited(_drop("backend.params.road"))),
    FileCase("params-missing", _edited(_set("backend.params", {}))),
    FileCase("static-row-short", _edited(_set("backend.params.static.0", ["building", 1]))),
    FileCase("static-kind", _edited(_set("backend.params.static.0.0", "ufo"))),
    FileCase("static-size-huge", _edited(_set("backend.params.static.0.5", 1e300))),
    FileCase("static-variant-neg", _edited(_set("backend.params.static.0.8", -3))),
    FileCase("static-columns", _edited(_set("backend.params.static_columns", ["kind"]))),
    FileCase("city-version", _edited(_set("backend.params.city_version", 7))),
    FileCase("backend-name", _edited(_set("backend.name", "unreal"))),
    FileCase("light-state", _edited(lambda d: d.update(traffic_lights=[{"state": "Blue",
                                                                        "location": [0, 0, 0]}]))),
    FileCase("light-keyless", _edited(lambda d: d.update(traffic_lights=[{"state": "Red"}]))),
    FileCase("top-unknown", _edited(_set("colour", 1))),
    FileCase("alias-bomb", lambda: BOMB),
    FileCase("deep-nesting", lambda: "id: " + "[" * 2000 + "]" * 2000 + "\n"),
    FileCase("long-key", _edited(_set("k" * 100_000, 1))),
    FileCase("carla-layout", _edited(_set("backend.name", "carla")), ("render",)),
    FileCase("too-big", lambda: "id: x\n" + "#" * (17 * 1024 * 1024)),
]

PRESET_CASES = [
    FileCase("empty", lambda: ""),
    FileCase("not-yaml", lambda: "weather: {\n"),
    FileCase("version-2", _edited(_set("version", 2), base=preset_dict)),
    FileCase("wind", _edited(_set("weather.wind_intensity", 5.0), base=preset_dict)),
    FileCase("cloud-1e3", lambda: (presets_dir() / "noon.yaml").read_text().replace(
        "cloudiness: 5.0", "cloudiness: 1e3")),  # a number (YAML 1.2), out of range
    FileCase("name-space", _edited(_set("name", "Bad Name"), base=preset_dict)),
    FileCase("name-newline", _edited(_set("name", "noon2\n"), base=preset_dict)),
    FileCase("name-long", _edited(_set("name", "n" * 500), base=preset_dict)),
    FileCase("vehicle-light", _edited(_set("lights.vehicle_lights", ["Disco"]),
                                      base=preset_dict)),
    FileCase("no-weather", _edited(_drop("weather"), base=preset_dict)),
    FileCase("motion-blur", _edited(_set("camera.motion_blur_intensity", 1.0),
                                    base=preset_dict)),
    FileCase("gamma-zero", _edited(_set("camera.gamma", 0.0), base=preset_dict)),
    FileCase("exposure-auto", _edited(_set("camera.exposure_mode", "auto"), base=preset_dict)),
    FileCase("cloud-text", _edited(_set("weather.cloudiness", "high"), base=preset_dict)),
    FileCase("sun-digits", lambda: (presets_dir() / "noon.yaml").read_text().replace(
        "sun_altitude_angle: 45.0", f"sun_altitude_angle: {HUGE_INT}")),
    FileCase("alias-bomb", lambda: BOMB),
    FileCase("street-lights-text", _edited(_set("lights.street_lights", "on"),
                                           base=preset_dict)),
    FileCase("binary", lambda: b"\x00\x01\x02\xff"),
]

# ---------------------------------------------------------------------------------------
# Running a case


def _files(root: Path, skip: Path | None) -> set[tuple[str, int]]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in filenames:
            p = Path(dirpath, name)
            if skip is None or p != skip:
                found.add((str(p.relative_to(root)), p.stat().st_size))
    return found


def run_cli(tmp_path: Path, monkeypatch, args: list[str], out: Path | None = None):
    """Run the CLI from an empty working folder; check the invariants of a refusal."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    before = _files(tmp_path, out)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (1, 2), (args, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert len(result.output) < 3000, "a message must stay short"
    assert _files(tmp_path, out) == before, "something was written outside the output folder"
    return result


def _write(tmp_path: Path, case: FileCase, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"{case.name}{suffix}"
    content = case.text()
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _layout_runs():
    for case in LAYOUT_CASES:
        for command in case.commands:
            yield pytest.param(case, command, id=f"layout-{case.name}-{command}")


@pytest.mark.slow
@pytest.mark.parametrize("case, command", list(_layout_runs()))
def test_bad_layout_file(tmp_path, monkeypatch, case, command):
    path = _write(tmp_path, case)
    out = tmp_path / "out"
    if command == "check":
        args = ["layouts", "check", str(path)]
    else:
        args = ["render", "--layouts", str(path), "--out", str(out), "--backend", "builtin",
                "--weathers", "noon", "--no-progress", "--workers", "1"]
    result = run_cli(tmp_path, monkeypatch, args, out)
    assert result.exit_code == 1
    assert str(path) in result.stderr
    assert not out.exists() or not [p for p in out.iterdir() if p.is_dir()]


def _preset_runs():
    for case in PRESET_CASES:
        yield pytest.param(case, "weathers", id=f"preset-{case.name}-weathers")
        yield pytest.param(case, "generate", id=f"preset-{case.name}-generate")


@pytest.mark.slow
@pytest.mark.parametrize("case, command", list(_preset_runs()))
def test_bad_preset_file(tmp_path, monkeypatch, case, command):
    path = _write(tmp_path, case)
    out = tmp_path / "out"
    if command == "weathers":
        args = ["weathers", str(path)]
    else:
        args = ["generate", "--layouts", "1", "--weathers", f"noon,{path}", "--out", str(out),
                "--backend", "builtin", "--no-progress"]
    result = run_cli(tmp_path, monkeypatch, args, out)
    assert result.exit_code == (1 if command == "weathers" else 2)
    assert str(path) in result.stderr
    assert not out.exists()


OPTION_CASES = [
    (["--size", "2x1"], "2x1"),
    (["--size", "16x8"], "16x8"),
    (["--size", "8192x4096", "--antialias", "3"], "8192x4096"),
    (["--size", "4096x2048", "--antialias", "4"], "4096x2048"),
    (["--size", "9" * 5000 + "x1"], "--size"),
    (["--size", "1000x700"], "1000x700"),
    (["--size", "big"], "big"),
    (["--size", "١٠٢٤x512"], "--size"),
    (["--layouts", "0"], "--layouts"),
    (["--layouts", "-5"], "--layouts"),
    (["--layouts", "1" + "0" * 30], "--layouts"),
    (["--layouts", "many"], "--layouts"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "1" + "0" * 40], "--seed"),
    (["--shard", "5/2"], "5/2"),
    (["--shard", "x"], "'x'"),
    (["--shard", "1/" + "9" * 50], "--shard"),
    (["--split", "0.5,0.5"], "--split"),
    (["--split", "abc"], "--split"),
    (["--port", "0"], "--port"),
    (["--port", "70000"], "--port"),
    (["--workers", "0"], "--workers"),
    (["--workers", "100000"], "--workers"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--fov", "0"], "--fov"),
    (["--fov", "nan"], "--fov"),
    (["--antialias", "5"], "--antialias"),
    (["--server", "localhost"], "localhost"),
    (["--server", "host:99999"], "host:99999"),
    (["--server", "host:²"], "--server"),
    (["--weathers", ""], "--weathers"),
    (["--weathers", "nope"], "nope"),
    (["--weathers", "noon,noon"], "noon"),
    (["--weathers", "/dev/zero"], "/dev/zero"),
    (["--weathers", "no/such.yaml"], "no/such.yaml"),
    (["--backend", "unreal"], "unreal"),
]


@pytest.mark.slow
@pytest.mark.parametrize("extra, named", OPTION_CASES,
                         ids=[f"option-{i}" for i in range(len(OPTION_CASES))])
def test_bad_generate_option(tmp_path, monkeypatch, extra, named):
    out = tmp_path / "out"
    args = {"--layouts": "1", "--out": str(out), "--backend": "builtin", "--weathers": "noon"}
    for i in range(0, len(extra), 2):
        args[extra[i]] = extra[i + 1]
    result = run_cli(tmp_path, monkeypatch,
                     ["generate", *[x for kv in args.items() for x in kv], "--no-progress"], out)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert not out.exists()


def test_other_commands_refuse_bad_paths(tmp_path, monkeypatch):
    result = run_cli(tmp_path, monkeypatch, ["weathers", "/dev/zero"])
    assert "/dev/zero" in result.stderr and "not a regular file" in result.stderr
    result = run_cli(tmp_path, monkeypatch, ["render", "--layouts", "/dev/null", "--out",
                                             str(tmp_path / "out"), "--backend", "builtin"],
                     tmp_path / "out")
    assert "/dev/null" in result.stderr


def test_corpus_size():
    """The README quotes these counts."""
    runs = len(list(_layout_runs())) + len(list(_preset_runs())) + len(OPTION_CASES)
    assert runs >= 150, runs


# ---------------------------------------------------------------------------------------
# Things that were wrong before (issue 13, 15 and 18)


def test_check_accepts_a_raw_folder_with_run_yaml(tmp_path, small_raw, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["layouts", "check", str(small_raw)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 3 and "run.yaml" not in result.output


def test_yaml_12_numbers(tmp_path):
    assert parse_yaml_text("a: 1e3\nb: -2.5E-2\nc: .5e1\nd: 1.0\ne: 1_000\n", "x") == {
        "a": 1000.0, "b": -0.025, "c": 5.0, "d": 1.0, "e": 1000}
    path = tmp_path / "p.yaml"
    path.write_text((presets_dir() / "noon.yaml").read_text().replace("fog_distance: 0.75",
                                                                       "fog_distance: 75e-2"))
    assert load_preset(path).weather.fog_distance == 0.75


def test_layouts_that_check_ok_render(tmp_path):
    """Whatever `layouts check` accepts for builtin, the scene builder can build."""
    from generator.builtin.scene import build_scene

    for index in range(20):
        layout = sample_layout(11, index, width=64, height=32)
        check_layout(layout, "x", "builtin")
        assert build_scene(layout).vertices.size > 0


# ---------------------------------------------------------------------------------------
# Property tests: any mutated file loads, or fails with one UserError

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.lists(st.integers(), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=3),
    st.sampled_from(["builtin.car.sedan", "builtin.ufo", "Red", "Position", "../x", "noon\n"]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            found += _paths(v, (*prefix, i))
    return found


def _mutate(data: dict, draw) -> dict:
    paths = _paths(data)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        node = data
        for part in path[:-1]:
            node = node[part]
        if draw(st.booleans()) and isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(_VALUES)
        paths = _paths(data)
    return data


def _loads_or_user_error(load: Callable[[], Any]) -> None:
    try:
        load()
    except UserError as exc:
        assert str(exc) and len(str(exc)) < 2000


_PROPERTY = settings(max_examples=50, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@_PROPERTY
@given(st.data())
def test_any_mutated_layout_loads_or_is_one_user_error(data):
    mutated = _mutate(layout_dict(), data.draw)
    text = yaml.safe_dump(mutated)

    def load() -> None:
        layout = parse_layout(text, "mutated.yaml")
        check_layout(layout, "mutated.yaml", layout.backend)

    _loads_or_user_error(load)


@pytest.mark.slow
@_PROPERTY
@given(st.data())
def test_any_mutated_preset_loads_or_is_one_user_error(data):
    mutated = _mutate(preset_dict(), data.draw)
    _loads_or_user_error(lambda: parse_preset(mutated, "mutated.yaml", "mutated"))


@pytest.mark.slow
@_PROPERTY
@given(st.binary(max_size=40), st.integers(0, 4000))
def test_any_corrupted_layout_text_loads_or_is_one_user_error(tmp_path_factory, junk, at):
    text = yaml.safe_dump(layout_dict()).encode()
    at = min(at, len(text))
    path = tmp_path_factory.mktemp("c") / "corrupt.yaml"
    path.write_bytes(text[:at] + junk + text[at:])

    def load() -> None:
        layout = load_layout(path)
        check_layout(layout, path, layout.backend)

    _loads_or_user_error(load)


@pytest.mark.parametrize("task, count", [("²", "4"), ("1", "9" * 5000), ("-1", "4"), ("4", "4")])
def test_bad_slurm_array_variables_are_one_message(tmp_path, monkeypatch, task, count):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", count)
    out = tmp_path / "out"
    result = run_cli(tmp_path, monkeypatch, ["generate", "--layouts", "1", "--out", str(out),
                                             "--backend", "builtin", "--no-progress"], out)
    assert result.exit_code == 1 and "SLURM_ARRAY_TASK_ID" in result.stderr


@pytest.mark.slow
@_PROPERTY
@given(st.binary(max_size=40), st.integers(0, 1500))
def test_any_corrupted_preset_text_loads_or_is_one_user_error(tmp_path_factory, junk, at):
    text = (presets_dir() / "fog.yaml").read_bytes()
    at = min(at, len(text))
    path = tmp_path_factory.mktemp("p") / "corrupt.yaml"
    path.write_bytes(text[:at] + junk + text[at:])
    _loads_or_user_error(lambda: load_preset(path))
