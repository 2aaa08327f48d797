"""What a CARLA run would cost on a real server, counted on the strict stand-in.

Runs a 20-layout ``generate`` and a ``render`` of the same layouts (four presets) on the
stand-in server of ``tests/carla_standin`` and prints, per layout, the synchronous ticks,
the blocking calls made in asynchronous mode, the map loads, and the estimated seconds
from carla.md's planning costs (ticks x 40 ms, asynchronous calls x one 40 ms frame, map
loads x 20 s); then the map loads of a two-map generate. The last line is the estimate per
replayed layout:

    python benchmarks/carla_cost.py [--layouts 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' stand-in

from generator import runner  # noqa: E402
from generator.carla_backend.backend import CarlaBackend  # noqa: E402
from generator.weather import resolve_weathers  # noqa: E402
from tests.carla_standin import Costs, Server  # noqa: E402

SIZE = (128, 64)  # the costs do not depend on the image size


def _counting(server: Server, fn: Callable[..., Any], key: Callable[..., str],
              tables: Callable[[], dict[str, Costs]]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kw: Any) -> Any:
        table = tables()
        before = Costs(**vars(server.costs))
        try:
            result = fn(*args, **kw)
            return list(result) if not hasattr(result, "id") else result
        finally:
            spent = server.costs.minus(before)
            old = table.get(key(*args, **kw), Costs())
            table[key(*args, **kw)] = Costs(old.ticks + spent.ticks,
                                            old.async_calls + spent.async_calls,
                                            old.map_loads + spent.map_loads,
                                            old.unrequested_frames + spent.unrequested_frames)
    return wrapped


def run(layouts: int, maps: tuple[str, ...] = ()) -> tuple[dict[str, Costs], dict[str, Costs],
                                                           Costs]:
    """Costs per layout of generate and of render, and the whole run's costs."""
    server = Server()
    backend = CarlaBackend("localhost", 2000, api=server.api(), sleep=server.sleep, maps=maps)
    generated: dict[str, Costs] = {}
    rendered: dict[str, Costs] = {}
    sample, render = backend.sample_layout, backend.render
    table = {"now": generated}
    backend.sample_layout = _counting(  # type: ignore[method-assign]
        server, sample, lambda seed, index, **kw: f"carla-{seed}-{index:06d}",
        lambda: generated)
    backend.render = _counting(  # type: ignore[method-assign]
        server, render, lambda layout, presets: layout.id, lambda: table["now"])
    original = runner.open_backend
    runner.open_backend = lambda name, **kw: backend  # type: ignore[assignment]
    presets = resolve_weathers("all")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runner.generate(Path(tmp) / "raw", layouts=layouts, presets=presets,
                            backend="carla", size=SIZE, workers=1, maps=maps, progress=False)
            if not maps:
                table["now"] = rendered
                runner.render_layouts([Path(tmp) / "raw"], Path(tmp) / "again",
                                      presets=presets, backend="carla", workers=1,
                                      progress=False)
    finally:
        runner.open_backend = original  # type: ignore[assignment]
    return generated, rendered, server.costs


def _row(name: str, c: Costs) -> str:
    return (f"{name:<24} {c.ticks:>6} {c.async_calls:>12} {c.map_loads:>6} "
            f"{c.seconds():>8.2f}")


def _mean(costs: dict[str, Costs]) -> tuple[float, float, float]:
    n = max(len(costs), 1)
    return (sum(c.ticks for c in costs.values()) / n,
            sum(c.async_calls for c in costs.values()) / n,
            sum(c.seconds() for c in costs.values()) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", type=int, default=20)
    args = parser.parse_args()
    generated, rendered, _ = run(args.layouts)
    header = f"{'layout':<24} {'ticks':>6} {'async calls':>12} {'loads':>6} {'est. s':>8}"
    for title, costs in (("generate (sample + replay)", generated),
                         ("render (replay of the saved layouts)", rendered)):
        print(title)
        print(header)
        for name, c in costs.items():
            print(_row(name, c))
        ticks, calls, seconds = _mean(costs)
        print(f"mean per layout: {ticks:.1f} ticks, {calls:.1f} async calls, "
              f"{seconds:.2f} s\n")
    _, _, two = run(args.layouts, maps=("Town01", "Town02"))
    print(f"generate of {args.layouts} layouts on 2 maps, one server: {two.map_loads} map loads")
    print(f"estimated s/layout: {_mean(rendered)[2]:.2f}")


if __name__ == "__main__":
    main()
