import os
import shutil
import socket

import numpy as np
import pytest

from tasks.base import Split
from tasks.cache import NpyRowWriter, cache_key, load_or_build, source_fingerprint
from tasks.listops.loader import ListOps, encode

ROWS = ["( ( [MIN 8 ) 2 ] )\t2", "( ( [SM 3 ) 4 ] )\t7", "( ( [MAX 1 ) 5 ] )\t5"]


def test_npy_row_writer_round_trips_through_np_load(tmp_path):
    writer = NpyRowWriter(tmp_path / "a.npy", (2, 3), np.int16)
    first, second = np.arange(12).reshape(2, 2, 3), -np.arange(6).reshape(1, 2, 3)
    writer.append(first)
    writer.append(second)
    writer.close()
    loaded = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.int16
    np.testing.assert_array_equal(loaded, np.concatenate([first, second]))
    with pytest.raises(ValueError, match="rows"):
        NpyRowWriter(tmp_path / "b.npy", (3,), np.int16).append(np.zeros((1, 4)))


def toy_build(calls, tokens):
    def build(builder):
        calls.append(1)
        builder.put("train", Split(tokens, np.array([2, 1]), np.array([1, 0])))

    return build


def test_builds_once_then_memory_maps(tmp_path):
    calls, tokens = [], np.array([[5, 6], [7, 0]], dtype=np.int16)
    splits, key = load_or_build(tmp_path, "toy", {"L": 2}, "src", toy_build(calls, tokens))
    again, key_again = load_or_build(tmp_path, "toy", {"L": 2}, "src", toy_build(calls, tokens))
    assert calls == [1] and key == key_again == cache_key("toy", {"L": 2}, "src")
    assert isinstance(again["train"].tokens, np.memmap)
    np.testing.assert_array_equal(again["train"].tokens, tokens)
    assert again["train"].lengths.tolist() == [2, 1] and again["train"].labels.tolist() == [1, 0]
    assert sorted(p.name for p in (tmp_path / "cache" / "toy").iterdir()) == [key]


def test_changed_parameter_or_source_rebuilds(tmp_path):
    calls, tokens = [], np.zeros((2, 2), dtype=np.int16)
    _, key = load_or_build(tmp_path, "toy", {"L": 2}, "src", toy_build(calls, tokens))
    _, key_param = load_or_build(tmp_path, "toy", {"L": 3}, "src", toy_build(calls, tokens))
    _, key_source = load_or_build(tmp_path, "toy", {"L": 2}, "src2", toy_build(calls, tokens))
    assert calls == [1, 1, 1] and len({key, key_param, key_source}) == 3


def test_failed_build_leaves_nothing(tmp_path):
    def build(builder):
        builder.writer("train", (4,), np.int16).append(np.zeros((1, 4)), [4], [0])
        raise RuntimeError("source broke half way")

    with pytest.raises(RuntimeError):
        load_or_build(tmp_path, "toy", {}, "src", build)
    assert list((tmp_path / "cache" / "toy").iterdir()) == []


def test_leftover_temporary_folders_are_ignored_and_dead_local_ones_removed(tmp_path):
    key = cache_key("toy", {}, "src")
    folder = tmp_path / "cache" / "toy"
    foreign = folder / f".{key}.tmp-otherhost-123"  # another machine's build in progress
    host = socket.gethostname().replace("-", "_")
    dead = folder / f".{key}.tmp-{host}-{2**22 + 12345}"  # beyond pid_max: no such process
    for leftover in (foreign, dead):
        leftover.mkdir(parents=True)
        (leftover / "meta.json").write_text('{"order": ["train"]}')  # looks complete
    # A final folder without meta.json was never renamed into place by a build: rebuilt.
    (folder / key).mkdir()
    calls, tokens = [], np.array([[1, 2], [3, 4]], dtype=np.int16)
    splits, got = load_or_build(tmp_path, "toy", {}, "src", toy_build(calls, tokens))
    assert got == key and calls == [1]
    np.testing.assert_array_equal(splits["train"].tokens, tokens)
    assert foreign.exists() and not dead.exists()


def test_source_fingerprint_sees_content_size_and_mtime(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(b"abc")
    stamp = (1_000_000_000, 1_000_000_000)
    os.utime(path, stamp)
    before = source_fingerprint([path], tmp_path)
    path.write_bytes(b"abd")  # same size; restore the mtime: only the content differs
    os.utime(path, stamp)
    assert source_fingerprint([path], tmp_path) != before
    assert source_fingerprint([path], tmp_path, read_content=False) == source_fingerprint(
        [path], tmp_path, read_content=False
    )
    stat_only = source_fingerprint([path], tmp_path, read_content=False)
    os.utime(path, (2_000_000_000, 2_000_000_000))
    assert source_fingerprint([path], tmp_path, read_content=False) != stat_only
    # A copy of the folder elsewhere (same names, sizes, mtimes, content) has the same one.
    copy = shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-copy")
    assert source_fingerprint([copy / "a.tsv"], copy) == source_fingerprint([path], tmp_path)


def write_listops_folder(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
        (folder / name).write_text("Source\tTarget\n" + "\n".join(rows) + "\n")


def test_listops_reads_through_the_cache_and_rebuilds_on_a_changed_file(tmp_path, monkeypatch):
    folder = tmp_path / "listops-1000"
    write_listops_folder(folder, ROWS)
    task = ListOps(max_length=8, data_dir=str(folder))
    data = task.load(tmp_path, progress=False)
    assert data.splits["train"].tokens[1].tolist() == encode("( ( [SM 3 ) 4 ] )").tolist() + [0] * 4
    assert data.splits["train"].labels.tolist() == [2, 7, 5]

    import tasks.listops.loader

    def no_parsing(*args, **kwargs):
        raise AssertionError("the second load must come from the cache")

    monkeypatch.setattr(tasks.listops.loader, "read_listops_tsv", no_parsing)
    cached = ListOps(max_length=8, data_dir=str(folder)).load(tmp_path, progress=False)
    assert isinstance(cached.splits["train"].tokens, np.memmap)
    assert list(cached.splits) == ["train", "val", "test"]  # the build's order, not sorted
    assert cached.fingerprint == data.fingerprint
    monkeypatch.undo()

    write_listops_folder(folder, ROWS[:2])
    changed = ListOps(max_length=8, data_dir=str(folder)).load(tmp_path, progress=False)
    assert changed.fingerprint != data.fingerprint
    assert changed.splits["train"].labels.tolist() == [2, 7]
    shorter = ListOps(max_length=4, data_dir=str(folder)).load(tmp_path, progress=False)
    assert shorter.splits["val"].tokens.shape == (2, 4)
