"""Issue 11's numbered defects of the first CARLA backend, each on the strict stand-in.
Every test here fails on the backend before issue 11 (see the README's CARLA section)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from carla4agt_data.errors import UserError
from carla4agt_data.raw import complete_layouts
from generator import runner
from generator.layout import load_layout
from generator.weather import resolve_weathers
from tests.carla_standin import Server
from tests.test_carla_backend import SIZE, generate_and_render, standin_backend, use_standin

ROOT = Path(__file__).resolve().parent.parent


def _generate(tmp_path, layouts=3, presets="all", **kw):
    return runner.generate(tmp_path, layouts=layouts, presets=resolve_weathers(presets),
                           backend="carla", size=SIZE, progress=False, **kw)


def test_1_one_render_process_per_server(tmp_path, monkeypatch):
    """--workers 4 without --server: one client on the one server, not four."""
    server = Server()
    use_standin(monkeypatch, server)
    summary = _generate(tmp_path, layouts=4, presets="noon", workers=4)
    assert (summary.rendered, summary.failed) == (4, 0)
    assert server.connections == 1


def test_2_walkers_keep_the_pose_generate_recorded(tmp_path):
    server = Server()
    folder, first, again = generate_and_render(server, layouts=3, tmp=tmp_path)
    assert (first.rendered, first.failed, again.failed) == (3, 0, 0)
    layouts = [load_layout(f / "layout.yaml") for f in complete_layouts(folder / "raw")]
    walkers = [a for layout in layouts for a in layout.actors if a.kind == "walker"]
    assert walkers and all(a.name in layout.backend_params["walker_bones"]
                           for layout in layouts for a in layout.actors if a.kind == "walker")
    for layout in layouts:  # the walkers are in the pictures, and render reproduces them
        tags = (folder / "raw" / layout.id / "noon.tags.png").read_bytes()
        assert tags == (folder / "again" / layout.id / "noon.tags.png").read_bytes()


def _layout_without_walkers(backend, index=0):
    from dataclasses import replace

    layout = backend.sample_layout(0, index, width=64, height=32, fov=90.0)
    return replace(layout, actors=tuple(a for a in layout.actors if a.kind != "walker"))


def test_3_exposure_settles_whatever_came_before(tmp_path):
    backend = standin_backend(Server())
    layout = _layout_without_walkers(backend)
    alone = list(backend.render(layout, resolve_weathers("night")))[0]
    after_noon = list(backend.render(layout, resolve_weathers("noon,night")))[1]
    diff = np.abs(alone.rgb.astype(int) - after_noon.rgb.astype(int))
    assert alone.rgb.mean() > 10 and after_noon.rgb.mean() > 10  # settled, not dark frames
    assert diff.mean() < 1.0
    backend.close()


def test_3_each_preset_gets_its_own_camera_section(tmp_path):
    noon = (Path(resolve_weathers("noon")[0].source)).read_text()
    bright = tmp_path / "bright.yaml"
    bright.write_text(noon.replace("name: noon", "name: bright").replace(
        "exposure_compensation: 0.0", "exposure_compensation: 1.0"))
    assert "exposure_compensation: 1.0" in bright.read_text()
    backend = standin_backend(Server())
    layout = _layout_without_walkers(backend)
    plain, brighter = list(backend.render(layout, resolve_weathers(f"noon,{bright}")))
    assert brighter.rgb.mean() > 1.3 * plain.rgb.mean()
    backend.close()


def test_4_each_map_loaded_once_per_server(tmp_path, monkeypatch):
    server = Server()
    use_standin(monkeypatch, server)
    summary = _generate(tmp_path, layouts=8, presets="noon", maps=("Town01", "Town02"))
    assert (summary.rendered, summary.failed) == (8, 0)
    assert server.costs.map_loads == 2
    assert min(server.load_timeouts) >= 60 and server.timeouts[-1] == 20.0  # long only there
    maps = sorted({load_layout(f / "layout.yaml").map for f in complete_layouts(tmp_path)})
    assert maps == ["Town01", "Town02"]


def test_4_unknown_map_is_a_clear_error(tmp_path, monkeypatch):
    use_standin(monkeypatch, Server())
    with pytest.raises(UserError, match="has no map 'Town99'. Maps there: Town01, Town02"):
        _generate(tmp_path, layouts=2, presets="noon", maps=("Town99",))


def test_5_setup_costs_no_blocking_calls_per_layout(tmp_path):
    server = Server()
    backend = standin_backend(server)
    layouts = [_layout_without_walkers(backend, i) for i in range(4)]
    list(backend.render(layouts[0], resolve_weathers("all")))  # cameras exist from here on
    for layout in layouts[1:]:
        before = (server.costs.ticks, server.costs.async_calls)
        list(backend.render(layout, resolve_weathers("all")))
        ticks, calls = server.costs.ticks - before[0], server.costs.async_calls - before[1]
        assert calls == 0 and ticks <= 20, (layout.id, ticks, calls)
    backend.close()


def test_6_no_unrequested_frames(tmp_path, monkeypatch):
    """apply_batch_sync(..., True) in asynchronous mode queues a tick cue that runs when
    synchronous mode starts: a frame nobody asked for."""
    server = Server()
    use_standin(monkeypatch, server)
    summary = _generate(tmp_path, layouts=2, presets="noon")
    assert (summary.rendered, summary.failed) == (2, 0)
    assert server.costs.unrequested_frames == 0


def test_6_a_stale_synchronous_server_is_reset_and_left_asynchronous(tmp_path, monkeypatch):
    server = Server()
    stale = server.get_settings()  # a killed client left it synchronous; nobody ticks
    stale.synchronous_mode, stale.fixed_delta_seconds = True, 0.05
    server.settings = stale
    use_standin(monkeypatch, server)
    summary = _generate(tmp_path, layouts=2, presets="noon")
    assert (summary.rendered, summary.failed) == (2, 0)
    assert server.settings.synchronous_mode is False  # asynchronous at the end
    assert server.actors == {}


def test_6_sigterm_restores_the_server(tmp_path):
    """A generate killed with SIGTERM mid-layout leaves the server asynchronous and clean.
    The stand-in sends the signal itself at its 20th tick: no timing involved."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        import pytest
        from pathlib import Path
        from tests.carla_standin import Server
        from tests.test_carla_backend import use_standin
        from generator import runner
        from generator.weather import resolve_weathers

        server = Server()
        sent = []
        def kill(s):
            if s.costs.ticks == 20 and not sent:
                sent.append(1)
                os.kill(os.getpid(), signal.SIGTERM)
        server.on_tick.append(kill)
        try:
            with pytest.MonkeyPatch.context() as mp:
                use_standin(mp, server)
                runner.generate(Path({str(tmp_path)!r}) / "raw", layouts=3,
                                presets=resolve_weathers("all"), backend="carla",
                                size=(64, 32), progress=False)
        except KeyboardInterrupt:
            print("interrupted", server.settings.synchronous_mode, len(server.actors))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.stdout.split() == ["interrupted", "False", "0"], result.stderr[-2000:]


def test_7_traffic_light_states_vary_between_layouts(tmp_path, monkeypatch):
    server = Server()
    use_standin(monkeypatch, server)
    _generate(tmp_path, layouts=8, presets="noon")
    states = {}
    for folder in complete_layouts(tmp_path):
        for light in load_layout(folder / "layout.yaml").traffic_lights:
            states.setdefault(light.opendrive_id, set()).add(light.state)
    assert states and all(len(s) > 1 for s in states.values()), states


@pytest.mark.parametrize("server_version,client_version,message", [
    ("0.9.15", "0.9.16", r"pip install carla==0.9.15"),
    ("0.10.0", "0.10.0", r"0.10.0 \(Unreal Engine 5\), which this tool does not support"),
])
def test_8_version_mismatch_and_0_10_are_refused(server_version, client_version, message):
    server = Server(version=server_version, client_version=client_version,
                    has_light_manager=not server_version.startswith("0.10"))
    backend = standin_backend(server)
    with pytest.raises(UserError, match=message):
        layout = backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
        list(backend.render(layout, resolve_weathers("night")))
    backend.close()


def test_9_a_vanished_actor_is_left_out(tmp_path):
    server = Server()
    backend = standin_backend(server)
    gone = []

    def vanish(s):  # one vehicle falls out of the world while the scene settles
        vehicles = [a for a in s.actors.values() if a.type_id.startswith("vehicle.")]
        if vehicles and not gone:
            gone.append(vehicles[0].attributes["role_name"])
            vehicles[0]._server_destroy()

    server.on_tick.append(vanish)
    layout = backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
    assert gone and f"carla4agt-{layout.actors[0].name}" != gone[0]
    assert len(layout.actors) == layout.backend_params["spawned"] - 1
    backend.close()


def test_9_walkers_stand_on_sidewalks(tmp_path):
    server = Server()
    backend = standin_backend(server)
    walkers = [a for i in range(6)
               for a in backend.sample_layout(0, i, width=64, height=32, fov=90.0).actors
               if a.kind == "walker"]
    assert len(walkers) >= 6
    assert all(server.lane_type(w.transform.x, w.transform.y) == "Sidewalk" for w in walkers)
    backend.close()


def test_9_no_camera_leaks_when_the_capture_fails(tmp_path):
    server = Server(blueprints=tuple(b for b in Server().blueprints
                                     if b != "sensor.camera.semantic_segmentation"))
    backend = standin_backend(server)
    layout = backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
    with pytest.raises(Exception):  # noqa: B017  (whichever error: nothing may be left)
        list(backend.render(layout, resolve_weathers("noon")))
    backend.close()
    assert server.actors == {}


def test_9_the_sampler_sweeps_leftovers(tmp_path, carla):
    server = Server()
    client = server.api().Client("localhost", 2000)
    world = client.get_world()
    bp = world.get_blueprint_library().find("vehicle.audi.a2")
    bp.set_attribute("role_name", "carla4agt-vehicle-0")
    leftover = world.spawn_actor(bp, carla.Transform(carla.Location(x=500.0, y=0.0, z=1.0)))
    backend = standin_backend(server)
    backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
    assert leftover.id not in server.actors
    backend.close()


def test_1_a_server_given_twice_is_refused(tmp_path):
    with pytest.raises(UserError, match="--server h:2000 is given twice"):
        runner.generate(tmp_path, layouts=2, presets=resolve_weathers("noon"), backend="carla",
                        servers=[("h", 2000), ("h", 2000)], progress=False)
