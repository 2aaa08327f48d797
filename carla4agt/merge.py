"""``carla4agt merge``: shards -> one dataset."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.merge import merge

from .interrupts import interrupted


@click.command("merge", short_help="Merge HDF5 shards into one dataset.")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 file to write.")
@click.option("--virtual", is_flag=True,
              help="Do not copy: point at the shards (keep them beside the output).")
@click.option("--overwrite", is_flag=True,
              help="Replace OUTPUT even if it is not a merge of these shards' run.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@interrupted("Stopped. The merged file is renamed into place only when complete, so nothing "
             "was written and the shards are unchanged; run merge again.")
def merge_cmd(inputs: tuple[Path, ...], output: Path, virtual: bool, overwrite: bool,
              progress: bool) -> None:
    """Merge datasets of one run (same appearances, size and classes; disjoint layouts).

    OUTPUT may not be one of the INPUTS; an existing OUTPUT is replaced only if it is a
    dataset of the same run (or --overwrite). A --virtual merge opens only beside the very
    shards it was made from.
    """
    total = merge(list(inputs), output, virtual=virtual, progress=progress,
                  overwrite=overwrite)
    how = "virtually (the shards must stay beside it)" if virtual else "by copy"
    click.echo(f"Merged {len(inputs)} datasets ({total} layouts) into {output} {how}.")
