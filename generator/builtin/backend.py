"""The built-in backend: procedural layouts rendered with moderngl (not CARLA)."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator, Sequence

import moderngl

from carla4agt_data.errors import UserError
from carla4agt_data.raw import Capture

from ..layout import Layout
from ..weather import WeatherPreset
from .city import CITY_VERSION, sample_layout
from .renderer import BuiltinRenderer
from .scene import build_scene

RENDERER_VERSION = 1


class BuiltinBackend:
    """Samples procedural street layouts and renders them on a headless GL context.

    Args:
        antialias: supersampling factor for the RGB images (1 = off); labels never are.
    """

    name = "builtin"
    tag_table = "0.9.14+"

    def __init__(self, antialias: int = 1) -> None:
        self.antialias = antialias
        self._renderer: BuiltinRenderer | None = None
        self.last_scene_seconds = 0.0

    def _renderer_for(self, width: int, height: int) -> BuiltinRenderer:
        if self._renderer is None or self._renderer.size != (width, height):
            self.close()
            self._renderer = BuiltinRenderer(width, height, antialias=self.antialias)
        return self._renderer

    def versions(self) -> dict[str, str]:
        renderer = self._renderer_for(64, 32) if self._renderer is None else self._renderer
        info = renderer.ctx.info
        return {
            "renderer": f"carla4agt-builtin-{RENDERER_VERSION}",
            "city": f"carla4agt-city-{CITY_VERSION}",
            "moderngl": str(getattr(moderngl, "__version__", "unknown")),
            "gl_renderer": str(info.get("GL_RENDERER", "")),
            "gl_version": str(info.get("GL_VERSION", "")),
            "platform": platform.platform(),
        }

    def sample_layout(self, seed: int, index: int, *, width: int, height: int,
                      fov: float) -> Layout:
        return sample_layout(seed, index, width=width, height=height, fov=fov)

    def render(self, layout: Layout, presets: Sequence[WeatherPreset]) -> Iterator[Capture]:
        if layout.backend != "builtin":
            raise UserError(f"Layout {layout.id} was sampled for the {layout.backend!r} "
                            "backend; the built-in renderer renders only builtin layouts.")
        start = time.perf_counter()
        renderer = self._renderer_for(layout.camera.width, layout.camera.height)
        renderer.load(build_scene(layout), layout.camera)
        tags = renderer.render_tags()  # the weather never changes the label pass
        renderer.prepare_surfaces()
        self.last_scene_seconds = time.perf_counter() - start
        for preset in presets:
            t0 = time.perf_counter()
            rgb = renderer.render_rgb(preset)
            yield Capture(preset.name, rgb, tags, time.perf_counter() - t0)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
