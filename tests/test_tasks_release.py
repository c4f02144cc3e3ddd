import argparse
import io
import re
import tarfile

import pytest

from lra_bench.commands import data_import, data_stats, data_verify
from lra_bench.commands.data_verify import count_lines, verify_release
from tasks.listops.loader import ListOps
from tasks.release import import_release

LISTOPS = "Source\tTarget\n( ( [MAX 1 ) 2 ] )\t2\n( ( [MIN 3 ) 4 ] )\t3\n"
AAN_ROW = b"1.0\tid1\tid2\tfirst text\tsecond text\n"
METADATA = "imgs/0 sample_0.png 0 1 1.0 6 2 2 0.5 1 1\nimgs/0 sample_1.png 1 0 1.0 6 2 2 0.5 1 1\n"


def add_file(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    tar.addfile(info)


def release_members(tar):
    """The official nesting: lra_release/lra_release/<tasks>, with the outer duplicates."""
    add_dir(tar, "lra_release")
    add_file(tar, "lra_release/listops-1000/basic_val.tsv", b"outer duplicate")
    add_file(tar, "lra_release/extra_outer/readme.txt", b"only at the outer level")
    add_dir(tar, "lra_release/lra_release")
    for split in ("train", "val", "test"):
        add_file(tar, f"lra_release/lra_release/listops-1000/basic_{split}.tsv", LISTOPS.encode())
    for split in ("train", "eval", "test"):
        add_file(tar, f"lra_release/lra_release/tsv_data/new_aan_pairs.{split}.tsv", AAN_ROW * 3)
    base = "lra_release/lra_release/pathfinder32/curv_baseline"
    add_file(tar, f"{base}/metadata/0.npy", METADATA.encode())
    add_file(tar, f"{base}/imgs/0/sample_0.png", b"\x89PNG not decoded by verify")
    add_file(tar, f"{base}/imgs/0/sample_1.png", b"")  # empty, not the known one


def write_archive(path, *extra, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        release_members(tar)
        for add in extra:
            add(tar)
    return path


def test_import_keeps_the_nested_copy_where_the_loaders_look(tmp_path):
    archive = write_archive(tmp_path / "lra_release.gz")
    summary = import_release(archive, tmp_path / "data", progress=False)
    root = tmp_path / "data" / "lra_release"
    assert summary.destination == root and summary.dropped_duplicates == ["listops-1000"]
    assert (root / "listops-1000" / "basic_val.tsv").read_text() == LISTOPS
    assert (root / "extra_outer" / "readme.txt").read_bytes() == b"only at the outer level"
    assert (root / "tsv_data" / "new_aan_pairs.eval.tsv").read_bytes() == AAN_ROW * 3
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["lra_release"]
    listops = ListOps(data_dir=str(root / "listops-1000")).load(tmp_path / "data", progress=False)
    assert listops.splits["test"].labels.tolist() == [2, 3]
    with pytest.raises(FileExistsError, match="--replace"):
        import_release(archive, tmp_path / "data", progress=False)
    (root / "listops-1000" / "stale.tsv").write_text("x")
    import_release(archive, tmp_path / "data", replace=True, progress=False)
    assert not (root / "listops-1000" / "stale.tsv").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cache", "lra_release"]


def symlink(tar):
    info = tarfile.TarInfo("lra_release/lra_release/tsv_data/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(info)


def hardlink(tar):
    info = tarfile.TarInfo("lra_release/lra_release/hard")
    info.type, info.linkname = tarfile.LNKTYPE, "lra_release/lra_release/listops-1000/basic_val.tsv"
    tar.addfile(info)


@pytest.mark.parametrize(
    "malicious, member, reason",
    [
        (lambda t: add_file(t, "/tmp/evil.txt", b"x"), "/tmp/evil.txt", "absolute path"),
        (
            lambda t: add_file(t, "lra_release/../../evil.txt", b"x"),
            "lra_release/../../evil.txt",
            "path with '..'",
        ),
        (symlink, "lra_release/lra_release/tsv_data/link", "link to '/etc/passwd'"),
        (hardlink, "lra_release/lra_release/hard", "link to"),
    ],
)
def test_refuses_unsafe_members_and_changes_nothing(tmp_path, malicious, member, reason):
    out = tmp_path / "data"
    (out / "lra_release" / "listops-1000").mkdir(parents=True)
    kept = out / "lra_release" / "listops-1000" / "basic_val.tsv"
    kept.write_text("an earlier import")
    archive = write_archive(tmp_path / "bad.tar.gz", malicious)  # after the good members
    expected = f"refusing archive member '{member}' ({reason}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        import_release(archive, out, replace=True, progress=False)
    assert kept.read_text() == "an earlier import"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "lra_release",
        "lra_release/listops-1000",
        "lra_release/listops-1000/basic_val.tsv",
    ]
    assert not (tmp_path / "evil.txt").exists()


def test_count_lines_counts_a_last_line_without_newline(tmp_path):
    (tmp_path / "a").write_bytes(b"x\ny\nz")
    (tmp_path / "b").write_bytes(b"x\ny\n")
    (tmp_path / "c").write_bytes(b"")
    assert [count_lines(tmp_path / n) for n in "abc"] == [3, 2, 0]


def test_verify_reports_counts_against_the_official_figures(tmp_path):
    import_release(write_archive(tmp_path / "a.tar", mode="w"), tmp_path, progress=False)
    checks = {c.item: c for c in verify_release(tmp_path)}
    assert checks["listops-1000/basic_train.tsv rows"].found == "2"
    assert checks["listops-1000/basic_train.tsv rows"].expected == "96,000"
    assert checks["tsv_data/new_aan_pairs.eval.tsv rows"].found == "3"
    assert checks["pathfinder32/curv_baseline metadata rows"].found == "2"
    assert checks["pathfinder32/curv_baseline missing images"].ok
    empty = checks["pathfinder32/curv_baseline unexpected empty images"]
    assert not empty.ok and empty.found == "1 (e.g. imgs/0/sample_1.png)"
    assert not checks["pathfinder32/curv_contour_length_14"].ok  # absent
    assert not any(c.ok for c in checks.values() if c.item.endswith(" rows"))
    quick = {c.item: c for c in verify_release(tmp_path / "lra_release", quick=True)}
    assert quick["tsv_data/new_aan_pairs.train.tsv"].ok
    assert "pathfinder32/curv_baseline missing images" not in quick


def test_data_commands_register_and_run(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="lra-bench")
    data = parser.add_subparsers(dest="command").add_parser("data")
    commands = data.add_subparsers(dest="data_command")
    for module in (data_import, data_verify, data_stats):
        module.register_data(commands)
    archive = write_archive(tmp_path / "lra_release.gz")
    args = parser.parse_args(["data", "import", str(archive), "--out", str(tmp_path), "--quiet"])
    args.handler(args)
    assert (
        "dropped the outer duplicate(s) of the nested copy: listops-1000" in capsys.readouterr().out
    )
    args = parser.parse_args(["data", "verify", str(tmp_path), "--quick"])
    with pytest.raises(SystemExit) as exit_status:
        args.handler(args)
    assert exit_status.value.code == 1 and "MISMATCH" in capsys.readouterr().out
    overrides = [f"task.data.data_dir={tmp_path / 'lra_release' / 'listops-1000'}"]
    args = parser.parse_args(
        ["data", "stats", "listops", *overrides, "--data-root", str(tmp_path), "--quiet"]
    )
    args.handler(args)
    out = capsys.readouterr().out
    assert "train        2 examples (official 96,000)" in out
    assert "labels 0:0.0% 1:0.0% 2:50.0% 3:50.0%" in out
    assert "length min 4 median 4 mean 4 max 4" in out
