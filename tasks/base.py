"""What every task hands to the engine: tokenised splits plus the facts a model needs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

PAD_ID = 0  # every task pads with 0, as LRA does


@dataclass
class Split:
    """One split of a classification task, held as arrays (in memory or memory-mapped).

    tokens:  (N, L) integer ids, right-padded with PAD_ID up to the task's maximum length L;
             (N, 2, L) for a pair task (Retrieval), one row per document
    lengths: (N,) number of real positions per row (1..L), (N, 2) for a pair task; the padding
             mask comes from these, never from `tokens == 0`, because 0 is a real pixel value in
             the image tasks
    labels:  (N,) class ids 0..num_classes-1
    """

    tokens: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        # A pair split holds two documents per example: tokens (N, 2, L), lengths (N, 2).
        pair = self.tokens.ndim == 3
        tokens_ok = self.tokens.ndim == 2 or (pair and self.tokens.shape[1] == 2)
        lengths_shape = (n, 2) if pair else (n,)
        if not tokens_ok or len(self.tokens) != n or self.lengths.shape != lengths_shape:
            raise ValueError(
                f"inconsistent split: tokens {self.tokens.shape}, lengths {self.lengths.shape}, "
                f"labels {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_pair(self) -> bool:
        """True when every example is two documents (tokens (N, 2, L))."""
        return self.tokens.ndim == 3

    def majority_rate(self) -> float:
        """Fraction of the most frequent label: the accuracy of always guessing it."""
        if len(self.labels) == 0:
            return float("nan")
        return float(np.bincount(self.labels).max() / len(self.labels))


@dataclass
class TaskData:
    """A loaded task: its splits and the shape facts that size the model."""

    name: str
    splits: dict[str, Split]
    vocab_size: int
    num_classes: int
    max_length: int
    fingerprint: str
    # LRA's Text task validates on the test split (IMDB has no validation split); records flag it.
    validation_is_test: bool = False
    # Retrieval: each example is two documents, encoded by one shared encoder (two towers).
    pair: bool = False
    # Image, Pathfinder, Path-X: a token id is a gray level, so an intensity encoder applies.
    intensities: bool = False
    notes: dict = field(default_factory=dict)


def fingerprint_files(paths: list[Path], extra: str = "") -> str:
    """sha256 over the bytes of `paths` (in order) and `extra`; 16 hex digits."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def subset_rows(count: int, wanted: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of `wanted` rows out of `count` (all when None).
    Random, not the first rows: IMDB sources list all negative reviews before the positive."""
    if wanted is None or wanted >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:wanted])


@dataclass
class Source:
    """Where a task's examples come from, as found by `Task.find_source`.

    kind:        the loader's name for the form of the source ('official', 'parquet', ...).
    folder:      its folder, or None (a hub data set).
    fingerprint: what the cache key is made of (tasks/cache.py `source_fingerprint`, or a frozen
                 hub name): a changed source gives a fresh cache.
    description: what the run record notes as the source.
    """

    kind: str
    folder: Path | None
    fingerprint: str
    description: str


class Task:
    """A task loader: the one `load` every task shares (find the source -> build or read the
    cache -> TaskData), and the parts each task fills in.

    Class facts: `name`, `vocab_size` (padding included), `num_classes`, `pair` (two documents
    per example), `validation_is_test` (Text: IMDB has no validation split), `intensities` (a
    token id is a pixel's gray level: Image, Pathfinder, Path-X). Subclasses set
    `max_length` (tokens per example) and implement `find_source`, `cache_params` and
    `build_cache`; `arrange` may rename splits.
    """

    name: ClassVar[str]
    vocab_size: ClassVar[int]
    num_classes: ClassVar[int]
    pair: ClassVar[bool] = False
    validation_is_test: ClassVar[bool] = False
    intensities: ClassVar[bool] = False
    max_length: int

    def find_source(self, data_root: Path, progress: bool) -> Source:
        """The source to read, generating it first where the task allows; FileNotFoundError
        saying how to get the data when there is none."""
        raise NotImplementedError

    def cache_params(self) -> dict:
        """The preprocessing settings that, with the source, key the cache."""
        raise NotImplementedError

    def build_cache(self, builder, source: Source, data_root: Path, progress: bool) -> dict:
        """Writes every split into `builder` (tasks/cache.py CacheBuilder); returns notes for the
        record (e.g. skipped files) or {}."""
        raise NotImplementedError

    def arrange(self, splits: dict[str, Split]) -> dict[str, Split]:
        """The train / val / test splits the engine gets from the cached ones."""
        return splits

    def load(self, data_root: Path, progress: bool = True) -> TaskData:
        from tasks.cache import load_or_build  # cache.py imports Split from here

        data_root = Path(data_root)
        source = self.find_source(data_root, progress)
        notes = {"source": source.description}

        def build(builder) -> None:
            notes.update(self.build_cache(builder, source, data_root, progress) or {})

        splits, key = load_or_build(
            data_root, self.name, self.cache_params(), source.fingerprint, build
        )
        return TaskData(
            name=self.name,
            splits=self.arrange(splits),
            vocab_size=self.vocab_size,
            num_classes=self.num_classes,
            max_length=self.max_length,
            fingerprint=key,
            validation_is_test=self.validation_is_test,
            pair=self.pair,
            intensities=self.intensities,
            notes=notes,
        )
