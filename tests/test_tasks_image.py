import pickle

import numpy as np
import pytest

from tasks.image import TEST_FILE, TRAIN_FILES, Image, read_cifar_pickle, split_train
from tasks.pixels import downsample, tf_grayscale


@pytest.mark.parametrize(
    "rgb, gray",
    [
        ((0, 0, 0), 0),
        ((255, 255, 255), 255),  # 0.9999 * 255.5 = 255.47
        ((255, 0, 0), 76),  # 0.2989 * 255.5 = 76.37
        ((0, 255, 0), 149),  # 149.98, truncated by TF's cast (PIL's rounded luma gives 150)
        ((0, 0, 255), 29),  # 29.13
        ((100, 150, 200), 141),  # 140.74 / 255 * 255.5 = 141.02
    ],
)
def test_grayscale_is_tensorflows(rgb, gray):
    assert tf_grayscale(np.asarray([[rgb]], dtype=np.uint8)).tolist() == [[gray]]


def test_downsample_averages_blocks_rounding_half_up():
    image = np.asarray([[[0, 1, 10, 10], [1, 1, 10, 11], [0, 0, 255, 255], [0, 0, 255, 254]]])
    assert downsample(image.astype(np.uint8), 2).tolist() == [[[1, 10], [0, 255]]]
    with pytest.raises(ValueError, match="not divisible"):
        downsample(np.zeros((1, 6, 6), dtype=np.uint8), 4)


def rgb_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def write_cifar_pickles(folder, per_batch=4, test=3):
    """The python batches with distinct random images; image k of the training set has label
    k % 10 and seed k, test image k seed 1000 + k."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = [
        (name, range(b * per_batch, (b + 1) * per_batch)) for b, name in enumerate(TRAIN_FILES)
    ]
    for name, seeds in [*batches, (TEST_FILE, range(1000, 1000 + test))]:
        images = np.stack([rgb_image(s) for s in seeds])
        planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R, G, B planes
        batch = {b"data": planes, b"labels": [s % 10 for s in seeds], b"batch_label": b"x"}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    return folder


def test_reads_pickle_layout(tmp_path):
    folder = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    images, labels = read_cifar_pickle(folder / "data_batch_2")
    np.testing.assert_array_equal(images[1], rgb_image(5))
    assert labels.tolist() == [4, 5, 6, 7]


def test_task_splits_grays_and_flattens(tmp_path):
    write_cifar_pickles(tmp_path / "image" / "cifar-10-batches-py")
    data = Image().load(tmp_path, progress=False)  # default location under data_root
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 18, "val": 2, "test": 3}
    assert split_train(50_000) == (slice(0, 45_000), slice(45_000, 50_000))
    train, val, test = data.splits["train"], data.splits["val"], data.splits["test"]
    np.testing.assert_array_equal(train.tokens[7], tf_grayscale(rgb_image(7)).reshape(-1))
    np.testing.assert_array_equal(val.tokens[0], tf_grayscale(rgb_image(18)).reshape(-1))
    np.testing.assert_array_equal(test.tokens[2], tf_grayscale(rgb_image(1002)).reshape(-1))
    assert train.labels.tolist() == [k % 10 for k in range(18)] and val.labels.tolist() == [8, 9]
    assert (train.lengths == 1024).all() and train.tokens.dtype == np.uint8
    assert data.vocab_size == 256 and data.max_length == 1024 and data.num_classes == 10


def test_downsample_and_subset_options(tmp_path):
    folder = write_cifar_pickles(tmp_path / "c")
    task = Image(data_dir=str(folder), downsample=4, examples={"train": 5}, subset_seed=1)
    data = task.load(tmp_path, progress=False)
    rows = np.sort(np.random.default_rng(1).permutation(18)[:5])
    expected = downsample(tf_grayscale(np.stack([rgb_image(r) for r in rows])), 4)
    np.testing.assert_array_equal(data.splits["train"].tokens, expected.reshape(5, 64))
    assert data.max_length == 64 and len(data.splits["test"]) == 3


def test_hugging_face_hub_path(tmp_path, monkeypatch):
    """load_dataset("uoft-cs/cifar10") returns PIL images in column `img`; here the call returns
    the same rows from local parquet files (no network)."""
    import datasets
    from PIL import Image as PILImage

    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)}
    )
    for split, seeds in {"train": range(10), "test": range(1000, 1002)}.items():
        rows = {
            "img": [PILImage.fromarray(rgb_image(s)) for s in seeds],
            "label": [s % 10 for s in seeds],
        }
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(tmp_path / f"{split}.parquet")
        )
    real_load = datasets.load_dataset

    def fake_hub(name, **kwargs):
        assert name == "uoft-cs/cifar10"
        files = {s: str(tmp_path / f"{s}.parquet") for s in ("train", "test")}
        return real_load("parquet", data_files=files, cache_dir=kwargs["cache_dir"])

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    data = Image(source="huggingface").load(tmp_path, progress=False)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 9, "val": 1, "test": 2}
    np.testing.assert_array_equal(
        data.splits["val"].tokens[0], tf_grayscale(rgb_image(9)).reshape(-1)
    )
    assert data.splits["test"].labels.tolist() == [0, 1]


def test_missing_pickles_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        Image(source="pickle").load(tmp_path, progress=False)
