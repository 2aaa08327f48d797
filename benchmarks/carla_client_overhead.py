"""Per-frame client overhead of the CARLA backend, against a world that delivers a
ready-made frame instantly (so what is timed is the client: frame matching, BGRA to RGB
and tag conversion), at 1024x512 and 1920x1080; and ticks per second of a whole
`generate` on the stand-in server with PNG encoding on and off.

    python benchmarks/carla_client_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import carla
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' stand-in

from generator import runner  # noqa: E402
from generator.carla_backend.backend import CarlaBackend  # noqa: E402
from generator.carla_backend.replay import image_rgb, image_tags  # noqa: E402
from generator.carla_backend.session import SyncSession  # noqa: E402
from generator.weather import resolve_weathers  # noqa: E402
from tests.carla_standin import Server  # noqa: E402


class InstantSensor:
    def __init__(self) -> None:
        self.callback: Any = None

    def listen(self, callback: Any) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.callback = None

    def destroy(self) -> None:
        pass


class InstantWorld:
    """Delivers a prepared BGRA frame to every sensor inside tick()."""

    def __init__(self, width: int, height: int) -> None:
        self.settings = carla.WorldSettings(synchronous_mode=False)
        self.raw = np.random.default_rng(0).integers(0, 255, (height, width, 4),
                                                     dtype=np.uint8).tobytes()
        self.size = (width, height)
        self.frame = 0
        self.sensors: list[InstantSensor] = []

    def get_settings(self) -> Any:
        return carla.WorldSettings(synchronous_mode=self.settings.synchronous_mode)

    def apply_settings(self, settings: Any) -> int:
        self.settings = settings
        return self.frame

    def tick(self) -> int:
        self.frame += 1
        for sensor in self.sensors:
            sensor.callback(SimpleNamespace(frame=self.frame, raw_data=self.raw,
                                            width=self.size[0], height=self.size[1]))
        return self.frame


def client_overhead(width: int, height: int, frames: int = 60) -> float:
    world = InstantWorld(width, height)
    times = []
    with SyncSession(world) as sync:
        for _ in range(2):
            world.sensors.append(InstantSensor())
            sync.add_sensor(world.sensors[-1])
        for _ in range(frames):
            start = time.perf_counter()
            _, (rgb, tags) = sync.tick()
            image_rgb(rgb), image_tags(tags)  # the captured frame's conversion
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def generate_fps(encode: bool, layouts: int = 6) -> float:
    server = Server()
    backend = CarlaBackend(api=server.api(), sleep=server.sleep)
    original_open, original_write = runner.open_backend, runner.write_layout_folder
    runner.open_backend = lambda name, **kw: backend  # type: ignore[assignment]
    if not encode:
        runner.write_layout_folder = lambda out, *a, **k: out / "skipped"  # type: ignore
    ticks_before = server.costs.ticks
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            runner.generate(Path(tmp), layouts=layouts, presets=resolve_weathers("all"),
                            backend="carla", size=(1024, 512), progress=False)
            seconds = time.perf_counter() - start
    finally:
        runner.open_backend, runner.write_layout_folder = original_open, original_write
    return (server.costs.ticks - ticks_before) / seconds


def main() -> None:
    for w, h in ((1024, 512), (1920, 1080)):
        print(f"client overhead per frame at {w}x{h}: {client_overhead(w, h) * 1000:.2f} ms")
    on, off = generate_fps(True), generate_fps(False)
    print(f"generate on the stand-in (1024x512, 4 appearances): {on:.0f} ticks/s with PNG "
          f"encoding, {off:.0f} without; ratio {on / off:.2f} (the stand-in renders every "
          "tick in numpy: this measures the client and the stand-in together)")


if __name__ == "__main__":
    main()
