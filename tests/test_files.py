import pytest

from lra_bench.files import replaced_atomically


def test_replaces_on_success_and_keeps_the_suffix(tmp_path):
    path = tmp_path / "board.png"
    path.write_text("old")
    with replaced_atomically(path) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp != path
        tmp.write_text("new")
        assert path.read_text() == "old"  # readers still see the old file meanwhile
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["board.png"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with replaced_atomically(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
