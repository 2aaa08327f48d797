"""Per-frame client overhead of the CARLA backend, against a stand-in server that delivers
ready-made frames instantly (so what is timed is the client: frame matching, BGRA to RGB
and tag conversion, the warm-up comparison), at 1024x512 and 1920x1080; and frames per
second of a whole `generate` run on the stand-in with PNG encoding on and off.

    python benchmarks/carla_client_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import carla
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' stand-in

from generator import runner  # noqa: E402
from generator.carla_backend.backend import CarlaBackend  # noqa: E402
from generator.carla_backend.replay import _preview, image_rgb, image_tags  # noqa: E402
from generator.carla_backend.session import SyncSession  # noqa: E402
from generator.weather import resolve_weathers  # noqa: E402
from tests.fake_carla import FakeImage, FakeWorld, ReplayClient, ReplayWorld, fake_api  # noqa: E402


class InstantWorld(FakeWorld):
    """Delivers a prepared BGRA frame to every sensor inside tick()."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(carla.WorldSettings(synchronous_mode=False))
        self.raw = np.random.default_rng(0).integers(0, 255, (height, width, 4),
                                                     dtype=np.uint8).tobytes()
        self.size = (width, height)

    def tick(self) -> int:
        self.frame += 1
        for sensor in self.sensors:
            image = FakeImage(self.frame)
            image.raw_data, (image.width, image.height) = self.raw, self.size
            sensor.callback(image)
        return self.frame


def client_overhead(width: int, height: int, frames: int = 60) -> float:
    world = InstantWorld(width, height)
    times = []
    with SyncSession(world) as sync:
        sync.add_sensor(world.spawn_sensor("rgb"))
        sync.add_sensor(world.spawn_sensor("tags"))
        _, (rgb, _) = sync.tick()
        previous = _preview(rgb)
        for _ in range(frames):
            start = time.perf_counter()
            _, (rgb, tags) = sync.tick()
            current = _preview(rgb)  # warm-up comparison, every frame
            float(np.abs(current - previous).mean())
            previous = current
            image_rgb(rgb), image_tags(tags)  # the captured frame's conversion
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def generate_fps(encode: bool, layouts: int = 6) -> float:
    def factory(host, port):
        world = ReplayWorld(carla.WorldSettings(synchronous_mode=False),
                            blueprints=["vehicle.tesla.model3", "walker.pedestrian.0001",
                                        "sensor.camera.rgb",
                                        "sensor.camera.semantic_segmentation"])
        client = ReplayClient(world)
        client.set_timeout = lambda s: None
        client.get_server_version = lambda: "0.9.16"
        return client

    shared = factory("", 0)
    backend = CarlaBackend(api=fake_api(carla), client_factory=lambda h, p: shared)
    runner.open_backend = lambda name, **kw: backend
    original = runner.write_layout_folder
    if not encode:
        runner.write_layout_folder = lambda out, *a, **k: out / "skipped"
    ticks_before = shared.world.frame
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        runner.generate(Path(tmp), layouts=layouts, presets=resolve_weathers("all"),
                        backend="carla", size=(1024, 512), progress=False)
        seconds = time.perf_counter() - start
    runner.write_layout_folder = original
    return (shared.world.frame - ticks_before) / seconds


def main() -> None:
    for w, h in ((1024, 512), (1920, 1080)):
        print(f"client overhead per frame at {w}x{h}: {client_overhead(w, h) * 1000:.2f} ms")
    on, off = generate_fps(True), generate_fps(False)
    print(f"generate on the stand-in (1024x512, 4 appearances): {on:.0f} ticks/s with PNG "
          f"encoding, {off:.0f} without; ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
