"""The ``carla4agt`` click group: a thin layer over the library functions.

Every command raises :class:`~carla4agt_data.errors.UserError` for problems the user can
fix; the group turns it into one ``Error: ...`` paragraph and exit code 1, or re-raises it
with its traceback under ``--debug``.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

import click

from carla4agt_data import __version__
from carla4agt_data.errors import UserError
from carla4agt_data.processes import interrupt_exit_code, sigterm_as_interrupt

from .interrupts import ATTRIBUTE, READ_ONLY, message_for

# What stopping each command keeps, for commands whose module declares nothing itself.
_STOPPED = {
    "pack": "Stopped. The dataset is written under a temporary name and renamed only when "
            "complete, so nothing was packed; run pack again to pack from the start.",
    "merge": "Stopped. The merged file is renamed into place only when complete, so nothing "
             "was written; run merge again.",
    "export": "Stopped. Images exported so far are complete (each is renamed into place when "
              "written); run export again to export everything.",
    "train": "Stopped. Checkpoints saved so far are kept in the --out folder; run again with "
             "--resume to continue from the last one.",
    "evaluate": "Stopped. Nothing was written.",
    "verify": "Stopped. Nothing was written.",
    "stats": "Stopped. Nothing was written.",
    "preview": "Stopped. Nothing was written.",
    "study": "Stopped. Finished cells are kept in their run folders (the cell in progress is "
             "not); run the same command again to resume.",
    "weathers": READ_ONLY,
    "layouts": READ_ONLY,
}


MAX_MESSAGE = 2000  # characters: a message never repeats a huge value from a file


def _free(filename: str) -> str:
    """Free space of the file system holding ``filename`` (or its nearest existing folder)."""
    from carla4agt_data.output import free_bytes, mib

    try:
        return mib(free_bytes(Path(filename)))
    except OSError:
        return "unknown"


def _capped(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 20] + " ... (cut short)"


class _Group(click.Group):
    """A click group that shows user errors without a traceback unless ``--debug``, and
    stops every command on Ctrl-C or SIGTERM with that command's own sentence."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except UserError as exc:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(_capped(str(exc))) from None
        except OSError as exc:
            # File-system errors (permissions, full disk, read-only, missing folder) name a
            # file: say which and what failed. Other OS errors keep their traceback.
            if ctx.params.get("debug") or not exc.filename:
                raise
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise click.ClickException(
                    f"{exc.filename}: no space left on the device "
                    f"({_free(exc.filename)} free there). Nothing half-written was kept; free "
                    "some space and run the same command again.") from None
            raise click.ClickException(
                f"{exc.filename}: {exc.strerror or exc}. Check the path, its permissions and "
                "the free space (run with --debug for the traceback).") from None
        except KeyboardInterrupt as exc:
            if ctx.params.get("debug"):
                raise
            name = ctx.invoked_subcommand
            command = self.get_command(ctx, name) if name else None
            click.echo(message_for(command), err=True)
            sys.exit(interrupt_exit_code(exc))


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
    for name, command in cli.commands.items():
        if name in _STOPPED and getattr(command.callback, ATTRIBUTE, None) is None:
            setattr(command, ATTRIBUTE, _STOPPED[name])


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="carla4agt")
