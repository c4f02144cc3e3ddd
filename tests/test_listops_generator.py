import hashlib
from collections import Counter

import pytest

from tasks.listops.generator import (
    ListOpsParams,
    _reduce,
    evaluate_listops,
    generate_splits,
    write_listops,
)
from tasks.listops.loader import tokenize

SMALL = ListOpsParams(train=300, val=50, test=50, min_length=20, max_length=120, max_depth=6)


def test_reduce_matches_lra_semantics():
    assert _reduce("[MIN", [3, 1, 7]) == 1
    assert _reduce("[MAX", [3, 1, 7]) == 7
    assert _reduce("[SM", [9, 8, 7]) == 4  # 24 mod 10
    assert _reduce("[MED", [1, 9, 4]) == 4
    assert _reduce("[MED", [2, 5]) == 3  # int(np.median([2, 5])) = int(3.5)
    assert _reduce("[MED", [9, 8, 1, 4]) == 6  # median 6.0


def test_evaluate_reads_the_lra_string_format():
    # The example from LRA_SPEC.md: [MIN 8 2 [MIN 8 6] ] = min(8, 2, 6) = 2
    assert evaluate_listops("( ( ( ( [MIN 8 ) 2 ) ( ( ( [MIN 8 ) 6 ) ] ) ) ] )") == 2
    assert evaluate_listops("( ( ( [SM 9 ) 9 ) ] )") == 8
    with pytest.raises(ValueError):
        evaluate_listops("( ( [MAX 1 ) 2 )")  # never closed


def test_labels_are_true_values_and_lengths_respect_bounds():
    splits = generate_splits(SMALL, workers=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 300, "val": 50, "test": 50}
    for rows in splits.values():
        for source, label in rows:
            assert evaluate_listops(source) == label
            assert SMALL.min_length < len(tokenize(source)) < SMALL.max_length


def test_trees_respect_depth_and_arity_limits():
    params = ListOpsParams(
        train=200, val=0, test=0, min_length=5, max_length=400, max_depth=3, max_args=4
    )
    for source, _ in generate_splits(params)["train"]:
        depth = max_depth = 0
        arity_stack = []
        for token in tokenize(source):
            if token.startswith("["):
                if arity_stack:
                    arity_stack[-1] += 1
                arity_stack.append(0)
                depth += 1
                max_depth = max(max_depth, depth)
            elif token == "X":
                assert 2 <= arity_stack.pop() <= 4
                depth -= 1
            else:
                arity_stack[-1] += 1
        assert max_depth <= 2  # depth counts from 1 and nodes at max_depth are leaves


def test_no_duplicates_within_or_across_splits():
    splits = generate_splits(
        ListOpsParams(train=400, val=100, test=100, min_length=4, max_length=30, max_depth=3)
    )
    sources = [s for rows in splits.values() for s, _ in rows]
    assert len(sources) == len(set(sources)) == 600


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(tmp_path):
    write_listops(tmp_path / "a", SMALL, workers=1)
    write_listops(tmp_path / "b", SMALL, workers=2)
    write_listops(tmp_path / "c", ListOpsParams(**{**SMALL.__dict__, "seed": 1}), workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_writes_the_official_tsv_format(tmp_path):
    paths = write_listops(
        tmp_path, ListOpsParams(train=3, val=2, test=2, min_length=5, max_length=40, max_depth=4)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "basic_test.tsv",
        "basic_train.tsv",
        "basic_val.tsv",
    ]
    lines = paths["train"].read_bytes().split(b"\r\n")
    assert lines[0] == b"Source\tTarget"
    source, target = lines[1].decode().split("\t")
    assert source.startswith("( ") and source.endswith(" )")
    assert evaluate_listops(source) == int(target)


def test_refuses_to_overwrite_existing_files(tmp_path):
    (tmp_path / "basic_train.tsv").write_text("precious")
    with pytest.raises(FileExistsError, match="basic_train.tsv"):
        write_listops(tmp_path, SMALL)
    assert (tmp_path / "basic_train.tsv").read_text() == "precious"


def test_rejects_impossible_settings():
    with pytest.raises(ValueError, match="max_args"):
        ListOpsParams(max_args=1)
    with pytest.raises(ValueError, match="min_length"):
        ListOpsParams(min_length=100, max_length=100)


def test_label_distribution_resembles_lra():
    # At LRA settings labels 0 and 9 are ~17% each (LRA_SPEC.md section 3).
    params = ListOpsParams(train=2000, val=0, test=0)
    counts = Counter(label for _, label in generate_splits(params, workers=2)["train"])
    assert 0.13 < counts[0] / 2000 < 0.21 and 0.13 < counts[9] / 2000 < 0.21
    assert all(0.04 < counts[d] / 2000 < 0.13 for d in range(1, 9))
