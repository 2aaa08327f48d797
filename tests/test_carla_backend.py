"""The CARLA backend as the runner uses it, on the strict stand-in server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from carla4agt_data.dataset import open_dataset
from carla4agt_data.pack import pack
from carla4agt_data.raw import complete_layouts
from generator import runner
from generator.backends import LayoutUnavailable
from generator.carla_backend.backend import CarlaBackend
from generator.weather import resolve_weathers
from tests.carla_standin import Server, make_api

SIZE = (64, 32)


def standin_backend(server: Server, api=None, **kw) -> CarlaBackend:
    return CarlaBackend(server.host, server.port, api=api or server.api(), sleep=server.sleep,
                        **kw)


def use_standin(monkeypatch, *servers: Server) -> None:
    """The runner's backends connect to these stand-in servers (by host and port)."""
    api = make_api({(s.host, s.port): s for s in servers})
    clock = servers[0]

    def open_standin(name, **kw):
        return CarlaBackend(kw.get("host", "localhost"), kw.get("port", 2000), api=api,
                            sleep=clock.sleep, maps=kw.get("maps", ()))

    monkeypatch.setattr(runner, "open_backend", open_standin)


def generate_and_render(server: Server, layouts: int = 3, presets: str = "all",
                        tmp: Path | None = None, **kw):
    """A generate, then a render of its saved layouts, on ``server`` (in this process)."""
    import tempfile

    with pytest.MonkeyPatch.context() as mp:
        use_standin(mp, server)
        folder = Path(tmp or tempfile.mkdtemp())
        first = runner.generate(folder / "raw", layouts=layouts, presets=resolve_weathers(presets),
                                backend="carla", size=SIZE, progress=False, **kw)
        again = runner.render_layouts([folder / "raw"], folder / "again",
                                      presets=resolve_weathers(presets), backend="carla",
                                      progress=False)
    return folder, first, again


def jolt(server: Server) -> None:
    """A stand-in tick hook: vehicles move every tick (tags differ between appearances)."""
    for actor in server.actors.values():
        if actor.type_id.startswith("vehicle."):
            loc = actor._transform.location
            actor._transform.location = type(loc)(x=loc.x + 0.3, y=loc.y, z=loc.z)


def test_versions_and_tag_tables():
    backend = standin_backend(Server())
    assert backend.tag_table == "0.9.14+"
    assert backend.versions() == {"carla_server": "0.9.16", "carla_client": "0.9.16"}
    backend.close()
    with pytest.warns(UserWarning, match="rider, bus, motorcycle and bicycle"):
        old = standin_backend(Server(version="0.9.13-dirty", client_version="0.9.13"))
        assert old.tag_table == "0.9.10-0.9.13"
    # its cameras lose their first frame: warm-up ticks never wait for one
    layout = old.sample_layout(0, 0, width=64, height=32, fov=90.0)
    assert len(list(old.render(layout, resolve_weathers("noon,night")))) == 2
    assert old.reconnects == 0
    old.close()


def test_reconnect_and_redo_the_layout():
    server = Server()
    backend = standin_backend(server)
    layout = backend.sample_layout(1, 2, width=64, height=32, fov=90.0)
    server.failing = 1  # the server stops answering once in the middle of the layout
    captures = list(backend.render(layout, resolve_weathers("noon,fog")))
    assert [c.appearance for c in captures] == ["noon", "fog"]
    assert backend.reconnects == 1 and server.connections == 2
    assert backend.stale_resets == 1  # the dropped client left the server synchronous
    server.failing = 10
    with pytest.raises(LayoutUnavailable, match="failed 3 times"):
        list(backend.render(layout, resolve_weathers("noon")))
    server.failing = 0
    assert len(list(backend.render(layout, resolve_weathers("noon")))) == 1  # sweeps
    backend.close()
    assert list(server.actors.values()) == []
    assert server.settings.synchronous_mode is False


def test_generate_writes_what_render_reproduces(tmp_path):
    server = Server()
    folder, first, again = generate_and_render(server, layouts=3, tmp=tmp_path)
    assert (first.rendered, first.failed, again.rendered, again.failed) == (3, 0, 3, 0)
    made = complete_layouts(folder / "raw")
    assert [f.name for f in made] == [f"carla-0-{i:06d}" for i in range(3)]
    for layout in made:
        for name in ("noon", "sunset", "night", "fog"):
            a = (layout / f"{name}.tags.png").read_bytes()
            b = (folder / "again" / layout.name / f"{name}.tags.png").read_bytes()
            assert a == b, (layout.name, name)
    marker = json.loads((made[0] / "commit.json").read_text())
    assert marker["backend"] == "carla" and marker["is_carla"] is True
    assert marker["tag_table"] == "0.9.14+" and marker["versions"]["carla_server"] == "0.9.16"
    assert marker["capture_info"]["night"]["warmup_ticks"] == 3
    ds = open_dataset(pack(folder / "raw", tmp_path / "d.h5", workers=1, progress=False).path)
    assert len(ds) == 3 and ds.attrs["is_carla"]
    # nothing of ours is left, and the server is asynchronous again
    assert server.actors == {} and server.settings.synchronous_mode is False


def test_failed_layouts_are_recorded_not_kept(tmp_path, monkeypatch):
    server = Server()
    use_standin(monkeypatch, server)
    server.on_tick.append(jolt)
    runner.generate(tmp_path, layouts=2, presets=resolve_weathers("noon,fog"), backend="carla",
                    size=SIZE, progress=False)
    assert complete_layouts(tmp_path) == []
    failures = runner.read_failures(tmp_path)
    assert [f["layout_id"] for f in failures] == ["carla-0-000000", "carla-0-000001"]
    assert all(f["differing_pixels"] > 0 for f in failures)


def test_layouts_are_dealt_to_servers_in_map_blocks():
    template = runner._Job(Path("raw"), "carla", (), 0, (64, 32), 90.0,
                           maps=("Town01", "Town02"))
    jobs = runner.plan_jobs(template, list(range(8)), workers=4,
                            servers=[("a", 2000), ("b", 2003)])
    assert [(j.host, j.port) for j in jobs] == [("a", 2000), ("b", 2003)]
    assert [j.indices for j in jobs] == [(0, 2, 4, 6), (1, 3, 5, 7)]  # one map each
    assert len(runner.plan_jobs(template, list(range(7)), workers=3)) == 1
    builtin = runner._Job(Path("raw"), "builtin", (), 0, (64, 32), 90.0)
    assert len(runner.plan_jobs(builtin, list(range(7)), workers=3)) == 3


def test_a_layout_the_server_keeps_failing_is_recorded_and_the_run_goes_on(tmp_path,
                                                                          monkeypatch):
    server = Server()
    use_standin(monkeypatch, server)
    real_replay = CarlaBackend.render

    def flaky(self, layout, presets):
        if layout.id == "carla-0-000001":
            server.failing = 100  # this layout: the server stops answering every time
        try:
            yield from real_replay(self, layout, presets)
        finally:
            server.failing = 0

    monkeypatch.setattr(CarlaBackend, "render", flaky)
    summary = runner.generate(tmp_path, layouts=3, presets=resolve_weathers("noon"),
                              backend="carla", size=SIZE, progress=False)
    assert [f.name for f in complete_layouts(tmp_path)] == ["carla-0-000000", "carla-0-000002"]
    failures = runner.read_failures(tmp_path)
    assert [f["layout_id"] for f in failures] == ["carla-0-000001"]
    assert "failed 3 times" in failures[0]["message"]
    monkeypatch.setattr(CarlaBackend, "render", real_replay)
    again = runner.generate(tmp_path, layouts=3, presets=resolve_weathers("noon"),
                            backend="carla", size=SIZE, progress=False)
    assert (again.rendered, again.skipped, again.failed) == (1, 2, 0)
    assert runner.read_failures(tmp_path) == []
    assert (summary.total, summary.rendered, summary.failed) == (3, 2, 1)


def test_rgb_does_not_depend_on_the_previous_layout():
    """Exposure settles within each appearance: replaying a layout after another one
    gives (almost) the same RGB as replaying it first."""
    server = Server()
    backend = standin_backend(server)
    a = backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
    b = backend.sample_layout(0, 1, width=64, height=32, fov=90.0)
    presets = resolve_weathers("all")
    first = list(backend.render(a, presets))
    list(backend.render(b, presets))
    later = list(backend.render(a, presets))
    for x, y in zip(first, later, strict=True):
        assert np.abs(x.rgb.astype(int) - y.rgb.astype(int)).max() <= 1
        assert (x.tags == y.tags).all()
    backend.close()


def test_the_shard_defaults_to_the_slurm_array_task(monkeypatch, capsys):
    from carla4agt.generate import _shard
    from carla4agt_data.errors import UserError

    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert runner.shard_from_environment(env) == runner.Shard(2, 4)
    assert runner.shard_from_environment({}) is None
    with pytest.raises(UserError, match="--array=0-<N-1>"):
        runner.shard_from_environment({**env, "SLURM_ARRAY_TASK_ID": "4"})
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    assert _shard(None) == runner.Shard(1, 3)
    assert "Shard 1/3 from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT" in capsys.readouterr().err
    assert _shard(runner.Shard(0, 2)) == runner.Shard(0, 2)  # --shard wins


def test_render_deals_map_blocks_to_servers(tmp_path, monkeypatch):
    """render --server A --server B: one process per server, each map's layouts together."""
    from dataclasses import replace

    from generator.layout import save_layout

    backend = standin_backend(Server())
    base = backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
    backend.close()
    for i, name in enumerate(["Town01", "Town02", "Town01", "Town02"]):
        save_layout(replace(base, id=f"l{i}", map=name), tmp_path / "in" / f"l{i}.yaml")
    planned = []
    monkeypatch.setattr(runner, "_execute", lambda jobs, *a: planned.extend(jobs))
    runner.render_layouts([tmp_path / "in"], tmp_path / "out",
                          presets=resolve_weathers("noon"), backend="carla", workers=4,
                          servers=[("a", 2000), ("b", 2003)], progress=False)
    assert [(j.host, j.port) for j in planned] == [("a", 2000), ("b", 2003)]
    assert [[la.map for la in j.items] for j in planned] == [["Town01"] * 2, ["Town02"] * 2]
