import numpy as np
import pytest

from tasks.retrieval import DOCUMENT_BYTES, SPLIT_FILES, Retrieval, parse_aan_line, read_aan_tsv


def ids(text: bytes, length: int) -> list[int]:
    return [b + 1 for b in text[:length]] + [0] * max(0, length - len(text))


# label (as written in the file), id1, id2, text1, text2
ROWS = [
    (b"1.0", b"P01-1001", b"W02-0202", b"Parsing with CKY.", "Caf\u00e9 grammar".encode()),
    (b"0.0", b"J03-3003", b"N04-4004", b"Speech", b"A very long second document here"),
    (b"1", b"A05-5005", b"B06-6006", b"x", b"y"),
]


def write_tsv(path, rows, newline=b"\n", blank_line=False):
    lines = [b"\t".join(row) for row in rows]
    if blank_line:
        lines.insert(1, b"")
    path.write_bytes(newline.join(lines) + newline)
    return path


def write_aan(folder, rows=ROWS, newline=b"\n"):
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_FILES.values():
        write_tsv(folder / name, rows, newline)
    return folder


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_reads_official_tsv_to_exact_pair_ids(tmp_path, newline):
    folder = write_aan(tmp_path / "lra_release" / "tsv_data", newline=newline)
    data = Retrieval(max_length=10).load(tmp_path, progress=False)  # default location
    train = data.splits["train"]
    assert train.tokens.shape == (3, 2, 10) and train.tokens.dtype == np.int16
    assert train.labels.tolist() == [1, 0, 1]
    assert train.tokens[0].tolist() == [
        ids(b"Parsing with CKY.", 10),
        ids("Caf\u00e9 grammar".encode(), 10),
    ]
    assert train.tokens[1].tolist() == [ids(b"Speech", 10), ids(b"A very long second", 10)]
    assert train.lengths.tolist() == [[10, 10], [6, 10], [1, 1]]
    assert data.pair and data.vocab_size == 257 and data.num_classes == 2
    assert data.notes["source"] == str(folder)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 3, "val": 3, "test": 3}


def test_first_ten_thousand_bytes_then_max_length(tmp_path):
    long_text = bytes(range(97, 123)) * 500  # 13,000 bytes
    rows = [(b"1.0", b"a", b"b", long_text, b"short")]
    write_aan(tmp_path / "aan", rows)
    data = Retrieval(max_length=12_000, data_dir=str(tmp_path / "aan")).load(
        tmp_path, progress=False
    )
    first = data.splits["test"].tokens[0, 0]
    assert data.splits["test"].lengths[0].tolist() == [DOCUMENT_BYTES, 5]
    assert first[:DOCUMENT_BYTES].tolist() == ids(long_text[:DOCUMENT_BYTES], DOCUMENT_BYTES)
    assert not first[DOCUMENT_BYTES:].any()


def test_streams_and_stops_after_the_first_examples(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [*ROWS[:2], (b"bad line",)], blank_line=True)
    assert [label for label, _, _ in read_aan_tsv(path, limit=2)] == [1, 0]
    with pytest.raises(ValueError, match=r"t.tsv:4: expected 5 tab-separated fields, got 1"):
        list(read_aan_tsv(path))
    write_aan(tmp_path / "aan", [*ROWS, (b"oops",)])
    data = Retrieval(
        max_length=4, data_dir=str(tmp_path / "aan"), examples={"train": 2, "val": 1, "test": 3}
    )
    splits = data.load(tmp_path, progress=False).splits
    assert [len(splits[s]) for s in ("train", "val", "test")] == [2, 1, 3]


@pytest.mark.parametrize(
    "line, message",
    [
        (b"2.0\ta\tb\tx\ty", r"f:7: label 2.0 is not 0 or 1"),
        (b"yes\ta\tb\tx\ty", r"f:7: label b'yes' is not a number"),
        (b"1\ta\tb\tx\ty\tz", r"f:7: expected 5 tab-separated fields, got 6"),
    ],
)
def test_malformed_lines_name_file_and_line(line, message):
    with pytest.raises(ValueError, match=message):
        parse_aan_line(line, "f:7")


def test_empty_document_is_one_padding_position():
    label, first, second = parse_aan_line(b"0\ta\tb\t\tsomething\n", "f:1")
    from tasks.retrieval import encode_pairs

    tokens, lengths, labels = encode_pairs([(label, first, second)], 4)
    assert tokens[0, 0].tolist() == [0, 0, 0, 0] and lengths.tolist() == [[1, 4]]


def test_missing_files_say_how_to_import(tmp_path):
    with pytest.raises(FileNotFoundError, match="lra-bench data import"):
        Retrieval().load(tmp_path, progress=False)
