"""The ``carla4agt`` click group: a thin layer over the library functions.

Every command raises :class:`~carla4agt_data.errors.UserError` for problems the user can
fix; the group turns it into one ``Error: ...`` paragraph and exit code 1, or re-raises it
with its traceback under ``--debug``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from carla4agt_data import __version__
from carla4agt_data.errors import UserError


class _Group(click.Group):
    """A click group that shows user errors without a traceback unless ``--debug``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            # File-system errors (permissions, full disk, read-only, missing folder) name a
            # file: say which and what failed. Other OS errors keep their traceback.
            if ctx.params.get("debug") or not exc.filename:
                raise
            raise click.ClickException(
                f"{exc.filename}: {exc.strerror or exc}. Check the path, its permissions and "
                "the free space (run with --debug for the traceback).") from None
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            click.echo("Interrupted. Finished work is kept; run the same command again to "
                       "resume.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carla4agt")
@click.option("--debug", is_flag=True, envvar="CARLA4AGT_DEBUG",
              help="Show full tracebacks for errors (also: CARLA4AGT_DEBUG=1).")
def cli(debug: bool) -> None:
    """Make and consume multi-appearance segmentation datasets (CARLA-4AGT style).

    Every layout is rendered under several weather presets (noon, sunset, night, fog) that
    share one pixel-perfect label map.
    """


def _register() -> None:
    # Imported here so that each command lives in its own module.
    from .export import export_cmd
    from .generate import generate_cmd, render_cmd
    from .layouts import layouts
    from .merge import merge_cmd
    from .pack import pack_cmd
    from .preview import preview
    from .stats import stats_cmd
    from .study import study
    from .train import evaluate_cmd, train_cmd
    from .verify import verify_cmd
    from .weathers import weathers

    cli.add_command(generate_cmd, "generate")
    cli.add_command(render_cmd, "render")
    cli.add_command(pack_cmd, "pack")
    cli.add_command(merge_cmd, "merge")
    cli.add_command(export_cmd, "export")
    cli.add_command(verify_cmd, "verify")
    cli.add_command(stats_cmd, "stats")
    cli.add_command(train_cmd, "train")
    cli.add_command(evaluate_cmd, "evaluate")
    cli.add_command(weathers)
    cli.add_command(layouts)
    cli.add_command(preview)
    cli.add_command(study)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="carla4agt")
