"""Image: sequential grayscale CIFAR-10 classification (LRA section 2.4).

Data: CIFAR-10 (Krizhevsky, 2009, "Learning Multiple Layers of Features from Tiny Images"),
50k train and 10k test 32x32 RGB images, 10 classes. As in LRA: each image is converted to gray
with TensorFlow's weights and re-quantised to uint8 (tasks/pixels.py), the pixel values 0..255
are the tokens (vocabulary 256), flattened row-major to 1024. Splits: the first 90% of the
training set (45k) train, the last 10% (5k) validate, test (10k) tests.

Note: LRA's "first 90%" is of TFDS's `cifar10` order, which TFDS shuffles when it builds the
data set; ours is the source's order (the pickle batches data_batch_1..5, or the hub's rows), so
the 5k validation images are a different (equally random) draw.

Sources, tried in this order when `source: auto`:
1. `data_dir`, or `<data_root>/image/cifar-10-batches-py`: the python pickles of
   https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz;
2. the Hugging Face hub: `datasets.load_dataset("uoft-cs/cifar10")` (columns img, label),
   cached under `<data_root>/hf`.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tasks.base import Source, Task, subset_rows
from tasks.cache import source_fingerprint
from tasks.pixels import PIXEL_VOCAB_SIZE, downsample, pixel_split, tf_grayscale

NUM_CLASSES = 10
SIDE = 32
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
SOURCES = ("auto", "pickle", "huggingface")
SPLITS = ("train", "val", "test")


def read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (N, 32, 32, 3) uint8 RGB and labels (N,) int64.
    The file holds b'data' (N, 3072): the red, green and blue 32x32 planes of each image."""
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(batch[b"labels"], dtype=np.int64)


def split_train(count: int) -> tuple[slice, slice]:
    """(train, validation) slices of the training set: first 90%, last 10% (45k / 5k)."""
    train = count - count // 10
    return slice(0, train), slice(train, count)


class Image(Task):
    """The Image task (grayscale CIFAR-10). See the module docstring for the sources.

    source:      auto | pickle | huggingface.
    data_dir:    a cifar-10-batches-py folder; null = look under data_root.
    hf_name:     the hub dataset for `huggingface`.
    downsample:  average f x f pixel blocks (1 = LRA; 2 gives 16x16 = 256 tokens for the mini
                 profile on a CPU).
    examples:    {train: n, val: n, test: n}: seeded random subsets (mini and smoke).
    subset_seed: seed of the subsets.
    """

    name = "image"
    vocab_size = PIXEL_VOCAB_SIZE
    intensities = True
    num_classes = NUM_CLASSES

    def __init__(
        self,
        source: str = "auto",
        data_dir: str | None = None,
        hf_name: str = "uoft-cs/cifar10",
        downsample: int = 1,
        examples: dict | None = None,
        subset_seed: int = 0,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"task.data.source={source!r}; choose from {SOURCES}")
        if SIDE % int(downsample):
            raise ValueError(f"task.data.downsample={downsample} does not divide {SIDE}")
        self.source = source
        self.data_dir = Path(data_dir) if data_dir else None
        self.hf_name = hf_name
        self.downsample = int(downsample)
        self.examples = dict(examples or {})
        self.subset_seed = int(subset_seed)

    @property
    def max_length(self) -> int:
        return (SIDE // self.downsample) ** 2

    def resolve(self, data_root: Path) -> tuple[str, Path | None]:
        folder = self.data_dir or Path(data_root) / "image" / "cifar-10-batches-py"
        if self.source in ("auto", "pickle"):
            if all((folder / name).exists() for name in (*TRAIN_FILES, TEST_FILE)):
                return "pickle", folder
            if self.source == "pickle" or self.data_dir:
                raise FileNotFoundError(self._missing_message(data_root, folder))
        return "huggingface", None

    def _missing_message(self, data_root: Path, folder: Path) -> str:
        return (
            f"CIFAR-10 not found: {folder} lacks data_batch_1..5 and test_batch. Fix: extract "
            f"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into "
            f"{Path(data_root) / 'image'}; or allow the download: task.data.source=huggingface "
            f"({self.hf_name}) with network access"
        )

    def _load_hub(self, data_root: Path):
        import datasets

        try:
            return datasets.load_dataset(self.hf_name, cache_dir=str(Path(data_root) / "hf"))
        except Exception as error:
            raise FileNotFoundError(
                f"{self._missing_message(data_root, Path(data_root) / 'image')} "
                f"(load_dataset({self.hf_name!r}) failed: {type(error).__name__}: {error})"
            ) from error

    def read_rgb(self, kind: str, folder: Path | None, dataset, progress: bool):
        """{'train': (images (N, 32, 32, 3) uint8, labels), 'test': (...)} in source order."""
        if kind == "pickle":
            parts = [read_cifar_pickle(folder / name) for name in TRAIN_FILES]
            train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            return {"train": train, "test": read_cifar_pickle(folder / TEST_FILE)}
        result = {}
        for split in ("train", "test"):
            part = dataset[split]
            images = np.empty((len(part), SIDE, SIDE, 3), dtype=np.uint8)
            column = "img" if "img" in part.column_names else "image"
            bar = tqdm(
                total=len(part),
                desc=f"decoding CIFAR-10 {split}",
                unit="img",
                disable=not progress,
                file=sys.stderr,
            )
            with bar:
                for index, example in enumerate(part):
                    images[index] = np.asarray(example[column].convert("RGB"))
                    bar.update(1)
            result[split] = (images, np.asarray(part["label"], dtype=np.int64))
        return result

    def find_source(self, data_root: Path, progress: bool) -> Source:
        kind, folder = self.resolve(data_root)
        if kind == "pickle":
            files = [folder / name for name in (*TRAIN_FILES, TEST_FILE)]
            fingerprint = "pickle:" + source_fingerprint(files, folder)
        else:
            # Keyed by the frozen hub name: a cached copy loads offline (see tasks/text.py).
            fingerprint = f"hf:{self.hf_name}"
        return Source(kind, folder, fingerprint, f"{kind}:{folder or self.hf_name}")

    def cache_params(self) -> dict:
        return {
            "grayscale": "tf.image.rgb_to_grayscale",
            "split": "train[:90%] / train[90%:] / test",
            "downsample": self.downsample,
            "examples": {split: self.examples.get(split) for split in SPLITS},
            "subset_seed": self.subset_seed,
        }

    def build_cache(self, builder, source: Source, data_root: Path, progress: bool) -> dict:
        dataset = self._load_hub(data_root) if source.kind == "huggingface" else None
        rgb = self.read_rgb(source.kind, source.folder, dataset, progress)
        train_rows, val_rows = split_train(len(rgb["train"][0]))
        parts = {
            "train": (rgb["train"][0][train_rows], rgb["train"][1][train_rows]),
            "val": (rgb["train"][0][val_rows], rgb["train"][1][val_rows]),
            "test": rgb["test"],
        }
        for split, (images, labels) in parts.items():
            rows = subset_rows(len(labels), self.examples.get(split), self.subset_seed)
            gray = downsample(tf_grayscale(images[rows]), self.downsample)
            builder.put(split, pixel_split(gray, labels[rows]))
        return {}
