import numpy as np
import pytest

from tasks.listops.loader import TOKEN_IDS, VOCAB_SIZE, ListOps, encode, read_listops_tsv, tokenize

EXAMPLE = "( ( ( ( [MIN 8 ) 2 ) ( ( ( [MIN 8 ) 6 ) ] ) ) ] )"


def write(path, text, newline="\n"):
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def test_tokenisation_is_lras():
    assert tokenize(EXAMPLE) == ["[MIN", "8", "2", "[MIN", "8", "6", "X", "X"]
    ids = encode(EXAMPLE)
    expected = [TOKEN_IDS[t] for t in ["[MIN", "8", "2", "[MIN", "8", "6", "X", "X"]]
    assert ids.tolist() == expected
    assert VOCAB_SIZE == 16 and sorted(TOKEN_IDS.values()) == list(range(1, 16))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_reads_official_format_to_exact_ids(tmp_path, newline):
    path = write(
        tmp_path / "basic_val.tsv", f"Source\tTarget\n{EXAMPLE}\t2\n( ( [SM 3 ) ] )\t3\n", newline
    )
    split = read_listops_tsv(path, max_length=10)
    assert split.tokens.shape == (2, 10)
    assert split.tokens[0].tolist() == encode(EXAMPLE).tolist() + [0, 0]
    assert split.tokens[1].tolist() == [TOKEN_IDS["[SM"], TOKEN_IDS["3"], TOKEN_IDS["X"]] + [0] * 7
    assert split.lengths.tolist() == [8, 3]
    assert split.labels.tolist() == [2, 3]


def test_truncates_to_max_length(tmp_path):
    split = read_listops_tsv(
        write(tmp_path / "t.tsv", f"Source\tTarget\n{EXAMPLE}\t2\n"), max_length=4
    )
    assert split.tokens.tolist() == [encode(EXAMPLE)[:4].tolist()]
    assert split.lengths.tolist() == [4]


@pytest.mark.parametrize(
    "body, message",
    [
        (f"{EXAMPLE}\t2\n{EXAMPLE}\n", r"t.tsv:3: expected 2 tab-separated fields"),
        (f"{EXAMPLE}\tseven\n", r"t.tsv:2: target 'seven' is not an integer"),
        (f"{EXAMPLE}\t12\n", r"t.tsv:2: target 12 outside 0..9"),
        ("( ( [MIN 1 ) 10 ] )\t1\n", r"t.tsv:2: unknown token"),
        ("( ( [AVG 1 ) 2 ] )\t1\n", r"t.tsv:2: unknown token\(s\) \['\[AVG'\]"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, message):
    path = write(tmp_path / "t.tsv", "Source\tTarget\n" + body)
    with pytest.raises(ValueError, match=message):
        read_listops_tsv(path, max_length=50)


def test_missing_header_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"t.tsv:1: expected header"):
        read_listops_tsv(write(tmp_path / "t.tsv", f"{EXAMPLE}\t2\n"), max_length=50)


def test_task_generates_once_then_reads_the_cache(tmp_path):
    generator = {
        "train": 40,
        "val": 10,
        "test": 10,
        "min_length": 5,
        "max_length": 60,
        "max_depth": 4,
    }
    task = ListOps(max_length=64, generator=generator, workers=1)
    data = task.load(tmp_path, progress=False)
    folders = list((tmp_path / "listops").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("generated-")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 40, "val": 10, "test": 10}
    assert data.vocab_size == 16 and data.num_classes == 10
    again = ListOps(max_length=64, generator=generator, workers=1).load(tmp_path, progress=False)
    assert again.fingerprint == data.fingerprint
    np.testing.assert_array_equal(again.splits["train"].tokens, data.splits["train"].tokens)


def test_missing_official_folder_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="lra-bench data import"):
        ListOps(data_dir=str(tmp_path / "nowhere")).load(tmp_path, progress=False)
