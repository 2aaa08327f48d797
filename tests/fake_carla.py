"""A small stand-in for the parts of a CARLA server that capture code talks to.

It behaves like CARLA where it matters for the tests: ``tick()`` returns increasing frame
ids; sensors deliver each frame from another thread, possibly late (after ``tick`` has
returned), with stale frames queued first, or out of order; a server can stop answering.
Value types (``WorldSettings``) are the real ``carla`` ones where the wheel can build them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeImage:
    frame: int
    payload: str = ""


@dataclass
class FakeSensor:
    world: FakeWorld
    name: str
    callback: Any = None
    stopped: bool = False
    destroyed: bool = False

    def listen(self, callback) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.world.events.append(f"stop {self.name}")
        self.stopped = True

    def destroy(self) -> None:
        self.world.events.append(f"destroy {self.name}")
        self.destroyed = True


@dataclass
class FakeWorld:
    """``delay``: seconds before a frame is delivered; ``stale``: frames re-sent first;
    ``reorder``: deliver the next frame before this one; ``dead``: stop delivering."""

    settings: Any
    frame: int = 100
    delay: float = 0.0
    stale: int = 0
    reorder: bool = False
    dead: bool = False
    sensors: list[FakeSensor] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def get_settings(self):
        import carla

        # like the server: every call returns a new object (None = variable time step)
        s, copy = self.settings, carla.WorldSettings()
        copy.synchronous_mode = s.synchronous_mode
        copy.no_rendering_mode = s.no_rendering_mode
        copy.fixed_delta_seconds = s.fixed_delta_seconds
        return copy

    def apply_settings(self, settings) -> int:
        self.settings = settings
        self.events.append(f"settings sync={settings.synchronous_mode}")
        return self.frame

    def spawn_sensor(self, name: str) -> FakeSensor:
        sensor = FakeSensor(self, name)
        self.sensors.append(sensor)
        return sensor

    def tick(self) -> int:
        self.frame += 1
        frame = self.frame
        if not self.dead:
            threading.Thread(target=self._deliver, args=(frame,), daemon=True).start()
        return frame

    def _deliver(self, frame: int) -> None:
        time.sleep(self.delay)
        for sensor in self.sensors:
            if sensor.callback is None or sensor.stopped:
                continue
            for old in range(frame - self.stale, frame):
                sensor.callback(FakeImage(old, f"{sensor.name}@{old}"))
            if self.reorder:
                sensor.callback(FakeImage(frame + 1, f"{sensor.name}@{frame + 1}"))
            sensor.callback(FakeImage(frame, f"{sensor.name}@{frame}"))
