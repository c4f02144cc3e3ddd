"""Text: byte-level IMDB sentiment classification (LRA section 2.2).

Data: the Large Movie Review Dataset (Maas et al., 2011, "Learning Word Vectors for Sentiment
Analysis"), 25k train and 25k test reviews, labels neg = 0, pos = 1. LRA reads it from TFDS
`imdb_reviews`, whose text is the review file's bytes with `.strip()`; we apply the same strip to
every source, so the ids do not depend on where the reviews came from. Encoding: UTF-8 bytes + 1,
padding 0 (tasks/bytes.py), truncated to `max_length` (4000 in the LRA paper; 1000 in the LRA
repo config). IMDB has no validation split: LRA validates on test, and so do we
(`TaskData.validation_is_test`, recorded with every run).

Sources, tried in this order when `source: auto`:
1. `data_dir`, or `<data_root>/text/aclImdb`: the original `aclImdb` folder
   (train/{pos,neg}/*.txt, test/{pos,neg}/*.txt; train/unsup is not used);
2. `data_dir`, or `<data_root>/text/`: Hugging Face parquet files `train-*.parquet` and
   `test-*.parquet` (columns text, label), read through `datasets.load_dataset("parquet")`;
3. the Hugging Face hub: `datasets.load_dataset("stanfordnlp/imdb")`, cached under
   `<data_root>/hf` (needs network access the first time).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tasks.base import Source, Split, Task, subset_rows
from tasks.bytes import BYTE_VOCAB_SIZE, TOKEN_DTYPE, encode_documents
from tasks.cache import source_fingerprint

NUM_CLASSES = 2
LABELS = {"neg": 0, "pos": 1}
SPLITS = ("train", "test")
SOURCES = ("auto", "aclimdb", "parquet", "huggingface")
CHUNK = 2048  # reviews encoded and written per block


def aclimdb_files(folder: Path, split: str) -> tuple[list[Path], list[int]]:
    """Review files of one split of an `aclImdb` folder and their labels, neg then pos, each
    sorted by name (a stable order; training shuffles anyway)."""
    files, labels = [], []
    for name, label in LABELS.items():
        found = sorted((Path(folder) / split / name).glob("*.txt"))
        files += found
        labels += [label] * len(found)
    return files, labels


def parquet_files(folder: Path) -> dict[str, list[Path]]:
    """{split: parquet files} under `folder` (searched recursively, as the hub lays them out)."""
    return {split: sorted(Path(folder).rglob(f"{split}-*.parquet")) for split in SPLITS}


class Text(Task):
    """The Text task. See the module docstring for the sources.

    max_length:  bytes kept per review (LRA paper: 4000).
    source:      auto | aclimdb | parquet | huggingface.
    data_dir:    an aclImdb folder or a folder of parquet files; null = look under data_root.
    hf_name:     the hub dataset for `huggingface` (and `auto` when nothing local is found).
    examples:    {train: n, test: n}: a seeded random subset (mini and smoke profiles);
                 null or a missing split keeps everything.
    subset_seed: seed of that subset (the data's, not the run's).
    """

    name = "text"
    vocab_size = BYTE_VOCAB_SIZE
    num_classes = NUM_CLASSES
    validation_is_test = True

    def __init__(
        self,
        max_length: int = 4000,
        source: str = "auto",
        data_dir: str | None = None,
        hf_name: str = "stanfordnlp/imdb",
        examples: dict | None = None,
        subset_seed: int = 0,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"task.data.source={source!r}; choose from {SOURCES}")
        self.max_length = int(max_length)
        self.source = source
        self.data_dir = Path(data_dir) if data_dir else None
        self.hf_name = hf_name
        self.examples = dict(examples or {})
        self.subset_seed = int(subset_seed)

    def resolve(self, data_root: Path) -> tuple[str, Path | None]:
        """(kind, folder) of the source to read: ('aclimdb', folder), ('parquet', folder) or
        ('huggingface', None)."""
        folders = [self.data_dir] if self.data_dir else [data_root / "text" / "aclImdb"]
        if not self.data_dir:
            folders.append(data_root / "text")
        if self.source in ("auto", "aclimdb"):
            for folder in folders:
                if (folder / "train" / "pos").is_dir() and (folder / "test" / "neg").is_dir():
                    return "aclimdb", folder
        if self.source in ("auto", "parquet"):
            for folder in folders:
                if folder.is_dir() and all(parquet_files(folder).values()):
                    return "parquet", folder
        if self.source == "huggingface" or (self.source == "auto" and not self.data_dir):
            return "huggingface", None
        raise FileNotFoundError(self._missing_message(data_root))

    def _missing_message(self, data_root: Path) -> str:
        return (
            f"IMDB not found (task.data.source={self.source}, data_dir={self.data_dir}). Fix: "
            f"extract aclImdb_v1.tar.gz (https://ai.stanford.edu/~amaas/data/sentiment/) to "
            f"{data_root / 'text' / 'aclImdb'}; or put the parquet files of "
            f"huggingface.co/datasets/{self.hf_name} (train-*.parquet, test-*.parquet) under "
            f"{data_root / 'text'}; or allow the download: task.data.source=huggingface with "
            "network access"
        )

    def _load_hf(self, data_root: Path, kind: str, folder: Path | None):
        """The DatasetDict of a parquet folder or of the hub dataset."""
        import datasets

        cache_dir = str(Path(data_root) / "hf")
        if kind == "parquet":
            files = {
                split: [str(p) for p in paths] for split, paths in parquet_files(folder).items()
            }
            return datasets.load_dataset("parquet", data_files=files, cache_dir=cache_dir)
        try:
            return datasets.load_dataset(self.hf_name, cache_dir=cache_dir)
        except Exception as error:  # offline, unknown name, ...: say how to get the data
            raise FileNotFoundError(
                f"{self._missing_message(data_root)} (load_dataset({self.hf_name!r}) failed: "
                f"{type(error).__name__}: {error})"
            ) from error

    def find_source(self, data_root: Path, progress: bool) -> Source:
        kind, folder = self.resolve(data_root)
        if kind == "aclimdb":
            files = {split: aclimdb_files(folder, split) for split in SPLITS}
            every_file = [path for paths, _ in files.values() for path in paths]
            # 50k small files: size and mtime only; reading them all would cost a second per load
            fingerprint = "aclimdb:" + source_fingerprint(every_file, folder, read_content=False)
        elif kind == "parquet":
            every_file = [p for paths in parquet_files(folder).values() for p in paths]
            fingerprint = "parquet:" + source_fingerprint(every_file, folder)
        else:
            # Hub data sets are frozen by name: keyed by the name alone, a cached copy loads
            # without asking the hub (offline nodes, no 25 s of connection retries).
            fingerprint = f"hf:{self.hf_name}"
        return Source(kind, folder, fingerprint, f"{kind}:{folder or self.hf_name}")

    def cache_params(self) -> dict:
        return {
            "max_length": self.max_length,
            "examples": {split: self.examples.get(split) for split in SPLITS},
            "subset_seed": self.subset_seed,
            "encoding": "utf8-bytes+1, stripped",
        }

    def build_cache(self, builder, source: Source, data_root: Path, progress: bool) -> dict:
        kind, folder = source.kind, source.folder
        dataset = None if kind == "aclimdb" else self._load_hf(data_root, kind, folder)
        for split in SPLITS:
            writer = builder.writer(split, (self.max_length,), TOKEN_DTYPE)
            for texts, labels in self._reviews(split, kind, folder, dataset, progress):
                tokens, lengths = encode_documents([t.strip() for t in texts], self.max_length)
                if not lengths.all():
                    raise ValueError(f"IMDB {split}: an empty review in {kind}:{folder}")
                writer.append(tokens, lengths, np.asarray(labels, dtype=np.int64))
        return {}

    def arrange(self, splits: dict[str, Split]) -> dict[str, Split]:
        test = splits["test"]  # LRA validates on test: IMDB has no validation split
        return {"train": splits["train"], "val": test, "test": test}

    def _reviews(self, split, kind, folder, dataset, progress):
        """Yields (review bytes, labels) blocks of one split, subset applied."""
        if kind == "aclimdb":
            files, labels = aclimdb_files(folder, split)
            rows = subset_rows(len(files), self.examples.get(split), self.subset_seed)
        else:
            part = dataset[split]
            rows = subset_rows(len(part), self.examples.get(split), self.subset_seed)
        bar = tqdm(
            total=len(rows),
            desc=f"encoding IMDB {split}",
            unit="review",
            disable=not progress,
            file=sys.stderr,
        )
        with bar:
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start : start + CHUNK]
                if kind == "aclimdb":
                    texts = [files[i].read_bytes() for i in chunk]
                    block_labels = [labels[i] for i in chunk]
                else:
                    block = part.select(chunk)
                    texts = [t.encode("utf-8") for t in block["text"]]
                    block_labels = list(block["label"])
                bar.update(len(chunk))
                yield texts, block_labels
