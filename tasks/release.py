"""The official LRA archive (`lra_release.gz`, Tay et al., 2021) and where every data set lives.

Layout under data_root (`data/` or $LRA_DATA), where the loaders look:

    <data_root>/
      lra_release/                  `lra-bench data import lra_release.gz --out <data_root>`
        listops-1000/basic_{train,val,test}.tsv
        tsv_data/new_aan_pairs.{train,eval,test}.tsv
        pathfinder{32,64,128,256}/curv_{baseline,contour_length_9,contour_length_14}/
          imgs/<k>/sample_<i>.png  metadata/<k>.npy (text)
      text/aclImdb/  or  text/{train,test}-*.parquet    IMDB, when not read from Hugging Face
      image/cifar-10-batches-py/                        CIFAR-10 pickles, ditto
      hf/                           Hugging Face `datasets` cache
      listops/generated-<id>/  pathfinder/generated-<id>/     generated data
      cache/<task>/<key>/           preprocessed splits (tasks/cache.py)

The archive is a gzipped tar despite its name. Its copy of the data that everybody uses is the
nested `lra_release/lra_release/`; the outer level repeats `listops-1000` and `pathfinder128`
(LRA issue #38). `import_release` keeps the nested copy and drops an outer folder that the
nested level also has.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import sys
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

RELEASE_DIR = "lra_release"
LISTOPS_DIR = "listops-1000"
AAN_DIR = "tsv_data"


def release_root(data_root: Path) -> Path:
    """Where `lra-bench data import` puts the archive's content."""
    return Path(data_root) / RELEASE_DIR


IMPORT_HINT = "import the official archive with `lra-bench data import lra_release.gz --out {root}`"


@dataclass
class ImportSummary:
    destination: Path
    files: int = 0
    bytes: int = 0
    dropped_duplicates: list[str] = field(default_factory=list)


class _CountingReader:
    """A file wrapper that reports how many compressed bytes were read (for the progress bar)."""

    def __init__(self, handle, progress) -> None:
        self.handle, self.progress = handle, progress

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.progress(len(data))
        return data


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be extracted, or None when it is a plain file or folder with a
    relative name that stays inside the destination."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):  # POSIX or Windows drive
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "path with '..'"
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r}"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or folder"
    return None


def _relative_name(name: str) -> tuple[str, PurePosixPath]:
    """('inner' | 'outer', path below that level) of an archive member name."""
    parts = PurePosixPath(name).parts
    if parts[:1] == (".",):
        parts = parts[1:]
    if parts[:2] == (RELEASE_DIR, RELEASE_DIR):
        return "inner", PurePosixPath(*parts[2:])
    if parts[:1] == (RELEASE_DIR,):
        return "outer", PurePosixPath(*parts[1:])
    return "outer", PurePosixPath(*parts)


def import_release(
    archive: Path, out: Path, replace: bool = False, progress: bool = True
) -> ImportSummary:
    """Unpacks the official archive into `<out>/lra_release/`.

    Reads the archive once, as a stream (it is several GB). Every member is checked before it is
    written: an absolute name, a `..` component, a symbolic or hard link, or a device is refused
    with a ValueError naming the member, and tarfile's own `data_filter` (PEP 706) must pass it
    too. Members are written into a private staging folder that is renamed into place only when
    the whole archive was read, so a refused or broken archive leaves `out` exactly as it was. A
    file that is not a gzipped (or plain) tar, or one cut short, is a ValueError naming it.
    """
    from tqdm import tqdm

    archive, out = Path(archive), Path(out)
    destination = release_root(out)
    if destination.exists() and not replace:
        raise FileExistsError(f"{destination} exists; remove it or pass --replace")
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{RELEASE_DIR}.import-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    summary = ImportSummary(destination=destination)
    bar = tqdm(
        total=archive.stat().st_size,
        desc=f"importing {archive.name}",
        unit="B",
        unit_scale=True,
        disable=not progress,
        file=sys.stderr,
    )
    try:
        with bar, open(archive, "rb") as raw:
            reader = _CountingReader(raw, bar.update)
            with _named_archive_errors(archive), tarfile.open(fileobj=reader, mode="r|*") as tar:
                for member in tar:
                    problem = member_problem(member) or _filter_problem(member, staging)
                    if problem:
                        raise ValueError(
                            f"{archive}: refusing archive member {member.name!r} ({problem}); "
                            "nothing was imported"
                        )
                    level, relative = _relative_name(member.name)
                    target = staging / level / relative
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    with open(target, "wb") as handle:
                        shutil.copyfileobj(source, handle, 1 << 20)
                    summary.files += 1
                    summary.bytes += member.size
        _merge_levels(staging, summary)
        if destination.exists():  # --replace: swap in the new copy, then drop the old one
            old = out / f".{RELEASE_DIR}.old-{os.getpid()}"
            os.replace(destination, old)
            os.replace(staging / "inner", destination)
            shutil.rmtree(old)
        else:
            os.replace(staging / "inner", destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _filter_problem(member: tarfile.TarInfo, staging: Path) -> str | None:
    """What tarfile's `data_filter` (the safe extraction policy of PEP 706) finds wrong with a
    member, as a second opinion beside `member_problem`."""
    try:
        tarfile.data_filter(member, str(staging))
    except tarfile.FilterError as error:
        return f"tarfile's data filter: {error}"
    return None


@contextlib.contextmanager
def _named_archive_errors(archive: Path) -> Iterator[None]:
    """Turns what a damaged or foreign archive raises while it is read (not a tar, a truncated
    gzip stream, a bad block) into one ValueError that names the archive."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(
            f"{archive}: not a readable (gzipped) tar archive, or cut short "
            f"({type(error).__name__}: {error}); nothing was imported"
        ) from None


def _merge_levels(staging: Path, summary: ImportSummary) -> None:
    """Moves outer-level folders into the nested copy unless it has them already (duplicates)."""
    inner, outer = staging / "inner", staging / "outer"
    inner.mkdir(exist_ok=True)
    if not outer.exists():
        return
    for entry in sorted(outer.iterdir()):
        if (inner / entry.name).exists():
            summary.dropped_duplicates.append(entry.name)
            continue
        os.replace(entry, inner / entry.name)
