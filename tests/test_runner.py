"""The generate/render runner: raw format, resume after a crash, shards, workers, flags."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.errors import UserError
from carla4agt_data.raw import MARKER, complete_layouts, is_complete, read_tags
from generator.runner import (
    GenerateSettings,
    Shard,
    generate,
    parse_shard,
    parse_size,
    read_failures,
    render_layouts,
)
from generator.weather import resolve_weathers

from .conftest import SMALL

ALL = resolve_weathers("all")
SIZE_ARG = f"{SMALL[0]}x{SMALL[1]}"


def _complete(out: Path) -> dict[str, float]:
    """Complete layout folders -> modification time of their marker (hidden temporaries,
    which may hold a marker just before their rename, do not count)."""
    return {p.name: (p / MARKER).stat().st_mtime_ns for p in complete_layouts(out)}


def test_raw_folder_contents_and_marker(small_raw):
    folders = sorted(p for p in small_raw.iterdir() if p.is_dir())
    assert [p.name for p in folders] == [f"builtin-7-{i:06d}" for i in range(3)]
    expected = {"layout.yaml", MARKER} | {f"{a.name}.png" for a in ALL} | {
        f"{a.name}.tags.png" for a in ALL}
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == expected
        marker = json.loads((folder / MARKER).read_text())
        assert marker["backend"] == "builtin" and marker["is_carla"] is False
        assert marker["tag_table"] == "0.9.14+"
        assert marker["appearances"] == ["noon", "sunset", "night", "fog"]
        assert marker["size"] == list(SMALL)
        for name, entry in marker["files"].items():
            data = (folder / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert (small_raw / "run.yaml").is_file()


def test_resume_redoes_only_incomplete_layouts(tmp_path):
    generate(tmp_path, layouts=4, presets=ALL[:2], size=SMALL, progress=False)
    before = _complete(tmp_path)
    assert len(before) == 4
    # Simulate a crash: a half-written temporary folder and a marker-less folder.
    victim = tmp_path / "builtin-0-000002"
    (victim / MARKER).unlink()
    stale = tmp_path / ".builtin-0-000005.tmp-4242"
    stale.mkdir()
    (stale / "noon.png").write_bytes(b"half")
    summary = generate(tmp_path, layouts=6, presets=ALL[:2], size=SMALL, progress=False)
    assert (summary.rendered, summary.skipped) == (3, 3)
    after = _complete(tmp_path)
    assert set(after) == {f"builtin-0-{i:06d}" for i in range(6)}
    for name, mtime in before.items():
        if name != victim.name:
            assert after[name] == mtime, f"{name} was rendered twice"
    assert not stale.exists()


def test_sigkill_at_any_moment_then_resume(tmp_path):
    out = tmp_path / "raw"
    cmd = [sys.executable, "-m", "carla4agt", "generate", "--layouts", "12",
           "--weathers", "noon,night", "--size", SIZE_ARG, "--out", str(out), "--no-progress",
           "--backend", "builtin", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=tmp_path)  # its default pack writes ./dataset.h5
    deadline = time.time() + 60
    while time.time() < deadline and (not out.is_dir() or len(_complete(out)) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _complete(out)
    assert 3 <= len(first) < 12
    for entry in out.iterdir():  # nothing under a real name is incomplete
        if entry.is_dir() and not entry.name.startswith("."):
            assert is_complete(entry), entry
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=tmp_path)
    second = _complete(out)
    assert len(second) == 12
    assert all(second[name] == mtime for name, mtime in first.items())
    assert not [e for e in out.iterdir() if e.name.startswith(".")]


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    numbers = range(23)
    parts = [Shard(i, 4).take(numbers) for i in range(4)]
    assert sorted(n for part in parts for n in part) == list(numbers)
    for i in range(2):
        generate(tmp_path, layouts=5, presets=ALL[:1], size=SMALL, shard=Shard(i, 2),
                 progress=False)
    assert set(_complete(tmp_path)) == {f"builtin-0-{i:06d}" for i in range(5)}


def test_two_workers_render_the_same_bytes(tmp_path, small_raw):
    generate(tmp_path, layouts=3, presets=ALL, size=SMALL, seed=7, workers=2, progress=False)
    for i in range(3):
        name = f"builtin-7-{i:06d}"
        for f in ("noon.png", "fog.png", "night.tags.png", "layout.yaml"):
            assert (tmp_path / name / f).read_bytes() == (small_raw / name / f).read_bytes()


def test_render_replays_saved_layouts(tmp_path, small_raw):
    out = tmp_path / "replay"
    summary = render_layouts([small_raw], out, presets=resolve_weathers("fog,noon"),
                             progress=False)
    assert summary.rendered == 3
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        src = small_raw / folder.name
        assert (folder / "fog.png").read_bytes() == (src / "fog.png").read_bytes()
        assert (read_tags(folder / "noon.tags.png") == read_tags(src / "noon.tags.png")).all()


def test_a_different_run_is_not_mixed_in(tmp_path):
    generate(tmp_path, layouts=1, presets=ALL[:1], size=SMALL, progress=False)
    with pytest.raises(UserError, match="seed = 0.*asks for 1"):
        generate(tmp_path, layouts=1, presets=ALL[:1], size=SMALL, seed=1, progress=False)


@pytest.mark.parametrize("text, message", [
    ("0x5", "32 to 8192"), ("1000x700", "2:1"), ("big", "WIDTHxHEIGHT"),
    ("2x1", "32 to 8192"), ("9" * 5000 + "x1", "32 to 8192"),
])
def test_bad_sizes(text, message):
    with pytest.raises(UserError, match=message):
        parse_size(text)


@pytest.mark.parametrize("text", ["3/2", "2/2", "0/0", "a/b"])
def test_bad_shards(text):
    with pytest.raises(UserError, match="shard"):
        parse_shard(text)


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default pack writes ./dataset.h5: not into the checkout
    return partial(CliRunner().invoke, cli)


@pytest.mark.parametrize("args, flag, message", [
    (["--weathers", "noon,foggy"], "--weathers", "Unknown weather preset 'foggy'"),
    (["--size", "0x5"], "--size", "32 to 8192"),
    (["--shard", "3/2"], "--shard", "numbered from 0"),
    (["--layouts", "0"], "--layouts", "1<=x"),
    (["--backend", "unreal"], "--backend", "unreal"),
])
def test_generate_bad_flags_are_usage_errors(invoke, tmp_path, args, flag, message):
    base = {"--layouts": "2", "--out": str(tmp_path)}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    result = invoke(["generate", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2, result.output
    assert f"'{flag}'" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output


def test_generate_cli_reports_builtin(invoke, tmp_path):
    result = invoke(["generate", "--layouts", "1", "--weathers", "noon", "--size", SIZE_ARG,
                     "--out", str(tmp_path), "--no-progress", "--port", "1"])
    assert result.exit_code == 0, result.output
    assert "using the built-in procedural renderer (not CARLA)" in result.stderr
    assert "Rendered 1 layouts x 1 appearances (noon)" in result.stdout
    assert is_complete(tmp_path / "builtin-0-000000")


def test_backend_carla_without_server_is_a_clear_error(invoke, tmp_path):
    result = invoke(["generate", "--layouts", "1", "--backend", "carla", "--port", "1",
                     "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "No CARLA server answers at localhost:1" in result.stderr



@pytest.mark.parametrize("workers", ["1", "2"])
def test_no_egl_in_workers_is_one_clear_message(tmp_path, workers):
    # glvnd finds no EGL vendor: context creation fails in the render process(es)
    env = {**os.environ, "__EGL_VENDOR_LIBRARY_FILENAMES": str(tmp_path / "none.json")}
    proc = subprocess.run([sys.executable, "-m", "carla4agt", "generate", "--layouts",
                           "2", "--size", SIZE_ARG, "--out", str(tmp_path / "raw"), "--workers",
                           workers, "--backend", "builtin", "--no-progress", "--no-pack"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "libegl1 libgl1-mesa-dri" in proc.stderr and "Traceback" not in proc.stderr
    assert not complete_layouts(tmp_path / "raw")


def test_a_half_written_failure_record_does_not_stop_the_next_run(tmp_path):
    # a run killed while appending to failed.jsonl leaves half a line
    (tmp_path / "failed.jsonl").write_text(
        '{"layout_id": "builtin-0-000001", "differing_pixels": 3, "message": "x"}\n'
        '{"layout_id": "builtin-0-0000')
    summary = generate(tmp_path, layouts=2, presets=ALL[:1], size=SMALL, progress=False)
    assert (summary.rendered, summary.failed) == (2, 0)
    assert read_failures(tmp_path) == []


@pytest.mark.parametrize("options, message", [
    ({"seed": -1}, "--seed"), ({"fov": float("nan")}, "--fov"), ({"backend": "auto"}, "auto"),
    ({"size": (2, 1)}, "too small"), ({"size": (8192, 4096), "antialias": 3}, "at most 8192"),
    ({"layouts": 0}, "--layouts"), ({"workers": 0}, "--workers"), ({"presets": ()}, "No weather"),
])
def test_settings_records_refuse_bad_values(options, message):
    fields = {"layouts": 1, "presets": ALL[:1], **options}
    with pytest.raises(ValueError, match=message):  # a UserError is a ValueError
        GenerateSettings(**fields)
