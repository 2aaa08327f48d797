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
    assert all(x.light_state == (("Position",) if x.kind == "vehicle" else ())
               for x in a.actors)
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


def test_traffic_lights_recorded_then_frozen_in_that_state(setup):
    client, world, api = setup
    near = world.add_traffic_light(381, 20.0, 3.0)
    world.add_traffic_light(999, 900.0, 0.0)  # too far from the camera to matter
    layout = _sample(client, api)
    assert [t.opendrive_id for t in layout.traffic_lights] == ["381"]
    recorded = layout.traffic_lights[0].state
    assert recorded in ("Red", "Yellow", "Green")
    near.state = "Green" if recorded != "Green" else "Red"  # it kept running since
    world.frozen_lights = False
    replay(client, layout, resolve_weathers("noon,night"), api)
    assert world.frozen_lights and near.state == recorded


def test_maps_round_robin_and_settings_after_a_load(setup, carla):
    from generator.carla_backend.backend import CarlaBackend

    client, world, api = setup
    client.set_timeout = lambda s: None
    backend = CarlaBackend(api=api, client_factory=lambda h, p: client,
                           maps=("Town01", "Town02"), sleep=lambda s: None)
    first = backend.sample_layout(0, 0, width=64, height=32, fov=90.0)
    second = backend.sample_layout(0, 1, width=64, height=32, fov=90.0)
    assert (first.map, second.map) == ("Town01", "Town02")
    captures = list(backend.render(first, resolve_weathers("noon")))  # loads Town01 again
    assert captures and world.events.count("load Town01") == 2
    assert world.settings.synchronous_mode is False  # restored to what the load left
