"""A synchronous-mode session that owns what it changes, and matches sensor data by frame.

The shape of CARLA's ``examples/synchronous_mode.py`` (``CarlaSyncMode``), with two fixes:
on exit it restores the settings it found, always asynchronous (a server left synchronous
by a killed client is not put back into that state), before the sensors are destroyed
(the server otherwise hangs waiting for ticks); and
:meth:`SyncSession.tick` waits for each sensor's frame with a deadline, keeps frames that
arrive early or out of order for later ticks, and drops stale ones, instead of an
``assert`` and an unbounded loop.

Example:
    >>> with SyncSession(world, fixed_delta=0.05) as sync:
    ...     sync.add_sensor(rgb_camera)
    ...     sync.add_sensor(semantic_camera)
    ...     frame, (rgb, tags) = sync.tick()
"""

from __future__ import annotations

import queue
import time
from typing import Any

from carla4agt_data.errors import UserError


class CaptureTimeout(UserError):
    """A sensor did not deliver a tick's frame in time (the server is slow or gone)."""


class SyncSession:
    """Synchronous mode with a fixed step for one world; one queue per sensor.

    Args:
        world: a ``carla.World`` (or a stand-in with the same methods).
        fixed_delta: simulation seconds per tick.
        frame_timeout: seconds to wait for every sensor's data of one tick.
    """

    def __init__(self, world: Any, *, fixed_delta: float = 0.05,
                 frame_timeout: float = 10.0) -> None:
        self.world = world
        self.fixed_delta = fixed_delta
        self.frame_timeout = frame_timeout
        self._original: Any = None
        self._sensors: list[tuple[Any, queue.Queue, dict[int, Any]]] = []

    def __enter__(self) -> SyncSession:
        self._original = self.world.get_settings()
        settings = self.world.get_settings()  # a fresh copy: the original stays untouched
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.fixed_delta
        self.world.apply_settings(settings)
        return self

    def add_sensor(self, sensor: Any) -> None:
        """Register a sensor; its data is returned by :meth:`tick` in registration order."""
        q: queue.Queue = queue.Queue()
        sensor.listen(q.put)
        self._sensors.append((sensor, q, {}))

    @property
    def sensors(self) -> list[Any]:
        """The registered sensors, in the order :meth:`tick` returns their data."""
        return [sensor for sensor, _, _ in self._sensors]

    def remove_sensor(self, sensor: Any) -> None:
        """Stop and destroy a sensor registered with :meth:`add_sensor`."""
        for entry in list(self._sensors):
            if entry[0] is sensor:
                self._sensors.remove(entry)
                sensor.stop()
                sensor.destroy()

    def abandon(self) -> None:
        """Forget the sensors and settings without calling the server (it is gone, or a
        map load is about to destroy everything)."""
        self._original = None
        self._sensors.clear()

    def advance(self) -> int:
        """Advance one step without waiting for sensor data (warm-up, settling): what
        has arrived is dropped, what arrives later is dropped as stale by the next
        :meth:`tick`. A server before 0.9.14 may drop a first frame; this never waits
        for it."""
        frame = self.world.tick()
        for _, q, early in self._sensors:
            early.clear()
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
        return frame

    def tick(self) -> tuple[int, list[Any]]:
        """Advance one step; returns the frame id and each sensor's data of that frame."""
        frame = self.world.tick()
        deadline = time.monotonic() + self.frame_timeout
        return frame, [self._retrieve(q, early, frame, deadline) for _, q, early in self._sensors]

    def _retrieve(self, q: queue.Queue, early: dict[int, Any], frame: int,
                  deadline: float) -> Any:
        for stale in [f for f in early if f < frame]:
            del early[stale]
        if frame in early:
            return early.pop(frame)
        while True:
            remaining = deadline - time.monotonic()
            try:
                data = q.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise CaptureTimeout(
                    f"No sensor data for frame {frame} within {self.frame_timeout:g} s. "
                    "Is the CARLA server overloaded or gone? Raise --timeout, or restart it."
                ) from None
            if data.frame == frame:
                return data
            if data.frame > frame:  # early or out of order: keep it for its own tick
                early[data.frame] = data
            # older frames are stale: dropped

    def __exit__(self, *exc: object) -> None:
        # Settings first: a server left in synchronous mode without a ticking client hangs.
        try:
            if self._original is not None:
                self._original.synchronous_mode = False
                self.world.apply_settings(self._original)
                self._original = None
        finally:
            for sensor, _, _ in self._sensors:
                sensor.stop()
                sensor.destroy()
            self._sensors.clear()
