"""Kill points for pack, merge and export: SIGKILL, SIGTERM and SIGINT at known moments
(the command pauses at a chosen call on a FIFO, see tests/killpoint.py), then every output
is read back completely. No sleeps: each wait is for a file, a FIFO or /proc state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carla4agt_data.dataset import open_dataset
from carla4agt_data.export import export
from carla4agt_data.merge import merge
from carla4agt_data.pack import pack
from carla4agt_data.raw import Capture, RawFolder, write_layout_folder

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
GUARD = 60  # seconds: only a hung command ever waits this long (then the test fails)


def _wait(condition, what: str) -> None:
    end = time.monotonic() + GUARD
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kp") / "raw"
    rng = np.random.default_rng(1)
    for i in range(6):
        tags = rng.integers(0, 25, (32, 64), dtype=np.uint8)
        caps = [Capture(a, rng.integers(0, 255, (32, 64, 3), dtype=np.uint8), tags)
                for a in ("noon", "fog")]
        write_layout_folder(out, f"lay-{i}", f"id: lay-{i}\n", caps, backend="builtin",
                            versions={}, tag_table="0.9.14+", timings={})
    return out


class _Paused:
    """A carla4agt command started with a kill point; ``wait()`` returns when it paused."""

    def __init__(self, tmp: Path, target: str, k: int, args: list) -> None:
        self.marker, self.fifo = tmp / "paused.marker", tmp / "pause.fifo"
        os.mkfifo(self.fifo)
        env = {**os.environ, "CARLA4AGT_KILLPOINT": f"{target}|{k}|{self.marker}|{self.fifo}",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.killpoint",
                                      *[str(a) for a in args]], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> None:
        _wait(lambda: self.marker.exists() or self.proc.poll() is not None, "the kill point")
        assert self.marker.exists(), self.proc.communicate()

    def release(self) -> None:
        """Let the paused call go on (after a signal that should stop it at the next check)."""
        def opened() -> bool:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: the reader has not opened yet
                return self.proc.poll() is not None
            os.close(fd)
            return True
        _wait(opened, "the paused reader")

    def finish(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=GUARD)
        return self.proc.returncode, err


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie no one has reaped yet is dead


def _signal(paused: _Paused, sig: int) -> tuple[int, str]:
    paused.wait()
    paused.proc.send_signal(sig)
    if sig != signal.SIGKILL:
        paused.release()
    return paused.finish()


def _hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


def _same_as_raw(path: Path, raw: Path) -> None:
    ds, folder = open_dataset(path), RawFolder(raw)
    assert sorted(str(i) for i in ds.layout_ids) == list(folder.ids)
    for i, lid in enumerate(ds.layout_ids):
        for a in ds.appearances:
            np.testing.assert_array_equal(ds.read_rgb(i, a), folder.read_rgb(str(lid), a))
        np.testing.assert_array_equal(ds.read_label(i), folder.read_label(str(lid)))
    ds.close()


# --- pack -------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, k", [(signal.SIGKILL, 1), (signal.SIGKILL, 4),
                                    (signal.SIGTERM, 3), (signal.SIGINT, 3)],
                         ids=["kill-first", "kill-4", "term-3", "int-3"])
def test_pack_kill_points(tmp_path, raw, sig, k):
    out = tmp_path / "out"
    paused = _Paused(tmp_path, "carla4agt_data.pack:split_of", k,
                     ["pack", raw, "-o", out / "d.h5", "--no-progress", "--pack-workers", "2"])
    paused.wait()
    workers = _children(paused.proc.pid)
    assert workers  # the decoding pool is running
    code, err = _signal(paused, sig)
    assert not (out / "d.h5").exists()
    _wait(lambda: all(_gone(w) for w in workers), "the pack workers to die with pack")
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + sig, err
        assert "nothing was packed" in err and "Traceback" not in err
        assert not _hidden(out)  # its temporary went with it
    pack(raw, out / "d.h5", workers=1, progress=False)  # a stale temporary is swept
    assert not _hidden(out)
    _same_as_raw(out / "d.h5", raw)


# --- merge ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shards(raw, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("shards")
    ids = list(RawFolder(raw).ids)
    a = pack(raw, folder / "a.h5", layout_ids=ids[:3], workers=1, progress=False).path
    b = pack(raw, folder / "b.h5", layout_ids=ids[3:], workers=1, progress=False).path
    return a, b


@pytest.mark.parametrize("virtual, target, sig", [
    (False, "_chunks_copyable", signal.SIGKILL),
    (False, "_chunks_copyable", signal.SIGTERM),
    (False, "_chunks_copyable", signal.SIGINT),
    (True, "write_attributes", signal.SIGKILL),
    (True, "write_attributes", signal.SIGTERM),
], ids=["copy-kill", "copy-term", "copy-int", "virtual-kill", "virtual-term"])
def test_merge_kill_points(tmp_path, raw, shards, virtual, target, sig):
    a, b = shards
    out = a.parent / f"m-{tmp_path.name}.h5"  # beside the shards (virtual reads them there)
    k = 3 if target == "_chunks_copyable" else 1  # 3: the second shard's first dataset
    paused = _Paused(tmp_path, f"carla4agt_data.merge:{target}", k,
                     ["merge", a, b, "-o", out, "--no-progress",
                      *(["--virtual"] if virtual else [])])
    before = {p.name: p.stat().st_mtime_ns for p in (a, b)}
    code, err = _signal(paused, sig)
    assert not out.exists()
    if sig != signal.SIGKILL:
        assert code == 128 + sig and "nothing was written" in err and "Traceback" not in err
        assert not [p for p in a.parent.iterdir() if p.name.startswith(f".{out.name}")]
    assert {p.name: p.stat().st_mtime_ns for p in (a, b)} == before  # shards untouched
    merge([a, b], out, virtual=virtual, progress=False)
    assert not [p for p in a.parent.iterdir() if p.name.startswith(f".{out.name}")]
    _same_as_raw(out, raw)


# --- export -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(raw, tmp_path_factory) -> Path:
    return pack(raw, tmp_path_factory.mktemp("ds") / "d.h5", split_ratios=(1.0, 0.0, 0.0),
                workers=1, progress=False).path


@pytest.mark.parametrize("fmt, sig", [("gta", signal.SIGKILL), ("gta", signal.SIGTERM),
                                      ("cityscapes", signal.SIGINT)],
                         ids=["gta-kill", "gta-term", "cityscapes-int"])
def test_export_kill_points(tmp_path, dataset, fmt, sig):
    out = tmp_path / "out"
    paused = _Paused(tmp_path, "carla4agt_data.dataset:CarlaDataset.read_label", 3,
                     ["export", fmt, dataset, out, "--no-progress"])
    code, err = _signal(paused, sig)
    written = [p for p in out.rglob("*.png") if not any(s.startswith(".") for s in p.parts)]
    assert 0 < len(written) < (12 if fmt == "gta" else 18) * 2
    for p in written:  # whatever a reader lists is a complete image
        with Image.open(p) as im:
            im.load()
    if sig != signal.SIGKILL:
        assert code == 128 + sig and "exported so far are complete" in err
        assert "Traceback" not in err and not _hidden(out)
    n = export(dataset, out, fmt, progress=False)  # again: a killed export's folder is swept
    assert n == 12 and not _hidden(out)
    ds = open_dataset(dataset)
    for i, lid in enumerate(ds.layout_ids):
        for a in ds.appearances:
            image = (out / "images" / f"{lid}_{a}.png" if fmt == "gta" else
                     out / "leftImg8bit" / "train" / a / f"{lid}_{a}_leftImg8bit.png")
            with Image.open(image) as im:
                np.testing.assert_array_equal(np.asarray(im), ds.read_rgb(i, a))
