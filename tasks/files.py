"""Writing files and folders so that readers see the old version or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path: Path, durable: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix, so writers that infer the format from
    it still work); when the block ends without error the temporary file is renamed onto `path`,
    otherwise it is removed and `path` is left untouched.

    durable: the new content is flushed to the disk (fsync) before the rename and the rename
    after it, so that a power loss or a killed machine leaves the old file or the new one,
    never an empty or partial one (what checkpoints and run records need)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flushes a written file, or a folder's entries (a rename in it), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def staged_folder(folder: Path, tag: str = "") -> Iterator[Path]:
    """Yields an empty private folder beside `folder` (`.<name>.tmp-<tag><pid>`) to fill; when
    the block ends without error it is renamed onto `folder`, so a half-written folder is never
    mistaken for a finished one. If another process renamed its own equivalent folder into place
    first, that one is kept. On error the private folder is removed."""
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.tmp-{tag}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished first; its content is equivalent
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
