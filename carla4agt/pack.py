"""``carla4agt pack``: raw folder -> HDF5 dataset."""

from __future__ import annotations

from pathlib import Path

import click

from carla4agt_data.errors import UserError
from carla4agt_data.pack import PackSummary, default_pack_workers, pack
from carla4agt_data.schema import parse_split_ratios

from .interrupts import interrupted


def report_pack(summary: PackSummary) -> None:
    """Print what a pack did; raise (exit 1) if layouts were refused."""
    click.echo(f"Packed {len(summary.packed)} layouts into {summary.path}.")
    if summary.in_flight:
        pids = sorted(set(summary.in_flight.values()))
        click.echo(f"{len(summary.in_flight)} layouts are being rendered right now (process "
                   f"{', '.join(map(str, pids))}: a carla4agt generate is still running) and "
                   "are not in the dataset. Pack again when it has finished.", err=True)
    if summary.incomplete:
        shown = ", ".join(summary.incomplete[:10])
        more = f" and {len(summary.incomplete) - 10} more" if len(summary.incomplete) > 10 else ""
        click.echo(f"Skipped {len(summary.incomplete)} incomplete layouts (no commit marker): "
                   f"{shown}{more}. Re-run carla4agt generate to finish them.", err=True)
    if summary.kept_mismatch:
        click.echo(f"Kept {len(summary.kept_mismatch)} layouts whose label maps differ across "
                   "appearances (first appearance's map stored; counts in label_mismatch).",
                   err=True)
    if summary.refused:
        listed = ", ".join(f"{k} ({v} px)" for k, v in list(summary.refused.items())[:10])
        raise UserError(f"Refused {len(summary.refused)} layouts whose label maps differ across "
                        f"appearances: {listed}. Re-render them, or pack with "
                        "--allow-label-mismatch to keep the first appearance's map.")


def _split(ctx: click.Context, param: click.Parameter, value: str
           ) -> tuple[float, float, float]:
    try:
        return parse_split_ratios(value)
    except UserError as exc:  # a usage error (exit 2), like every other bad option value
        raise click.BadParameter(str(exc), ctx, param) from None


def pack_options(func):
    options = [
        click.option("--classes", "num_classes", type=click.Choice(["16", "19"]), default="16",
                     show_default=True, help="16 classes, or Cityscapes' 19 trainIds."),
        click.option("--compression", default="gzip-1", show_default=True,
                     help="RGB filter: gzip-0..9 (readable by any HDF5 tool), lzf, none, or "
                          "with hdf5plugin zstd-N, lz4."),
        click.option("--split", "split_ratios", default="0.8,0.1,0.1", show_default=True,
                     callback=_split, help="train,val,test shares; each layout's split "
                                           "comes from a hash of its id."),
        click.option("--pack-workers", type=click.IntRange(min=1), default=default_pack_workers(),
                     show_default=True, help="Decoding processes."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("pack", short_help="Pack a raw folder into one HDF5 dataset.")
@click.argument("raw", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default="dataset.h5", show_default=True, help="HDF5 file to write.")
@pack_options
@click.option("--allow-label-mismatch", is_flag=True,
              help="Keep layouts whose appearances' tag maps differ (stores the first).")
@click.option("--overwrite", is_flag=True,
              help="Replace OUTPUT even if it is not a dataset of this raw folder's run.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@interrupted("Stopped. The dataset is written under a temporary name and renamed only when "
             "complete, so nothing was packed and an existing output is unchanged; run pack "
             "again to pack from the start.")
def pack_cmd(raw: Path, output: Path, num_classes: str, compression: str,
             split_ratios: tuple[float, float, float],
             pack_workers: int, allow_label_mismatch: bool, overwrite: bool,
             progress: bool) -> None:
    """Pack the complete layouts of RAW into one HDF5 file (schema v1).

    CARLA tags become trainIds with the table of the CARLA version in each layout's commit
    marker. The file is written under a temporary name and renamed when complete. An
    existing OUTPUT is replaced only if it was packed from the same run (or --overwrite).
    """
    summary = pack(raw, output, num_classes=int(num_classes), compression=compression,
                   split_ratios=split_ratios,
                   allow_label_mismatch=allow_label_mismatch, workers=pack_workers,
                   progress=progress, overwrite=overwrite)
    report_pack(summary)
