"""Case 7: a cache that does not verify (a truncated array, a garbage meta.json, labels changed
after the build) is named, discarded and rebuilt, on the first load that sees it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.base import Split
from tasks.cache import cache_key, load_or_build, read_cache

TOKENS = np.arange(24, dtype=np.int16).reshape(6, 4)
LENGTHS = np.array([4, 3, 2, 4, 1, 4])
LABELS = np.array([1, 0, 1, 1, 0, 2])


def build_counting(calls):
    def build(builder):
        calls.append(1)
        builder.put("train", Split(TOKENS, LENGTHS, LABELS))
        builder.put("test", Split(TOKENS[:2], LENGTHS[:2], LABELS[:2]))

    return build


def fresh_cache(root):
    calls = []
    load_or_build(root, "toy", {"L": 4}, "src", build_counting(calls))
    return root / "cache" / "toy" / cache_key("toy", {"L": 4}, "src"), calls


def truncate_tokens(folder):
    path = folder / "train.tokens.npy"
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])
    return path, f"has {len(whole) - 10} bytes; the build wrote {len(whole)} (truncated?)"


def garbage_meta(folder):
    path = folder / "meta.json"
    path.write_text("{ not json")
    return path, "is not valid JSON"


def meta_of_another_kind(folder):
    path = folder / "meta.json"
    path.write_text("42")
    return path, "holds a int, not an object"


def labels_changed(folder):
    path = folder / "train.labels.npy"
    labels = np.load(path, mmap_mode="r+")
    labels[0] = 2  # in place: same size, same header; only the checksum sees it
    labels.flush()
    del labels
    return path, "content differs from the sha256 the build wrote"


def array_deleted(folder):
    path = folder / "test.lengths.npy"
    path.unlink()
    return path, "is missing"


DAMAGE = [truncate_tokens, garbage_meta, meta_of_another_kind, labels_changed, array_deleted]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_a_cache_that_does_not_verify_is_named_discarded_and_rebuilt(tmp_path, capsys, damage):
    folder, calls = fresh_cache(tmp_path)
    path, problem = damage(folder)
    capsys.readouterr()
    splits, _ = load_or_build(tmp_path, "toy", {"L": 4}, "src", build_counting(calls))
    message = capsys.readouterr().err
    assert f"cache does not verify: {path}" in message and problem in message
    assert f"discarding {folder}" in message
    assert calls == [1, 1]  # rebuilt once
    np.testing.assert_array_equal(splits["train"].labels, LABELS)
    np.testing.assert_array_equal(splits["train"].tokens, TOKENS)
    assert read_cache(folder)["test"].labels.tolist() == LABELS[:2].tolist()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # nothing half-left


def test_meta_json_records_each_array_s_size_and_checksum(tmp_path):
    folder, _ = fresh_cache(tmp_path)
    files = json.loads((folder / "meta.json").read_text())["files"]
    assert sorted(files) == sorted(
        f"{split}.{name}.npy"
        for split in ("train", "test")
        for name in ("tokens", "lengths", "labels")
    )
    assert files["train.tokens.npy"]["bytes"] == (folder / "train.tokens.npy").stat().st_size
    assert len(files["train.tokens.npy"]["sha256"]) == 64
