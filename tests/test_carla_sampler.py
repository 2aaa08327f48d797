"""Sampling layouts on the stand-in server."""

from __future__ import annotations

import pytest

from generator.layout import parse_layout
from tests.carla_standin import Server
from tests.test_carla_backend import standin_backend


@pytest.fixture
def setup():
    server = Server()
    backend = standin_backend(server)
    yield server, backend
    backend.close()


def _sample(backend, seed=3, index=7):
    return backend.sample_layout(seed, index, width=64, height=32, fov=90.0)


def _without_bones(layout):
    from dataclasses import replace

    params = {k: v for k, v in layout.backend_params.items() if k != "walker_bones"}
    return replace(layout, backend_params=params)


def test_sampling_is_deterministic_settled_and_clean(setup):
    server, backend = setup
    a, b = _sample(backend), _sample(backend)
    # all but the walkers' bones: where an idle animation is when sampled is the server's
    assert _without_bones(a) == _without_bones(b) and a.id == "carla-3-000007"
    assert a.map == "Town10HD_Opt" and a.backend == "carla"
    assert a != _sample(backend, index=8)
    assert {x.kind for x in a.actors} == {"vehicle", "walker"}
    assert all(x.light_state == (("Position",) if x.kind == "vehicle" else ())
               for x in a.actors)
    for actor in a.actors:  # settled: at rest, not at the raised spawn height
        ground = 0.15 if actor.kind == "walker" else 0.0
        assert actor.transform.z == pytest.approx(ground + (0.95 if actor.kind == "walker"
                                                            else 0.0))
    assert a.backend_params["settle_ticks"] == 5  # at rest at the first check, not 30
    assert parse_layout(a.to_yaml()) == a  # round-trips through the layout file, bones too
    assert set(a.backend_params["walker_bones"]) == {x.name for x in a.actors
                                                     if x.kind == "walker"}
    assert not [x for x in server.actors.values() if not x.type_id.startswith("sensor.")]
    assert server.settings.synchronous_mode  # the session stays synchronous until closed
    backend.close()
    assert server.settings.synchronous_mode is False and server.actors == {}


def test_traffic_lights_near_the_camera_are_recorded(setup):
    _, backend = setup
    layout = _sample(backend)
    assert layout.traffic_lights
    for light in layout.traffic_lights:
        assert light.state in ("Red", "Yellow", "Green") and light.location is not None
