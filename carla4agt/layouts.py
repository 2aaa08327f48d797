"""``carla4agt layouts``: work with layout files."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.errors import UserError
from generator.layout import load_layout


@click.group(short_help="Check layout files.")
def layouts() -> None:
    """Work with layout files (one YAML file per scene layout)."""


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.yaml"))
            if not found:
                raise UserError(f"{path}: no .yaml files in this folder.")
            files.extend(found)
        else:
            files.append(path)
    return files


@layouts.command(short_help="Validate layout files.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate layout files (or every .yaml file under a folder).

    Prints one line per file; exits 1 if any file is invalid.
    """
    failed = 0
    files = _expand(paths)
    for path in files:
        try:
            layout = load_layout(path)
        except UserError as exc:
            if len(files) == 1:
                raise
            failed += 1
            click.echo(f"FAIL {exc}", err=True)
        else:
            click.echo(f"ok   {path} (id {layout.id}, {len(layout.actors)} actors, "
                       f"backend {layout.backend})")
    if failed:
        raise UserError(f"{failed} of {len(files)} layout files are invalid (see above).")
