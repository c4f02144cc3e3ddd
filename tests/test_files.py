import pytest

from tasks.files import replaced_atomically, staged_folder


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


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "generated"
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "part.tsv").write_text("half")
            raise RuntimeError("crash mid-generation")
    assert list(tmp_path.iterdir()) == []
    with staged_folder(target) as staging:
        (staging / "a.tsv").write_text("done")
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["generated"]
    assert (target / "a.tsv").read_text() == "done"


def test_staged_folder_keeps_a_folder_another_process_finished_first(tmp_path):
    target = tmp_path / "generated"
    with staged_folder(target) as staging:
        (staging / "mine.tsv").write_text("mine")
        target.mkdir()
        (target / "theirs.tsv").write_text("theirs")
    assert [p.name for p in target.iterdir()] == ["theirs.tsv"]
    assert [p.name for p in tmp_path.iterdir()] == ["generated"]
