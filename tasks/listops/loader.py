"""ListOps (LRA section 2.1): reading the official TSV files, and generating them when absent.

Tokenisation is LRA's (after commit c209b2a): drop `(` and `)`, rename `]` to `X`, split on
whitespace. The vocabulary is fixed rather than read from the data (LRA built it from the
validation set in `set()` order, so its ids changed between runs): padding 0, then the 15
symbols below as ids 1..15. A token outside them is an error naming the file and line.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tasks.base import PAD_ID, Source, Split, Task
from tasks.cache import source_fingerprint
from tasks.files import staged_folder
from tasks.listops.generator import SPLIT_FILES, ListOpsParams, write_listops

SYMBOLS = ("[MIN", "[MAX", "[MED", "[SM", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "X")
TOKEN_IDS = {symbol: index + 1 for index, symbol in enumerate(SYMBOLS)}
VOCAB_SIZE = len(SYMBOLS) + 1  # + padding
NUM_CLASSES = 10

# Each symbol becomes one character, so a row tokenises with str/bytes operations and one table
# look-up instead of a dict look-up per token (the full train file has ~96M tokens).
_OPERATOR_CHARS = {"[MIN": "a", "[MAX": "b", "[MED": "c", "[SM": "d"}
_STRIP = str.maketrans({"(": None, ")": None, "]": "X"})
_CHAR_TO_ID = np.zeros(256, dtype=np.int16)
for _symbol, _char in [*_OPERATOR_CHARS.items(), *((d, d) for d in "0123456789X")]:
    _CHAR_TO_ID[ord(_char)] = TOKEN_IDS[_symbol]


def tokenize(source: str) -> list[str]:
    """LRA's ListOps tokens of one `Source` string."""
    return source.translate(_STRIP).split()


def encode(source: str) -> np.ndarray:
    """(T,) int16 token ids of one `Source` string; ValueError on an unknown token."""
    tokens = tokenize(source)
    text = " ".join(tokens)
    for operator, char in _OPERATOR_CHARS.items():
        text = text.replace(operator, char)
    compact = text.replace(" ", "")
    raw = np.frombuffer(compact.encode("utf-8"), dtype=np.uint8)
    ids = _CHAR_TO_ID[raw]
    if len(raw) != len(tokens) or not ids.all():
        unknown = sorted({t for t in tokens if t not in TOKEN_IDS})
        raise ValueError(f"unknown token(s) {unknown[:5]}")
    return ids


def read_listops_tsv(path: Path, max_length: int) -> Split:
    """Reads one official ListOps TSV (`Source<TAB>Target` header) into a Split.

    Rows are truncated to `max_length` tokens and padded with 0. A malformed row raises
    ValueError naming `path` and the line number.
    """
    path = Path(path)
    rows: list[np.ndarray] = []
    labels: list[int] = []
    with open(path, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header != ["Source", "Target"]:
            raise ValueError(f"{path}:1: expected header 'Source<TAB>Target', found {header!r}")
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected 2 tab-separated fields, got {len(row)}")
            source, target = row
            try:
                label = int(target)
            except ValueError:
                raise ValueError(f"{path}:{line}: target {target!r} is not an integer") from None
            if not 0 <= label < NUM_CLASSES:
                raise ValueError(f"{path}:{line}: target {label} outside 0..{NUM_CLASSES - 1}")
            try:
                ids = encode(source)
            except ValueError as error:
                raise ValueError(f"{path}:{line}: {error}") from None
            if len(ids) == 0:
                raise ValueError(f"{path}:{line}: empty source")
            rows.append(ids[:max_length])
            labels.append(label)
    tokens = np.full((len(rows), max_length), PAD_ID, dtype=np.int16)
    lengths = np.zeros(len(rows), dtype=np.int64)
    for index, ids in enumerate(rows):
        tokens[index, : len(ids)] = ids
        lengths[index] = len(ids)
    return Split(tokens=tokens, lengths=lengths, labels=np.asarray(labels, dtype=np.int64))


class ListOps(Task):
    """The ListOps task. Reads `data_dir` (an official `listops-1000` folder) when given;
    otherwise generates data with `generator` settings into `<data_root>/listops/generated-<id>`
    the first time and reads it from there afterwards.

    max_length: tokens kept per example (LRA: 2000).
    generator:  ListOpsParams fields (split sizes, length bounds, depth, arity, seed).
    workers:    processes used when generating.
    """

    name = "listops"
    vocab_size = VOCAB_SIZE
    num_classes = NUM_CLASSES

    def __init__(
        self,
        max_length: int = 2000,
        data_dir: str | None = None,
        generator: dict | None = None,
        workers: int = 2,
    ) -> None:
        self.max_length = int(max_length)
        self.data_dir = Path(data_dir) if data_dir else None
        self.generator = ListOpsParams(**(generator or {}))
        self.workers = workers

    def locate(self, data_root: Path, progress: bool = True) -> Path:
        """The folder holding the three TSV files, generating it first if needed."""
        if self.data_dir is not None:
            missing = [n for n in SPLIT_FILES.values() if not (self.data_dir / n).exists()]
            if missing:
                raise FileNotFoundError(
                    f"ListOps data_dir {self.data_dir} lacks {', '.join(missing)}; import the "
                    "official archive with `lra-bench data import lra_release.gz --out DIR`, or "
                    "set task.data.data_dir=null to generate the data"
                )
            return self.data_dir
        folder = Path(data_root) / "listops" / f"generated-{self.generator.digest()}"
        if all((folder / name).exists() for name in SPLIT_FILES.values()):
            return folder
        # Generated in a private folder and renamed into place: a half-written folder is never
        # mistaken for data, and two processes generating at once cannot mix files.
        bar = tqdm(
            total=self.generator.total,
            desc="generating ListOps",
            unit="ex",
            disable=not progress,
            file=sys.stderr,
        )
        with bar, staged_folder(folder) as staging:
            write_listops(staging, self.generator, workers=self.workers, progress=bar.update)
            (staging / "generator.txt").write_text(
                "".join(f"{k}: {v}\n" for k, v in asdict(self.generator).items())
            )
        return folder

    def find_source(self, data_root: Path, progress: bool) -> Source:
        folder = self.locate(data_root, progress)
        paths = [folder / name for name in SPLIT_FILES.values()]
        return Source("tsv", folder, source_fingerprint(paths, folder), str(folder))

    def cache_params(self) -> dict:
        return {"max_length": self.max_length, "symbols": list(SYMBOLS)}

    def build_cache(self, builder, source: Source, data_root: Path, progress: bool) -> dict:
        # Tokenising the 96k training rows takes seconds; the cache makes later loads a mmap.
        for split, name in SPLIT_FILES.items():
            builder.put(split, read_listops_tsv(source.folder / name, self.max_length))
        return {}
