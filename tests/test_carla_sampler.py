"""Sampling layouts on the stand-in server."""

from __future__ import annotations

import pytest

from generator.carla_backend.replay import ROLE_PREFIX, replay
from generator.carla_backend.sampler import sample_layout
from generator.layout import parse_layout
from generator.weather import resolve_weathers

from .fake_carla import ReplayClient, ReplayWorld, fake_api
from .test_carla_replay import BLUEPRINTS


@pytest.fixture
def setup(carla):
    world = ReplayWorld(carla.WorldSettings(synchronous_mode=False),
                        blueprints=[*BLUEPRINTS, "vehicle.audi.a2", "walker.pedestrian.0002"])
    return ReplayClient(world), world, fake_api(carla)


def _sample(client, api, seed=3, index=7):
    return sample_layout(client, seed, index, width=64, height=32, fov=90.0, api=api,
                         settle_ticks=10)


def test_sampling_is_deterministic_settled_and_clean(setup):
    client, world, api = setup
    a = _sample(client, api)
    b = _sample(client, api)
    assert a == b and a.id == "carla-3-000007" and a.map == "Town10HD_Opt" and a.backend == "carla"
    assert a != _sample(client, api, index=8)
    kinds = {x.kind for x in a.actors}
    assert kinds == {"vehicle", "walker"}
    for actor in a.actors:  # settled: at rest on the ground, not at the raised spawn height
        assert actor.transform.z == pytest.approx(0.95 if actor.kind == "walker" else 0.0)
    assert 1.5 <= a.camera.transform.z - 0.3 <= 2.5
    assert world.actors == {} and world.settings.synchronous_mode is False
    assert parse_layout(a.to_yaml()) == a  # round-trips through the layout file


def test_sampled_layout_replays(setup):
    client, world, api = setup
    layout = _sample(client, api)
    captures = replay(client, layout, resolve_weathers("noon,night"), api)
    assert (captures[0].tags == captures[1].tags).all()
    assert all(not a.attributes["role_name"].startswith(ROLE_PREFIX)
               for a in world.get_actors())
