"""Retrieval: byte-level document matching on the ACL Anthology Network (LRA section 2.3).

Data: citation pairs from the AAN corpus (Radev et al., 2013, "The ACL Anthology Network
corpus"), as shipped in the LRA archive: `tsv_data/new_aan_pairs.{train,eval,test}.tsv`,
147,086 / 18,090 / 17,437 pairs. Each line (no header, no quoting) is
`label<TAB>id1<TAB>id2<TAB>text1<TAB>text2`; the label may be written as a float ("1.0"):
1 = one paper cites the other, 0 = not.

Encoding (LRA `matching/input_pipeline.py`): each document's first 10,000 bytes are encoded as
bytes + 1 (tasks/bytes.py), then truncated to `max_length` (4000). Both documents are stored per
example (tokens (N, 2, L)); the model encodes each with one shared encoder and classifies the
combined features (models/backbone.py, `pair=True`).

The training file is 8.5 GB: it is read line by line and written to the cache in blocks, so it
never sits in memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tasks.base import Source, Task
from tasks.bytes import BYTE_VOCAB_SIZE, TOKEN_DTYPE, encode_documents
from tasks.cache import source_fingerprint
from tasks.release import AAN_DIR, IMPORT_HINT, release_root

NUM_CLASSES = 2
SPLIT_FILES = {
    "train": "new_aan_pairs.train.tsv",
    "val": "new_aan_pairs.eval.tsv",
    "test": "new_aan_pairs.test.tsv",
}
DOCUMENT_BYTES = 10_000  # LRA encodes s[:10000] of each document, then truncates
CHUNK = 512  # pairs encoded and written per block


def parse_aan_line(line: bytes, where: str) -> tuple[int, bytes, bytes]:
    """(label, text1, text2) of one TSV line; ValueError naming `where` (file:line) if malformed."""
    fields = line.rstrip(b"\n").rstrip(b"\r").split(b"\t")
    if len(fields) != 5:
        raise ValueError(f"{where}: expected 5 tab-separated fields, got {len(fields)}")
    try:
        label = float(fields[0])
    except ValueError:
        raise ValueError(f"{where}: label {fields[0][:20]!r} is not a number") from None
    if label not in (0.0, 1.0):
        raise ValueError(f"{where}: label {label} is not 0 or 1")
    return int(label), fields[3], fields[4]


def read_aan_tsv(path: Path, limit: int | None = None):
    """Yields (label, text1, text2) per line of an AAN TSV file, streaming; the first `limit`
    pairs when given. Blank lines are skipped."""
    with open(path, "rb") as handle:
        count = 0
        for number, line in enumerate(handle, start=1):
            if limit is not None and count >= limit:
                return
            if not line.strip(b"\r\n"):
                continue
            yield parse_aan_line(line, f"{path}:{number}")
            count += 1


def encode_pairs(
    pairs: list[tuple[int, bytes, bytes]], max_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tokens (n, 2, max_length) int16, lengths (n, 2) int32, labels (n,) int64 of parsed pairs."""
    first, first_lengths = encode_documents([p[1][:DOCUMENT_BYTES] for p in pairs], max_length)
    second, second_lengths = encode_documents([p[2][:DOCUMENT_BYTES] for p in pairs], max_length)
    tokens = np.stack([first, second], axis=1)
    # An empty document becomes one padding token counted as real, which is what LRA's encoder
    # sees (all padding); a sequence with no real position at all would leave attention nothing
    # to attend to.
    lengths = np.maximum(np.stack([first_lengths, second_lengths], axis=1), 1)
    return tokens, lengths, np.asarray([p[0] for p in pairs], dtype=np.int64)


class Retrieval(Task):
    """The Retrieval (AAN) task.

    max_length:  bytes kept per document (LRA: 4000).
    data_dir:    the folder of the three TSV files; null = `<data_root>/lra_release/tsv_data`.
    examples:    {train: n, val: n, test: n}: the FIRST n pairs of each file (mini and smoke
                 profiles); a random subset would mean reading all 8.5 GB. null keeps all.
    """

    name = "retrieval"
    vocab_size = BYTE_VOCAB_SIZE
    num_classes = NUM_CLASSES
    pair = True

    def __init__(
        self, max_length: int = 4000, data_dir: str | None = None, examples: dict | None = None
    ) -> None:
        self.max_length = int(max_length)
        self.data_dir = Path(data_dir) if data_dir else None
        self.examples = dict(examples or {})

    def locate(self, data_root: Path) -> Path:
        folder = self.data_dir or release_root(data_root) / AAN_DIR
        missing = [name for name in SPLIT_FILES.values() if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"AAN data not found: {folder} lacks {', '.join(missing)}; "
                + IMPORT_HINT.format(root=data_root)
                + " (or set task.data.data_dir to a folder holding the TSV files)"
            )
        return folder

    def find_source(self, data_root: Path, progress: bool) -> Source:
        folder = self.locate(data_root)
        paths = [folder / name for name in SPLIT_FILES.values()]
        return Source("tsv", folder, source_fingerprint(paths, folder), str(folder))

    def cache_params(self) -> dict:
        return {
            "max_length": self.max_length,
            "document_bytes": DOCUMENT_BYTES,
            "examples": {split: self.examples.get(split) for split in SPLIT_FILES},
            "encoding": "utf8-bytes+1",
        }

    def build_cache(self, builder, source: Source, data_root: Path, progress: bool) -> dict:
        for split, name in SPLIT_FILES.items():
            path = source.folder / name
            writer = builder.writer(split, (2, self.max_length), TOKEN_DTYPE)
            limit = self.examples.get(split)
            bar = tqdm(
                total=path.stat().st_size if limit is None else limit,
                desc=f"encoding AAN {split}",
                unit="B" if limit is None else "pair",
                unit_scale=limit is None,
                disable=not progress,
                file=sys.stderr,
            )
            block: list[tuple[int, bytes, bytes]] = []
            with bar:
                for pair in read_aan_tsv(path, limit):
                    block.append(pair)
                    # Approximate bytes read: the texts are most of every line.
                    bar.update(len(pair[1]) + len(pair[2]) if limit is None else 1)
                    if len(block) == CHUNK:
                        writer.append(*encode_pairs(block, self.max_length))
                        block = []
                if block:
                    writer.append(*encode_pairs(block, self.max_length))
        return {}
