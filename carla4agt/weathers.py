"""``carla4agt weathers``: list the weather presets, or show one in full."""

from __future__ import annotations

import click

from generator.weather import WeatherPreset, builtin_preset_names, load_preset, presets_dir

from .interrupts import READ_ONLY, interrupted


def _summary_row(p: WeatherPreset) -> list[str]:
    w = p.weather
    return [
        p.name,
        f"{w.sun_altitude_angle:g}/{w.sun_azimuth_angle:g}",
        f"{w.cloudiness:g}",
        f"{w.fog_density:g}/{w.fog_distance:g}",
        f"{w.wetness:g}",
        "on" if p.lights.street_lights else "off",
        ",".join(p.lights.vehicle_lights) or "-",
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines)


@click.command(short_help="List the weather presets, or show one.")
@interrupted(READ_ONLY)
@click.argument("preset", required=False)
def weathers(preset: str | None) -> None:
    """List the built-in weather presets with their key parameters.

    With PRESET (a name such as 'fog', or the path of a preset YAML file), validate it and
    print it in full.
    """
    if preset is not None:
        p = load_preset(preset)
        click.echo(f"# {p.name}: read from {p.source}")
        click.echo(p.to_yaml().rstrip())
        return
    folder = presets_dir()
    presets = [load_preset(name) for name in builtin_preset_names()]
    header = ["name", "sun alt/az", "cloud", "fog dens/dist", "wet", "street", "vehicle lights"]
    click.echo(_table(header, [_summary_row(p) for p in presets]))
    click.echo(f"\nRead from {folder}")
    click.echo("Use --weathers all (= noon,sunset,night,fog), names, or paths to your own YAML.")
