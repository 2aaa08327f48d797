"""Issue 13 defects of generate/render: locks, run settings, auto backend, interrupts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from functools import partial

import pytest
import yaml
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt.interrupts import message_for
from carla4agt_data.errors import UserError
from carla4agt_data.raw import MARKER
from generator.backends import choose_backend
from generator.runlock import lock_path, run_lock
from generator.runner import generate, render_layouts
from generator.weather import resolve_weathers

from .conftest import SMALL

NOON = resolve_weathers("noon")


@pytest.fixture
def invoke():
    return partial(CliRunner().invoke, cli)


# --- 6: one run per output folder and shard ------------------------------------------------

def test_a_second_run_on_the_same_shard_is_refused_and_names_the_holder(tmp_path):
    with run_lock(tmp_path, 0, 1):
        with pytest.raises(UserError) as info:
            generate(tmp_path, layouts=1, presets=NOON, size=SMALL, progress=False)
        message = str(info.value)
        assert f"process {os.getpid()}" in message and socket.gethostname() in message
        assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing rendered
    with run_lock(tmp_path, 0, 2):
        with run_lock(tmp_path, 1, 2):  # another shard of one numbering may share it
            pass
        with pytest.raises(UserError, match="overlaps"), run_lock(tmp_path, 0, 1):
            pass  # 0/1 covers 0/2's layouts
    assert not list(tmp_path.glob(".lock-*"))  # released and removed


def test_the_lock_is_held_by_a_real_flock(tmp_path):
    # another process (not this one) holds the lock file: as a second generate would see it
    path = lock_path(tmp_path, 0, 1)
    path.write_text(json.dumps({"pid": 4242, "host": "elsewhere", "command": "generate x"}))
    code = ("import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match="process 4242 on elsewhere"):
            generate(tmp_path, layouts=1, presets=NOON, size=SMALL, progress=False)
    finally:
        holder.stdin.close()
        holder.wait()


# --- 10: antialias is a run setting; render keeps one size; edited layouts are redone ------

def test_antialias_is_part_of_the_run_settings(tmp_path):
    generate(tmp_path, layouts=1, presets=NOON, size=SMALL, progress=False)
    assert yaml.safe_load((tmp_path / "run.yaml").read_text())["antialias"] == 1
    with pytest.raises(UserError, match="antialias = 1.*asks for 2"):
        generate(tmp_path, layouts=2, presets=NOON, size=SMALL, antialias=2, progress=False)


def test_render_refuses_another_size_than_the_run(tmp_path, small_raw):
    out = tmp_path / "out"
    generate(out, layouts=1, presets=NOON, size=(128, 64), progress=False)
    with pytest.raises(UserError, match="size"):
        render_layouts([small_raw], out, presets=NOON, progress=False)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["builtin-0-000000"]


def test_an_edited_layout_with_the_same_id_is_rendered_again(tmp_path, small_raw):
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    source = layouts / "a.yaml"
    source.write_text((small_raw / "builtin-7-000000" / "layout.yaml").read_text())
    out = tmp_path / "out"
    assert render_layouts([layouts], out, presets=NOON, progress=False).rendered == 1
    first = (out / "builtin-7-000000" / MARKER).read_text()
    assert render_layouts([layouts], out, presets=NOON, progress=False).skipped == 1
    data = yaml.safe_load(source.read_text())
    data["camera"]["rotation"]["yaw"] += 10.0  # same id, another view
    source.write_text(yaml.safe_dump(data))
    again = render_layouts([layouts], out, presets=NOON, progress=False)
    assert (again.rendered, again.skipped) == (1, 0)
    assert (out / "builtin-7-000000" / MARKER).read_text() != first
    assert (out / "builtin-7-000000" / "layout.yaml").read_text() != (
        small_raw / "builtin-7-000000" / "layout.yaml").read_text()


# --- 12: auto means a CARLA server answered the version call -------------------------------

def test_auto_does_not_take_any_listener_for_carla():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        server.settimeout(0.2)
        conns = []
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                pass
        for c in conns:
            c.close()

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    try:
        chosen, reason = choose_backend("auto", host="127.0.0.1", port=port, timeout=0.5)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert chosen == "builtin", reason  # so run.yaml never says carla for it
    assert "No CARLA server answers at 127.0.0.1" in reason


# --- 17: each command says truthfully what is kept -----------------------------------------

@pytest.mark.parametrize("command, words", [
    ("generate", "Finished layouts are kept"), ("render", "Finished layouts are kept"),
    ("pack", "nothing was packed"), ("merge", "nothing was written"),
    ("export", "exported so far are complete"), ("train", "--resume"),
    ("verify", "Nothing was written"), ("weathers", "nothing was changed"),
])
def test_every_command_declares_its_interrupt_message(command, words):
    message = message_for(cli.commands[command])
    assert words in message
    if command not in ("generate", "render"):
        assert "resume" not in message.replace("--resume", "")


def test_sigterm_stops_with_the_commands_own_message(tmp_path):
    code = """
import os, signal, sys
from carla4agt.cli import cli
import generator.runner as runner
def stopped(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)
    signal.sigtimedwait([], 0) if hasattr(signal, 'sigtimedwait') else None
    for _ in range(10**7):
        pass
runner.generate = stopped
import carla4agt.generate as g
g.generate = stopped
cli(["generate", "--layouts", "1", "--out", sys.argv[1], "--backend", "builtin"])
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "raw")],
                          capture_output=True, text=True)
    assert proc.returncode == 143, proc.stderr
    assert "Finished layouts are kept" in proc.stderr and "Traceback" not in proc.stderr
