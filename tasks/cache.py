"""Preprocessed splits cached on disk as memory-mapped .npy arrays.

Tokenising a task once can take minutes (the 8.5 GB AAN training file, 200k Pathfinder PNGs);
reading the cache back is a memory map, so the second load is near-instant and a split larger
than memory is never read whole.

Layout, one folder per cache key:

    <data_root>/cache/<task>/<key>/
        meta.json                 what the key was made of, split sizes
        <split>.tokens.npy        (N, L) ids, or (N, 2, L) for a pair task
        <split>.lengths.npy       (N,) or (N, 2)
        <split>.labels.npy        (N,)

The key is a hash of the task name, its preprocessing parameters, a fingerprint of its source
files (`source_fingerprint`) and CACHE_FORMAT. A changed source or parameter therefore gives a new
key and a fresh build; the old folder is never read again. A build writes into a temporary
sibling folder (`.<key>.tmp-<host>-<pid>`) and renames it into place only when complete, so a
reader sees a whole cache or none. Leftover temporary folders (a killed build) are never read;
the next build of the same key removes those its own machine left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from tasks.base import Split
from tasks.files import staged_folder

# Bump when the on-disk layout or the meaning of cached arrays changes: every cache rebuilds.
CACHE_FORMAT = 2
# Files up to this size are hashed whole; larger ones by their first and last HEAD_BYTES.
SMALL_FILE_BYTES = 4 << 20
HEAD_BYTES = 1 << 20
ARRAYS = ("tokens", "lengths", "labels")


def source_fingerprint(files: Iterable[Path], root: Path, read_content: bool = True) -> str:
    """A 16-hex-digit fingerprint of source files that is cheap enough to compute at every load.

    Per file (sorted by path relative to `root`, so moving the whole data folder keeps it): the
    relative path, the size, the modification time in ns, and, when `read_content`, a sha256 of
    the content (whole for files up to 4 MiB, else the first and last MiB: an 8.5 GB file costs
    2 MiB of reading). `read_content=False` (size and mtime only) is for folders of hundreds of
    thousands of small images, where opening every file would cost more than the cache saves.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(Path(f) for f in files):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0".encode())
        digest.update(f"{stat.st_mtime_ns}\0".encode())
        if read_content:
            digest.update(_content_digest(path, stat.st_size))
    return digest.hexdigest()[:16]


def _content_digest(path: Path, size: int) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= SMALL_FILE_BYTES:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        else:
            digest.update(handle.read(HEAD_BYTES))
            handle.seek(size - HEAD_BYTES)
            digest.update(handle.read(HEAD_BYTES))
    return digest.digest()


class NpyRowWriter:
    """Writes a .npy file row block by row block, when the row count is known only at the end.

    The file starts with a fixed 256-byte header area; `close` writes the real header (shape with
    the final row count) into it. The header is a valid .npy 1.0 header padded with spaces, so
    `np.load(..., mmap_mode="r")` reads the file as usual, and the data start 64-byte aligned.
    """

    HEADER_BYTES = 256

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = Path(path)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file = open(self.path, "wb")
        self._file.write(b"\0" * self.HEADER_BYTES)

    def append(self, block: np.ndarray) -> None:
        """block: (n, *row_shape), cast to the writer's dtype (values must fit)."""
        block = np.asarray(block)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows {block.shape[1:]}, expected {self.row_shape}")
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        header = repr(
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (self.rows, *self.row_shape),
            }
        ).encode("latin1")
        # magic (6) + version (2) + header length (2) + header, space-padded, ending in "\n"
        room = self.HEADER_BYTES - 10
        if len(header) + 1 > room:
            raise ValueError(f"{self.path.name}: .npy header too long for shape {self.row_shape}")
        header = header + b" " * (room - len(header) - 1) + b"\n"
        self._file.seek(0)
        self._file.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + header)
        self._file.close()


class SplitWriter:
    """Appends examples of one split to its three .npy files.

    row_shape: (L,) for single sequences, (2, L) for pairs; lengths then have shape (n,) or
    (n, 2). token_dtype: the smallest integer type that holds the vocabulary (uint8 for pixels,
    int16 for bytes and ListOps)."""

    def __init__(self, folder: Path, split: str, row_shape: tuple[int, ...], token_dtype) -> None:
        self.tokens = NpyRowWriter(folder / f"{split}.tokens.npy", row_shape, token_dtype)
        self.lengths = NpyRowWriter(folder / f"{split}.lengths.npy", row_shape[:-1], np.int32)
        self.labels = NpyRowWriter(folder / f"{split}.labels.npy", (), np.int64)

    def append(self, tokens: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> None:
        """tokens (n, *row_shape), lengths (n, *row_shape[:-1]), labels (n,)."""
        if not len(tokens) == len(lengths) == len(labels):
            raise ValueError(
                f"{len(tokens)} token rows, {len(lengths)} lengths, {len(labels)} labels"
            )
        self.tokens.append(tokens)
        self.lengths.append(lengths)
        self.labels.append(labels)

    def close(self) -> int:
        for writer in (self.tokens, self.lengths, self.labels):
            writer.close()
        return self.labels.rows


class CacheBuilder:
    """Handed to a task's build function: opens one SplitWriter per split, or stores a whole
    in-memory Split at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, SplitWriter] = {}

    def writer(self, split: str, row_shape: tuple[int, ...], token_dtype) -> SplitWriter:
        if split in self.writers:
            raise ValueError(f"split {split!r} written twice")
        self.writers[split] = SplitWriter(self.folder, split, row_shape, token_dtype)
        return self.writers[split]

    def put(self, split: str, data: Split) -> None:
        writer = self.writer(split, data.tokens.shape[1:], data.tokens.dtype)
        writer.append(data.tokens, data.lengths, data.labels)

    def close(self) -> dict[str, int]:
        return {split: writer.close() for split, writer in self.writers.items()}


def cache_key(task: str, params: dict, source: str) -> str:
    """16 hex digits identifying (task, preprocessing parameters, source fingerprint, format)."""
    identity = {"task": task, "params": params, "source": source, "format": CACHE_FORMAT}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def read_cache(folder: Path) -> dict[str, Split]:
    """The splits of a complete cache folder, memory-mapped read-only."""
    meta = json.loads((folder / "meta.json").read_text())
    return {
        split: Split(*(np.load(folder / f"{split}.{name}.npy", mmap_mode="r") for name in ARRAYS))
        for split in meta["order"]
    }


def load_or_build(
    data_root: Path,
    task: str,
    params: dict,
    source: str,
    build: Callable[[CacheBuilder], None],
) -> tuple[dict[str, Split], str]:
    """The cached splits of (task, params, source), building them first when absent.

    params: every preprocessing setting the arrays depend on (JSON-serialisable).
    source: a fingerprint of the source data (`source_fingerprint`, or a dataset's own).
    build:  fills a CacheBuilder (one writer per split); runs only on a cache miss.
    Returns (splits, key); the key doubles as the data fingerprint of a run record.
    """
    key = cache_key(task, params, source)
    folder = Path(data_root) / "cache" / task / key
    if (folder / "meta.json").exists():
        return read_cache(folder), key
    if folder.exists():  # a folder without meta.json was not made by a build; never trust it
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace("-", "_")
    _remove_stale_builds(folder, host)
    with staged_folder(folder, tag=f"{host}-") as staging:
        builder = CacheBuilder(staging)
        build(builder)
        sizes = builder.close()
        meta = {
            "task": task,
            "params": params,
            "source": source,
            "format": CACHE_FORMAT,
            "splits": sizes,
            "order": list(sizes),  # the build's split order (sort_keys sorts the keys above)
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return read_cache(folder), key


def _remove_stale_builds(folder: Path, host: str) -> None:
    """Removes temporary folders of builds of this key that died on this machine (their process
    no longer exists). Folders of other machines (a shared file system) are left alone."""
    for leftover in folder.parent.glob(f".{folder.name}.tmp-{host}-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
