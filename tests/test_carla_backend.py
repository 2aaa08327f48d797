"""The CARLA backend as the runner uses it, against the stand-in client."""

from __future__ import annotations

import json

import pytest

from carla4agt_data.dataset import open_dataset
from carla4agt_data.errors import UserError
from carla4agt_data.pack import pack
from carla4agt_data.raw import complete_layouts
from generator import runner
from generator.carla_backend.backend import CarlaBackend
from generator.carla_backend.replay import LayoutUnavailable
from generator.weather import resolve_weathers

from .fake_carla import ReplayClient, ReplayWorld, fake_api
from .test_carla_replay import BLUEPRINTS


class Factory:
    """A carla.Client stand-in factory: one world; a server that can fail N calls."""

    def __init__(self, carla, version="0.9.16"):
        self.world = ReplayWorld(carla.WorldSettings(synchronous_mode=False),
                                 blueprints=[*BLUEPRINTS, "vehicle.audi.a2"])
        self.version = version
        self.connections = 0
        self.fail_ticks = 0

    def __call__(self, host, port):
        self.connections += 1
        client = ReplayClient(self.world)
        client.set_timeout = lambda seconds: None
        client.get_server_version = lambda: self.version
        original_tick = self.world.tick
        factory = self

        def tick():
            if factory.fail_ticks > 0:
                factory.fail_ticks -= 1
                raise RuntimeError("time-out of 20000ms while waiting for the simulator")
            return original_tick()

        self.world.tick = tick
        return client


def _backend(carla, factory, **kw):
    return CarlaBackend("localhost", 2000, api=fake_api(carla), client_factory=factory,
                        sleep=lambda s: None, **kw)


def test_versions_and_tag_tables(carla):
    backend = _backend(carla, Factory(carla))
    assert backend.tag_table == "0.9.14+"
    assert backend.versions()["carla_server"] == "0.9.16"
    with pytest.warns(UserWarning, match="rider, bus, motorcycle and bicycle"):
        assert _backend(carla, Factory(carla, "0.9.13-dirty")).tag_table == "0.9.10-0.9.13"
    with pytest.raises(UserError, match="not supported"):
        assert _backend(carla, Factory(carla, "0.9.9")).tag_table


def test_reconnect_and_redo_the_layout(carla):
    factory = Factory(carla)
    backend = _backend(carla, factory)
    layout = backend.sample_layout(1, 2, width=64, height=32, fov=90.0)
    factory.fail_ticks = 1  # the server stops answering once in the middle of the layout
    captures = list(backend.render(layout, resolve_weathers("noon,fog")))
    assert [c.appearance for c in captures] == ["noon", "fog"]
    assert backend.reconnects == 1 and factory.connections == 2
    assert factory.world.actors == {} and factory.world.settings.synchronous_mode is False
    factory.fail_ticks = 10
    with pytest.raises(LayoutUnavailable, match="failed 3 times"):
        list(backend.render(layout, resolve_weathers("noon")))


def test_generate_with_the_carla_backend(carla, tmp_path, monkeypatch):
    factory = Factory(carla)
    monkeypatch.setattr(runner, "open_backend",
                        lambda name, **kw: _backend(carla, factory))
    summary = runner.generate(tmp_path / "raw", layouts=3, presets=resolve_weathers("all"),
                              backend="carla", size=(64, 32), progress=False)
    assert summary.rendered == 3
    folders = complete_layouts(tmp_path / "raw")
    assert [f.name for f in folders] == [f"carla-0-{i:06d}" for i in range(3)]
    marker = json.loads((folders[0] / "commit.json").read_text())
    assert marker["backend"] == "carla" and marker["is_carla"] is True
    assert marker["tag_table"] == "0.9.14+" and marker["versions"]["carla_server"] == "0.9.16"
    assert marker["capture_info"]["night"]["warmup_ticks"] >= 2
    ds = open_dataset(pack(tmp_path / "raw", tmp_path / "d.h5", workers=1, progress=False).path)
    assert len(ds) == 3 and ds.attrs["is_carla"]


def test_failed_layouts_are_recorded_not_kept(carla, tmp_path, monkeypatch):
    factory = Factory(carla)
    factory.world.drift = True  # vehicles move between weathers: tags differ
    monkeypatch.setattr(runner, "open_backend",
                        lambda name, **kw: _backend(carla, factory))
    runner.generate(tmp_path, layouts=2, presets=resolve_weathers("noon,fog"), backend="carla",
                    size=(64, 32), progress=False)
    assert complete_layouts(tmp_path) == []
    failures = runner.read_failures(tmp_path)
    assert [f["layout_id"] for f in failures] == ["carla-0-000000", "carla-0-000001"]
    assert all(f["differing_pixels"] > 0 for f in failures)


def test_layouts_are_dealt_to_servers():
    from pathlib import Path

    template = runner._Job(Path("raw"), "carla", (), 0, (64, 32), 90.0)
    jobs = runner.plan_jobs(template, list(range(7)), workers=4,
                            servers=[("a", 2000), ("b", 2003)])
    assert [(j.host, j.port) for j in jobs] == [("a", 2000), ("b", 2003)]
    assert sorted(i for j in jobs for i in j.indices) == list(range(7))
    assert set(jobs[0].indices).isdisjoint(jobs[1].indices)
    assert len(runner.plan_jobs(template, list(range(7)), workers=3)) == 3
    assert runner.parse_server("10.0.0.5:2000") == ("10.0.0.5", 2000)
    with pytest.raises(UserError, match="HOST:PORT"):
        runner.parse_server("localhost")


def test_a_layout_the_server_keeps_failing_is_recorded_and_the_run_goes_on(carla, tmp_path,
                                                                          monkeypatch):
    factory = Factory(carla)
    backend = _backend(carla, factory)
    monkeypatch.setattr(runner, "open_backend", lambda name, **kw: backend)
    real_replay = backend.render

    def flaky(layout, presets):
        if layout.id == "carla-0-000001":
            factory.fail_ticks = 100  # this layout: the server stops answering every time
        try:
            yield from real_replay(layout, presets)
        finally:
            factory.fail_ticks = 0

    backend.render = flaky
    summary = runner.generate(tmp_path, layouts=3, presets=resolve_weathers("noon"),
                              backend="carla", size=(64, 32), progress=False)
    assert [f.name for f in complete_layouts(tmp_path)] == ["carla-0-000000", "carla-0-000002"]
    failures = runner.read_failures(tmp_path)
    assert [f["layout_id"] for f in failures] == ["carla-0-000001"]
    assert "failed 3 times" in failures[0]["message"]
    # the next run retries it, and forgets the old failure when it succeeds
    backend.render = real_replay
    again = runner.generate(tmp_path, layouts=3, presets=resolve_weathers("noon"),
                            backend="carla", size=(64, 32), progress=False)
    assert (again.rendered, again.skipped, again.failed) == (1, 2, 0)
    assert runner.read_failures(tmp_path) == []
    assert (summary.total, summary.rendered, summary.failed) == (3, 2, 1)
