import numpy as np
import pytest

from tasks.bytes import BYTE_VOCAB_SIZE, encode_bytes
from tasks.text import Text

# (split, label name, file name, raw file bytes); stripped as TFDS does, then bytes + 1.
REVIEWS = [
    ("train", "pos", "0_9.txt", b"  Great film.\n"),
    ("train", "neg", "1_2.txt", "Caf\u00e9 bad".encode()),  # é is two UTF-8 bytes
    ("train", "pos", "2_8.txt", b"Loved it<br />"),
    ("test", "neg", "0_1.txt", b"\tNo.\r\n"),
    ("test", "pos", "1_10.txt", b"Yes!"),
]


def ids(text: bytes, length: int) -> list[int]:
    return [b + 1 for b in text[:length]] + [0] * max(0, length - len(text))


def write_aclimdb(root):
    for split, label, name, raw in REVIEWS:
        folder = root / "aclImdb" / split / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(raw)
    (root / "aclImdb" / "train" / "unsup").mkdir()  # present in the real archive, unused
    (root / "aclImdb" / "test" / "pos" / "9_7.txt").write_bytes(b"ok")
    return root / "aclImdb"


def test_encode_bytes_is_utf8_plus_one():
    assert encode_bytes("é!".encode(), 10).tolist() == [0xC3 + 1, 0xA9 + 1, ord("!") + 1]
    assert encode_bytes(b"\xff\x00abc", 2).tolist() == [256, 1]
    assert BYTE_VOCAB_SIZE == 257


def test_reads_aclimdb_folder_to_exact_ids(tmp_path):
    folder = write_aclimdb(tmp_path)
    data = Text(max_length=8, data_dir=str(folder)).load(tmp_path, progress=False)
    train = data.splits["train"]
    # neg files first, then pos, each sorted by name
    assert train.labels.tolist() == [0, 1, 1]
    assert train.tokens.tolist() == [
        ids("Caf\u00e9 bad".encode(), 8),
        ids(b"Great film.", 8),
        ids(b"Loved it<br />", 8),
    ]
    assert train.lengths.tolist() == [8, 8, 8]
    test = data.splits["test"]
    assert test.labels.tolist() == [0, 1, 1]
    assert test.tokens[0].tolist() == ids(b"No.", 8) and test.lengths.tolist() == [3, 4, 2]
    assert data.validation_is_test and data.splits["val"] is data.splits["test"]
    assert data.vocab_size == 257 and data.num_classes == 2 and not data.pair


def test_default_location_under_data_root(tmp_path):
    write_aclimdb(tmp_path / "text")
    data = Text(max_length=4).load(tmp_path, progress=False)
    assert len(data.splits["train"]) == 3 and data.notes["source"].startswith("aclimdb:")


def imdb_frames():
    import datasets

    train = datasets.Dataset.from_dict(
        {"text": ["  Great film.\n", "Caf\u00e9 bad", "meh"], "label": [1, 0, 0]}
    )
    test = datasets.Dataset.from_dict({"text": ["\tNo.\r\n", "Yes!"], "label": [0, 1]})
    return train, test


def write_parquet(folder):
    folder.mkdir(parents=True)
    train, test = imdb_frames()
    train.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    test.to_parquet(str(folder / "test-00000-of-00001.parquet"))
    return folder


EXPECTED_TRAIN = [ids(b"Great film.", 6), ids("Caf\u00e9 bad".encode(), 6), ids(b"meh", 6)]


def test_reads_parquet_files_through_datasets(tmp_path):
    folder = write_parquet(tmp_path / "plain_text")
    data = Text(max_length=6, source="parquet", data_dir=str(folder)).load(tmp_path, progress=False)
    assert data.splits["train"].tokens.tolist() == EXPECTED_TRAIN
    assert data.splits["train"].labels.tolist() == [1, 0, 0]
    assert data.splits["test"].tokens.tolist() == [ids(b"No.", 6), ids(b"Yes!", 6)]


def test_hugging_face_hub_path(tmp_path, monkeypatch):
    """The hub branch calls load_dataset("stanfordnlp/imdb", cache_dir=...); here that call
    returns the same rows from local parquet files (no network)."""
    import datasets

    folder = write_parquet(tmp_path / "hub")
    real_load = datasets.load_dataset
    calls = []

    def fake_hub(name, **kwargs):
        calls.append((name, kwargs))
        if name != "stanfordnlp/imdb":
            return real_load(name, **kwargs)
        files = {s: str(folder / f"{s}-00000-of-00001.parquet") for s in ("train", "test")}
        return real_load("parquet", data_files=files, cache_dir=kwargs["cache_dir"])

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    data = Text(max_length=6, source="huggingface").load(tmp_path, progress=False)
    assert calls[0] == ("stanfordnlp/imdb", {"cache_dir": str(tmp_path / "hf")})
    assert data.splits["train"].tokens.tolist() == EXPECTED_TRAIN
    assert data.splits["test"].labels.tolist() == [0, 1]
    again = Text(max_length=6, source="huggingface").load(tmp_path, progress=False)
    assert again.fingerprint == data.fingerprint and len(calls) == 1  # cached: no hub call


def test_seeded_subset_is_random_not_the_first_rows(tmp_path):
    folder = write_aclimdb(tmp_path)
    task = Text(max_length=4, data_dir=str(folder), examples={"train": 2}, subset_seed=3)
    data = task.load(tmp_path, progress=False)
    rows = np.sort(np.random.default_rng(3).permutation(3)[:2])
    full = Text(max_length=4, data_dir=str(folder)).load(tmp_path, progress=False)
    np.testing.assert_array_equal(data.splits["train"].tokens, full.splits["train"].tokens[rows])
    assert len(data.splits["test"]) == 3  # no subset asked for test
    assert data.fingerprint != full.fingerprint


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"aclImdb.*parquet.*source=huggingface"):
        Text(source="aclimdb").load(tmp_path, progress=False)
