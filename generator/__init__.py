"""carla4agt generator: layouts, weather presets, rendering backends and the runner."""

from .layout import Layout, load_layout, save_layout
from .weather import WeatherPreset, load_preset, resolve_weathers

__all__ = [
    "Layout", "WeatherPreset", "load_layout", "load_preset", "resolve_weathers", "save_layout",
]
