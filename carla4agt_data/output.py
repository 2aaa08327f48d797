"""Writing a dataset file safely: never over another run's data, never over an input,
never half-written, and a plain message when the disk is full."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py

from .errors import UserError
from .fileio import atomic_path, sweep_stale_temporaries

_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXT = ("No space left", "errno = 28", "Disk quota", "errno = 122")
_TOO_LARGE_TEXT = ("File too large", "errno = 27")


def same_file(a: Path, b: Path) -> bool:
    """The same file or folder on disk, by device and inode (links and other spellings)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_replaceable(output: Path, run_id: str, overwrite: bool,
                      sources: Sequence[Path]) -> None:
    """Refuse an output that is one of the inputs, a folder, or an existing file that is not
    a dataset of this run (unless ``overwrite``)."""
    for source in sources:
        if same_file(output, source):
            raise UserError(f"{output} is also an input ({source}). Write to another file: "
                            "the output replaces what is there.")
    if output.is_dir():
        raise UserError(f"{output}: is a folder. Name the .h5 file to write, e.g. "
                        f"{output / 'dataset.h5'}.")
    if not output.exists() or overwrite:
        return
    owner = _run_id_of(output)
    if owner is not None and owner == run_id and run_id:
        return  # a dataset of this run: writing it again is the normal resume
    what = ("a dataset of another run" if owner is not None else
            "a file that is not a carla4agt dataset of this run")
    raise UserError(f"{output} already exists and is {what}. Nothing was written. Pass "
                    "--overwrite to replace it, or choose another output (-o).")


def _run_id_of(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "carla4agt":
                return None
            value = f.attrs.get("run_id", "")
            return value.decode() if isinstance(value, bytes) else str(value)
    except (OSError, ValueError, TypeError, UnicodeDecodeError):
        return None


def free_bytes(path: Path) -> int:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def free_space_check(output: Path, needed: int) -> None:
    """Refuse before writing when the disk clearly cannot hold ``needed`` bytes."""
    free = free_bytes(Path(output))
    if needed > free:
        raise UserError(disk_full_message(output, needed, free))


def disk_full_message(output: Path, needed: int, free: int | None = None) -> str:
    free = free_bytes(Path(output)) if free is None else free
    return (f"{output}: not enough disk space. Writing it needs about {mib(needed)} and "
            f"{Path(output).parent.resolve()} has {mib(free)} free. Nothing was written; free "
            "some space or choose another output.")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    return any(t in str(exc) for t in _FULL_TEXT)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


@contextlib.contextmanager
def h5_writing(output: Path, needed: int = 0) -> Iterator[h5py.File]:
    """An HDF5 file open for writing under a temporary name, renamed to ``output`` when the
    block succeeds; on any failure the temporary is removed. Temporaries of killed earlier
    runs (their process gone) are removed first. Errors name ``output``, not the temporary."""
    output = Path(output)
    sweep_stale_temporaries(output.parent if output.parent.exists() else Path("."),
                            output.name)
    with atomic_path(output) as tmp:
        try:
            # No chunk cache: every image is one whole chunk, written once, so the cache
            # gains nothing, and without it a full disk fails the write that hit it (a
            # clean error here) instead of the final flush (where HDF5 may crash).
            f = h5py.File(tmp, "w", rdcc_nbytes=0)
        except OSError as exc:
            raise UserError(f"{output}: cannot be written ({_first_line(exc)}). Check the "
                            "folder, its permissions and the free space.") from None
        try:
            yield f
        except BaseException as exc:
            with contextlib.suppress(Exception):
                f.close()
            _raise_if_full(exc, output, needed)
            raise  # errors of reading the inputs name those inputs themselves
        try:
            f.close()
        except (OSError, RuntimeError) as exc:
            _raise_if_full(exc, output, needed)
            raise UserError(f"{output}: cannot be written ({_first_line(exc)}). Check the "
                            "folder, its permissions and the free space.") from None


def _raise_if_full(exc: BaseException, output: Path, needed: int) -> None:
    """A write refused for space (or a file size limit) as one message naming ``output``."""
    if not isinstance(exc, (OSError, RuntimeError)):
        return
    if is_disk_full(exc):
        raise UserError(disk_full_message(output, needed)) from None
    if getattr(exc, "errno", None) == errno.EFBIG or any(t in str(exc) for t in _TOO_LARGE_TEXT):
        raise UserError(f"{output}: the file system refused to make it larger (a file size "
                        f"limit; it needs about {mib(needed)}). Nothing was written; write it "
                        "to another file system, or raise the limit (ulimit -f).") from None


def _first_line(exc: BaseException) -> str:
    """HDF5 messages carry a page of internals (and our temporary's name): keep the gist."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split("(")[0].strip() or type(exc).__name__
