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

meta.json records each array file's size and sha256. Every load checks them, and that the arrays
open with the shapes meta.json gives (`verify_cache`): a cache that does not verify (a truncated
array, a garbage meta.json, labels edited by hand) is named, discarded and rebuilt. Hashing reads
each array once per process (about 1 s per GB); builds and discards of one key take a lock
(`cache/.locks/<task>-<key>.lock`), so that concurrent runs build a missing cache once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from filelock import FileLock

from tasks.base import Split
from tasks.files import staged_folder

# Bump when the on-disk layout or the meaning of cached arrays changes: every cache rebuilds.
# 3: meta.json holds each array file's size and sha256.
CACHE_FORMAT = 3
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


class CacheInvalid(ValueError):
    """A cache folder that does not verify; the message names the file and what is wrong."""


# (path, size, mtime_ns) of array files whose sha256 this process has already checked.
_verified: set[tuple[str, int, int]] = set()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def describe_files(folder: Path, names: Iterable[str]) -> dict[str, dict]:
    """{file name: {"bytes", "sha256"}}, what meta.json records of the arrays of a build."""
    return {
        name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
        for name in names
    }


def read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CacheInvalid(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheInvalid(f"{path} is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise CacheInvalid(f"{path} holds a {type(meta).__name__}, not an object")
    if meta.get("format") != CACHE_FORMAT:
        raise CacheInvalid(f"{path}: format {meta.get('format')!r}, expected {CACHE_FORMAT}")
    for name, kind in (("order", list), ("splits", dict), ("files", dict)):
        if not isinstance(meta.get(name), kind):
            raise CacheInvalid(f"{path}: '{name}' is missing or not a {kind.__name__}")
    return meta


def verify_file(path: Path, expected: object) -> None:
    """Size and sha256 of one array file against what meta.json says of it."""
    if not isinstance(expected, dict) or not {"bytes", "sha256"} <= set(expected):
        raise CacheInvalid(f"{path.parent / 'meta.json'} does not describe {path.name}")
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise CacheInvalid(f"{path} is missing") from None
    if stat.st_size != expected["bytes"]:
        raise CacheInvalid(
            f"{path} has {stat.st_size} bytes; the build wrote {expected['bytes']} (truncated?)"
        )
    seen = (str(path), stat.st_size, stat.st_mtime_ns)
    if seen in _verified:
        return
    if file_sha256(path) != expected["sha256"]:
        raise CacheInvalid(f"{path}: content differs from the sha256 the build wrote (changed?)")
    _verified.add(seen)


def read_cache(folder: Path) -> dict[str, Split]:
    """The splits of a complete cache folder, memory-mapped read-only, after checking them
    against meta.json (sizes, checksums, shapes); CacheInvalid naming the file otherwise."""
    meta = read_meta(folder)
    splits = {}
    for split in meta["order"]:
        arrays = []
        for name in ARRAYS:
            path = folder / f"{split}.{name}.npy"
            verify_file(path, meta["files"].get(path.name))
            try:
                arrays.append(np.load(path, mmap_mode="r"))
            except (OSError, ValueError) as error:
                raise CacheInvalid(f"{path} does not open as an array ({error})") from None
        rows = meta["splits"].get(split)
        if len(arrays[2]) != rows:
            raise CacheInvalid(f"{folder}: split {split} has {len(arrays[2])} rows, meta {rows}")
        try:
            splits[split] = Split(*arrays)
        except ValueError as error:
            raise CacheInvalid(f"{folder}: split {split}: {error}") from None
    return splits


def load_or_build(
    data_root: Path,
    task: str,
    params: dict,
    source: str,
    build: Callable[[CacheBuilder], None],
) -> tuple[dict[str, Split], str]:
    """The cached splits of (task, params, source), building them first when absent, and
    rebuilding them when the cache does not verify (said in one line naming the file).

    params: every preprocessing setting the arrays depend on (JSON-serialisable).
    source: a fingerprint of the source data (`source_fingerprint`, or a dataset's own).
    build:  fills a CacheBuilder (one writer per split); runs only on a cache miss.
    Returns (splits, key); the key doubles as the data fingerprint of a run record.
    """
    key = cache_key(task, params, source)
    folder = Path(data_root) / "cache" / task / key
    if folder.exists():
        try:
            return read_cache(folder), key
        except CacheInvalid:
            pass  # decided again under the lock: another process may be rebuilding it
    folder.parent.mkdir(parents=True, exist_ok=True)
    locks = Path(data_root) / "cache" / ".locks"
    locks.mkdir(exist_ok=True)
    with FileLock(locks / f"{task}-{key}.lock"):
        if folder.exists():
            try:
                return read_cache(folder), key
            except CacheInvalid as problem:
                print(f"cache does not verify: {problem}; discarding {folder}", file=sys.stderr)
                _discard(folder)
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
                "files": describe_files(
                    staging, [f"{split}.{name}.npy" for split in sizes for name in ARRAYS]
                ),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return read_cache(folder), key


def _discard(folder: Path) -> None:
    """Moves a cache folder out of the way in one rename (a reader never sees half of it), then
    deletes it. Readers that mapped its arrays keep them until they close them."""
    trash = folder.with_name(f".{folder.name}.discarded-{os.getpid()}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


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
