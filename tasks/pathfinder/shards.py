"""Compact on-disk form of generated Pathfinder data: array shards plus a manifest.

A folder holds `shard_<k>.npz` (k = 0, 1, ...; zlib-compressed, ~66-89% of pixels are 0) with
`images` uint8 (n, H, W) and `labels` int64 (n,), and `manifest.json`, which names the
generator settings and the number of images and says whether generation finished. Reading
the official layout (PNG files + text metadata) is the task loader's job; this is the fast path
for data we generate ourselves (no PNG decoding, one file per 1000 images).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tasks.files import replaced_atomically

MANIFEST = "manifest.json"
_SHARD = re.compile(r"^shard_(\d+)\.npz$")


def shard_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard_{index}.npz"


def write_shard(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Writes one shard atomically (temporary file, then rename).

    images: (n, H, W) uint8; labels: (n,) integers in {0, 1}."""
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f"expected images uint8 (n, H, W) and labels (n,), got {images.dtype} "
            f"{images.shape} and {labels.shape}"
        )
    path = Path(path)
    with replaced_atomically(path) as tmp:
        np.savez_compressed(tmp, images=images, labels=labels)


def read_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, H, W), labels int64 (n,)) of one shard."""
    with np.load(path) as data:
        return data["images"], data["labels"].astype(np.int64)


def write_manifest(folder: Path, manifest: dict) -> None:
    path = Path(folder) / MANIFEST
    with replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def shard_indices(folder: Path) -> list[int]:
    """Indices k of the shard_<k>.npz files in `folder`, sorted numerically."""
    found = (_SHARD.match(p.name) for p in Path(folder).iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def read_pathfinder_shards(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of a finished shard folder, in shard order.

    Returns (images uint8 (N, H, W), labels int64 (N,)). Raises FileNotFoundError when the
    folder holds no finished generation (no manifest, or generation did not complete) and
    ValueError when shards are missing or disagree with the manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None or not manifest.get("complete"):
        raise FileNotFoundError(
            f"{folder} holds no finished Pathfinder shards (missing or incomplete {MANIFEST}); "
            "generate them with `lra-bench data generate pathfinder --format shards`"
        )
    indices = shard_indices(folder)
    expected = list(range(manifest["shards"]))
    if indices != expected:
        missing = sorted(set(expected) - set(indices))
        raise ValueError(f"{folder}: shard files {missing[:5]} missing (expected {len(expected)})")
    parts = [read_shard(shard_path(folder, k)) for k in indices]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    if len(labels) != manifest["count"]:
        raise ValueError(f"{folder}: {len(labels)} images, manifest says {manifest['count']}")
    return images, labels
