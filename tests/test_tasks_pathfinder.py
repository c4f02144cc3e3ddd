import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from tasks.pathfinder.loader import DIFFICULTIES, Pathfinder, read_metadata, split_indices
from tasks.pixels import downsample


def pixels(batch: int, index: int, side: int) -> np.ndarray:
    """A distinct image per (metadata batch, index): recognisable after splitting."""
    rng = np.random.default_rng(1000 * batch + index)
    return rng.integers(0, 256, (side, side), dtype=np.uint8)


def write_official(
    root, side=32, difficulty="curv_baseline", batches=(2, 10), per_batch=6, empty=((2, 3),)
):
    """`root/pathfinder<side>/<difficulty>/` in the release layout: text metadata `<k>.npy`
    (11 columns, label in the 4th), PNGs under imgs/<k>/, some of them empty files. Returns the
    folder and the expected (image, label) list in loader order: batches by number (2 before 10,
    which a name sort would swap), lines in order, empty images skipped."""
    folder = root / f"pathfinder{side}" / difficulty
    (folder / "metadata").mkdir(parents=True)
    expected = []
    for batch in batches:
        (folder / "imgs" / str(batch)).mkdir(parents=True)
        lines = []
        for index in range(per_batch):
            label = (batch + index) % 2
            lines.append(f"imgs/{batch} sample_{index}.png {index} {label} 1.0 6 2 2 0.5 1 1")
            path = folder / "imgs" / str(batch) / f"sample_{index}.png"
            if (batch, index) in empty:
                path.write_bytes(b"")
                continue
            PILImage.fromarray(pixels(batch, index, side), mode="L").save(path)
            expected.append((pixels(batch, index, side), label))
        (folder / "metadata" / f"{batch}.npy").write_text("\n".join(lines) + "\n")
    return folder, expected


def test_split_is_torch_random_split_with_the_seed():
    n = 47
    lengths = [n - 2 * (n // 10), n // 10, n // 10]
    subsets = torch.utils.data.random_split(
        range(n), lengths, generator=torch.Generator().manual_seed(42)
    )
    ours = split_indices(n, 42)
    assert [list(s.indices) for s in subsets] == [
        ours[k].tolist() for k in ("train", "val", "test")
    ]


def test_metadata_is_text_in_numeric_file_order(tmp_path):
    folder, _ = write_official(tmp_path)
    entries = read_metadata(folder)
    assert entries[:2] == [("imgs/2/sample_0.png", 0), ("imgs/2/sample_1.png", 1)]
    assert entries[6] == ("imgs/10/sample_0.png", 0) and len(entries) == 12


def test_reads_official_layout_skipping_the_empty_png(tmp_path):
    folder, expected = write_official(tmp_path / "lra_release")
    task = Pathfinder(resolution=32, difficulty="easy", workers=1)
    data = task.load(tmp_path, progress=False)  # found under <data_root>/lra_release
    assert data.notes["skipped_empty_images"] == ["imgs/2/sample_3.png"]
    assert data.notes["source"] == f"official:{folder}"
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 9, "val": 1, "test": 1} and len(expected) == 11
    for name, rows in split_indices(11, 42).items():
        split = data.splits[name]
        rows = np.sort(rows)
        want = np.stack([expected[r][0].reshape(-1) for r in rows])
        np.testing.assert_array_equal(split.tokens, want)
        assert split.labels.tolist() == [expected[r][1] for r in rows]
        assert (split.lengths == 1024).all()
    assert data.vocab_size == 256 and data.max_length == 1024 and data.num_classes == 2


def test_difficulty_resolution_and_downsample_select_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "tasks.pathfinder.loader.DECODE_CHUNK", 5
    )  # several blocks, decoded by 2 workers
    write_official(tmp_path / "release", side=32, difficulty=DIFFICULTIES["hard"])
    folder, expected = write_official(
        tmp_path / "release", side=16, difficulty=DIFFICULTIES["hard"], empty=()
    )
    task = Pathfinder(
        name="pathx",
        resolution=16,
        difficulty="hard",
        data_dir=str(tmp_path / "release"),
        downsample=2,
        workers=2,
    )
    data = task.load(tmp_path, progress=False)
    assert data.name == "pathx" and data.max_length == 64
    rows = np.sort(split_indices(12, 42)["test"])
    want = downsample(np.stack([expected[r][0] for r in rows]), 2).reshape(len(rows), 64)
    np.testing.assert_array_equal(data.splits["test"].tokens, want)
    with pytest.raises(FileNotFoundError, match="lra-bench data import"):
        Pathfinder(resolution=32, difficulty="intermediate").load(tmp_path, progress=False)


def test_generates_when_missing_then_reuses_and_resumes(tmp_path, monkeypatch):
    import tasks.pathfinder.generator
    from tasks.pathfinder.shards import read_pathfinder_shards

    settings = {"count": 30, "seed": 5, "workers": 1}
    task = Pathfinder(resolution=32, difficulty="easy", generate=settings)
    data = task.load(tmp_path, progress=False)
    folder = task.generated_folder(tmp_path)
    assert data.notes["source"] == f"shards:{folder}"
    images, labels = read_pathfinder_shards(folder)
    assert images.shape == (30, 32, 32) and set(labels.tolist()) == {0, 1}
    rows = np.sort(split_indices(30, 42)["val"])
    np.testing.assert_array_equal(data.splits["val"].tokens, images[rows].reshape(3, -1))
    assert data.splits["val"].labels.tolist() == labels[rows].tolist()

    def no_generation(*args, **kwargs):
        raise AssertionError("finished data must not be generated again")

    monkeypatch.setattr(tasks.pathfinder.generator, "generate_pathfinder_shards", no_generation)
    again = Pathfinder(resolution=32, difficulty="easy", generate=settings).load(
        tmp_path, progress=False
    )
    assert again.fingerprint == data.fingerprint
    monkeypatch.undo()

    # An interrupted generation (manifest not complete) is not data: it is resumed.
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(FileNotFoundError):
        read_pathfinder_shards(folder)
    resumed = Pathfinder(resolution=32, difficulty="easy", generate=settings).load(
        tmp_path, progress=False
    )
    np.testing.assert_array_equal(read_pathfinder_shards(folder)[0], images)
    np.testing.assert_array_equal(resumed.splits["train"].tokens, data.splits["train"].tokens)


def test_data_generated_before_issue_17_is_not_read(tmp_path):
    """A finished folder at the name the loader used before the generator's images changed
    (issue #17) is neither read nor overwritten: the data are generated anew beside it."""
    settings = {"count": 4, "seed": 5, "workers": 1}
    old = tmp_path / "pathfinder" / "generated-32-easy-4-5"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"complete": True, "count": 4, "shards": 0}))
    task = Pathfinder(resolution=32, difficulty="easy", generate=settings)
    kind, folder = task.locate(tmp_path, progress=False)
    assert kind == "shards" and folder != old and (folder / "shard_0.npz").exists()
    assert sorted(p.name for p in old.iterdir()) == ["manifest.json"]


def test_missing_data_without_generate_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"lra-bench data import.*task.data.generate"):
        Pathfinder(resolution=128).load(tmp_path, progress=False)
