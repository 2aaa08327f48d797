"""The synchronous capture session of the CARLA backend, on the stand-in server."""

from __future__ import annotations

import pytest

from generator.carla_backend.session import CaptureTimeout, SyncSession
from tests.carla_standin import Server


@pytest.fixture
def server():
    return Server()


def _world(server):
    return server.api().Client("localhost", 2000).get_world()


def _camera(world, carla, kind="rgb"):
    bp = world.get_blueprint_library().find(f"sensor.camera.{kind}")
    bp.set_attribute("image_size_x", "16")
    bp.set_attribute("image_size_y", "8")
    return world.spawn_actor(bp, carla.Transform())


def test_frames_are_matched_even_late_stale_or_out_of_order(server, carla):
    world = _world(server)
    server.deliver, server.stale = "thread", 2
    with SyncSession(world, fixed_delta=0.05) as sync:
        assert server.settings.synchronous_mode and server.settings.fixed_delta_seconds == 0.05
        sync.add_sensor(_camera(world, carla))
        sync.add_sensor(_camera(world, carla, "semantic_segmentation"))
        for _ in range(3):
            frame, (rgb, tags) = sync.tick()
            assert (rgb.frame, tags.frame) == (frame, frame)
        server.reorder = True  # the next frame arrives first: it is kept for its own tick
        frame, (rgb, _) = sync.tick()
        assert rgb.frame == frame
        server.reorder = False
        frame, (rgb, tags) = sync.tick()
        assert rgb.frame == frame and tags.frame == frame


def test_settings_restored_asynchronous_before_sensors_are_destroyed(server, carla):
    world = _world(server)
    with SyncSession(world) as sync:
        sync.add_sensor(_camera(world, carla))
        sync.tick()
    assert server.settings.synchronous_mode is False
    assert server.settings.fixed_delta_seconds is None  # variable step, as it was
    assert server.events[-3:] == ["apply_settings", "stop", "destroy"]
    assert server.actors == {}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_settings_restored_on_errors(server, carla, error):
    world = _world(server)
    with pytest.raises(error), SyncSession(world) as sync:
        sync.add_sensor(_camera(world, carla))
        raise error("boom")
    assert server.settings.synchronous_mode is False and server.actors == {}


def test_a_silent_server_is_a_clear_timeout(server, carla):
    world = _world(server)
    server.silent = True
    with pytest.raises(CaptureTimeout, match="No sensor data for frame 10. within 0.05 s"), \
            SyncSession(world, frame_timeout=0.05) as sync:
        sync.add_sensor(_camera(world, carla))
        sync.tick()
    assert server.settings.synchronous_mode is False
