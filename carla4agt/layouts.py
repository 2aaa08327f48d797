"""``carla4agt layouts``: work with layout files."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.errors import UserError
from generator.backends import check_layout
from generator.layout import Layout, find_layout_files, load_layout

from .interrupts import READ_ONLY, interrupted


@click.group(short_help="Check layout files.")
@interrupted(READ_ONLY)
def layouts() -> None:
    """Work with layout files (one YAML file per scene layout)."""


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """The files themselves, and the layout files under folders (a raw folder's run.yaml
    and hidden temporaries are not layouts)."""
    files: list[Path] = []
    for path in paths:
        files.extend(find_layout_files(path) if path.is_dir() else [path])
    return files


def _check(path: Path) -> Layout:
    """Everything render will use: the schema, and what the layout's backend can draw."""
    layout = load_layout(path)
    check_layout(layout, path, layout.backend)
    return layout


@layouts.command(short_help="Validate layout files.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate layout files (or every layout file under a folder, such as a raw folder).

    Checks what render will use: the schema, bounds, and the blueprints and parameters the
    layout's backend needs.

    Prints one line per file; exits 1 if any file is invalid.
    """
    failed = 0
    files = _expand(paths)
    for path in files:
        try:
            layout = _check(path)
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
