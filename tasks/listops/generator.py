"""ListOps generator: the algorithm of LRA's `lra_benchmarks/data/listops.py`, seeded and fast.

The original draws a random tree (a node is an operator with probability VALUE_P = 0.25 while
depth < max_depth, otherwise a digit; an operator takes 2..max_args arguments), keeps it when
`min_length < tokens < max_length`, removes duplicates with a set, and splits the accepted trees
into train / val / test in order. Values: MIN, MAX, MED = int(median) (the mean of the two middle
values, truncated), SM = sum mod 10.

What we change, and why it does not change the data distribution:
- A tree whose running token count reaches `max_length` is abandoned at once. It would be rejected
  anyway, and the accepted trees are drawn from the same conditional distribution, so this only
  saves time (most of the original's run time is spent building trees it then throws away).
- Randomness comes from per-shard seeded generators, so a seed gives byte-identical files whatever
  the number of worker processes. Shards are merged in order and duplicates are removed across
  all splits, so no expression appears in two splits.
- The label is computed while the tree is built; `evaluate_listops` re-derives it from the text
  independently (the tests hold the two together).
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from tasks.files import replaced_atomically

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VALUE_P = 0.25
SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
# Accepted trees per shard. Fixed (not derived from the worker count) so that output depends on
# the seed alone.
SHARD_SIZE = 1000


@dataclass(frozen=True)
class ListOpsParams:
    """Generator settings; the defaults are LRA's (`basic` task, 96k/2k/2k, lengths 501..1999)."""

    train: int = 96_000
    val: int = 2_000
    test: int = 2_000
    min_length: int = 500  # exclusive, as in the original (`500 < length`)
    max_length: int = 2_000  # exclusive (`length < 2000`)
    max_depth: int = 10
    max_args: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_args < 2:
            raise ValueError(f"max_args must be >= 2, got {self.max_args}")
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {self.max_depth}")
        if not 0 <= self.min_length < self.max_length - 1:
            raise ValueError(
                f"need 0 <= min_length < max_length - 1 (lengths are exclusive bounds), got "
                f"min_length={self.min_length}, max_length={self.max_length}"
            )
        if min(self.train, self.val, self.test) < 0:
            raise ValueError("split sizes must be >= 0")

    @property
    def total(self) -> int:
        return self.train + self.val + self.test

    def digest(self) -> str:
        """A short name for these settings, used to name generated-data folders."""
        text = ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class _TooLong(Exception):
    """Raised inside tree building once the tree can no longer be accepted."""


def _reduce(op: str, values: list[int]) -> int:
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[SM":
        return sum(values) % 10
    ordered = sorted(values)  # "[MED": int(np.median(values)) for non-negative ints
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


def _make_tree_builder(rng: random.Random, params: ListOpsParams) -> Callable[[], tuple | None]:
    """Returns a function drawing one tree: (LRA source string, token length, value) or None
    when the tree reached max_length tokens (and so would be rejected)."""
    uniform = rng.random
    max_depth, max_args, limit = params.max_depth, params.max_args, params.max_length
    n_ops = len(OPERATORS)
    count = [0]

    def node(depth: int) -> tuple[str, int]:
        # Same draws as the original: leaf test, then digit, or arity, children, operator.
        if depth >= max_depth or uniform() > VALUE_P:
            count[0] += 1
            if count[0] >= limit:
                raise _TooLong
            digit = int(uniform() * 10)
            return str(digit), digit
        arity = 2 + int(uniform() * (max_args - 1))
        count[0] += 2  # operator token and the closing ']'
        if count[0] >= limit:
            raise _TooLong
        children = [node(depth + 1) for _ in range(arity)]
        op = OPERATORS[int(uniform() * n_ops)]
        # The original nests binary tuples ((((op, c0), c1), ...), END): one '( ' per tuple.
        text = "( " * (arity + 1) + op + " " + children[0][0] + " )"
        for child_text, _ in children[1:]:
            text += " " + child_text + " )"
        text += " ] )"
        return text, _reduce(op, [value for _, value in children])

    def draw() -> tuple | None:
        count[0] = 0
        try:
            text, value = node(1)
        except _TooLong:
            return None
        return text, count[0], value

    return draw


def _shard_seed(seed: int, shard: int) -> int:
    return int.from_bytes(hashlib.sha256(f"listops:{seed}:{shard}".encode()).digest()[:8], "big")


def generate_shard(params: ListOpsParams, shard: int) -> list[tuple[str, int]]:
    """SHARD_SIZE accepted (source, label) pairs from the shard's own random stream."""
    draw = _make_tree_builder(random.Random(_shard_seed(params.seed, shard)), params)
    accepted: list[tuple[str, int]] = []
    while len(accepted) < SHARD_SIZE:
        tree = draw()
        if tree is not None and tree[1] > params.min_length:
            accepted.append((tree[0], tree[2]))
    return accepted


def _shard_task(args: tuple[ListOpsParams, int]) -> list[tuple[str, int]]:
    return generate_shard(*args)


def iter_unique_examples(params: ListOpsParams, workers: int = 1) -> Iterator[tuple[str, int]]:
    """Accepted, de-duplicated (source, label) pairs in a seed-determined order, endlessly."""
    seen: set[bytes] = set()

    def unique(batch: list[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        for source, label in batch:
            key = hashlib.blake2b(source.encode(), digest_size=16).digest()
            if key not in seen:
                seen.add(key)
                yield source, label

    shard = 0
    if workers <= 1:
        while True:
            yield from unique(generate_shard(params, shard))
            shard += 1
    with get_context("spawn").Pool(workers) as pool:
        while True:
            # Rounds of shards in order: imap keeps the order, so output ignores `workers`.
            round_ids = range(shard, shard + 4 * workers)
            for batch in pool.imap(_shard_task, [(params, s) for s in round_ids]):
                yield from unique(batch)
            shard += len(round_ids)


def generate_splits(
    params: ListOpsParams, workers: int = 1, progress: Callable[[int], None] | None = None
) -> dict[str, list[tuple[str, int]]]:
    """{'train': [...], 'val': [...], 'test': [...]} with the requested counts."""
    wanted = {"train": params.train, "val": params.val, "test": params.test}
    rows: list[tuple[str, int]] = []
    if params.total:
        for example in iter_unique_examples(params, workers):
            rows.append(example)
            if progress:
                progress(1)
            if len(rows) == params.total:
                break
    splits, start = {}, 0
    for name, count in wanted.items():
        splits[name] = rows[start : start + count]
        start += count
    return splits


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    """The official format: header `Source<TAB>Target`, written by csv.writer as the original
    does (so lines end in CRLF). Written to a temporary file and renamed into place."""
    with replaced_atomically(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)


def write_listops(
    out_dir: Path,
    params: ListOpsParams,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Generates the three splits into `out_dir/basic_{train,val,test}.tsv`."""
    out_dir = Path(out_dir)
    paths = {split: out_dir / name for split, name in SPLIT_FILES.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"refusing to overwrite existing ListOps files: {', '.join(existing)} "
            "(pass --overwrite to replace them)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = generate_splits(params, workers, progress)
    for split, path in paths.items():
        write_tsv(path, splits[split])
    return paths


def evaluate_listops(source: str) -> int:
    """Value of an expression written in LRA's format, parsed from the text alone.

    Works on the tokens left after LRA's tokenisation (parentheses dropped, `]` closing an
    operator), so it checks both the generator's labels and what a model actually sees.
    """
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for token in source.replace("(", " ").replace(")", " ").split():
        if token in OPERATORS:
            stack.append((token, []))
        elif token == END:
            op, args = stack.pop()
            value = _reduce(op, args)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        elif token.isdigit() and len(token) == 1:
            if stack:
                stack[-1][1].append(int(token))
            else:
                result = int(token)
        else:
            raise ValueError(f"unexpected ListOps token {token!r}")
    if stack or result is None:
        raise ValueError("unbalanced ListOps expression")
    return result
