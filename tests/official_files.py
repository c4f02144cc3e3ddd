"""Small data sets in each official format, written by the tests themselves (no download works
here): an aclImdb folder, AAN TSVs, CIFAR-10 pickles, and the Pathfinder layout. Each writer
lays its files out under a data_root where the task loaders look (tasks/release.py)."""

import pickle

import numpy as np
from PIL import Image as PILImage

from tasks.image import TEST_FILE, TRAIN_FILES
from tasks.retrieval import SPLIT_FILES


def write_text(root):
    for split, count in (("train", 40), ("test", 20)):
        for label in ("pos", "neg"):
            folder = root / "text" / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                (folder / f"{i}_5.txt").write_text(f"{label} review number {i}: " + "x" * i)


def write_retrieval(root):
    folder = root / "lra_release" / "tsv_data"
    folder.mkdir(parents=True)
    rows = [f"{i % 2}.0\ta{i}\tb{i}\tpaper {i} text\tcited {i * 7} text\n" for i in range(80)]
    for name in SPLIT_FILES.values():
        (folder / name).write_text("".join(rows))


def write_image(root):
    folder = root / "image" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*TRAIN_FILES, TEST_FILE):
        batch = {
            b"data": rng.integers(0, 256, (16, 3072), dtype=np.uint8),
            b"labels": list(range(10)) + list(range(6)),
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def write_pathfinder(root):
    folder = root / "lra_release" / "pathfinder32" / "curv_baseline"
    (folder / "metadata").mkdir(parents=True)
    (folder / "imgs" / "0").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(50):
        PILImage.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), mode="L").save(
            folder / "imgs" / "0" / f"sample_{i}.png"
        )
        lines.append(f"imgs/0 sample_{i}.png {i} {i % 2} 1.0 6 2 2 0.5 1 1")
    (folder / "metadata" / "0.npy").write_text("\n".join(lines) + "\n")


# Tasks whose smoke data needs official files, and their writers.
WRITERS = {"text": write_text, "retrieval": write_retrieval, "image": write_image}
