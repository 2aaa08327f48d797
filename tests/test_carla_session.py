"""The synchronous capture session of the CARLA backend, against the stand-in world."""

from __future__ import annotations

import pytest

from generator.carla_backend.session import CaptureTimeout, SyncSession

from .fake_carla import FakeWorld


@pytest.fixture
def world(carla):
    return FakeWorld(carla.WorldSettings(synchronous_mode=False, fixed_delta_seconds=0.0))


def _session(world, **kw):
    session = SyncSession(world, fixed_delta=0.05, **kw)
    return session


def test_frames_are_matched_even_late_stale_or_out_of_order(world):
    world.delay, world.stale = 0.02, 2
    with _session(world) as sync:
        assert world.settings.synchronous_mode and world.settings.fixed_delta_seconds == 0.05
        sync.add_sensor(world.spawn_sensor("rgb"))
        sync.add_sensor(world.spawn_sensor("tags"))
        for _ in range(3):
            frame, (rgb, tags) = sync.tick()
            assert (rgb.frame, tags.frame) == (frame, frame)
            assert rgb.payload == f"rgb@{frame}" and tags.payload == f"tags@{frame}"
        world.reorder = True  # the next frame arrives first: it is kept for its own tick
        frame, (rgb, _) = sync.tick()
        assert rgb.frame == frame
        world.reorder = False
        world.delay = 0.5  # would deliver frame+1 late: the early copy serves it at once
        frame, (rgb, tags) = sync.tick()
        assert rgb.frame == frame and tags.frame == frame


def test_settings_restored_before_sensors_are_destroyed(world):
    with _session(world) as sync:
        sync.add_sensor(world.spawn_sensor("rgb"))
        sync.tick()
    assert world.settings.synchronous_mode is False
    assert world.settings.fixed_delta_seconds is None  # variable step, as it was
    assert world.events[-3:] == ["settings sync=False", "stop rgb", "destroy rgb"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_settings_restored_on_errors(world, error):
    with pytest.raises(error), _session(world) as sync:
        sync.add_sensor(world.spawn_sensor("rgb"))
        raise error("boom")
    assert world.settings.synchronous_mode is False
    assert world.sensors[0].destroyed


def test_a_silent_server_is_a_clear_timeout(world):
    world.dead = True
    with pytest.raises(CaptureTimeout, match="No sensor data for frame 101 within 0.2 s"), \
            _session(world, frame_timeout=0.2) as sync:
        sync.add_sensor(world.spawn_sensor("rgb"))
        sync.tick()
    assert world.settings.synchronous_mode is False
