"""Pathfinder / Path-X data generation (LRA, Tay et al. 2021, from the generator of Linsley et al.
2018 and Kim, Linsley et al. 2020, drewlinsley/pathfinder): batches of images, seeded per batch,
built in worker processes, written either in the official release layout or as array shards.

Official layout (what `lra_release` holds and LRA / S4 loaders read):
    <out>/pathfinder<R>/<curv_*>/imgs/<k>/sample_<i>.png     8-bit grey PNG (mode 'L')
    <out>/pathfinder<R>/<curv_*>/metadata/<k>.npy            plain text, one line per image:
    imgs/<k> sample_<i>.png <i> <label> <continuity> <contour_length> <distractor_length>
    <paddle_length> <paddle_thickness> <paddle_margin> <len(paddle_contrast_list)>
Shards (tasks/pathfinder/shards.py): <out>/shard_<k>.npz, faster to write and to read.

Batch k holds images k*B .. (k+1)*B - 1 (B = 1000, as the release's 200 files x 1000 images)
and draws them from its own generator seeded by (seed, settings, k): the same seed gives the
same images whatever the number of workers and in both formats. A manifest.json records the
settings; a run interrupted part-way resumes, skipping finished batches.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.pathfinder.params import DIFFICULTIES, PathfinderParams, lra_params
from tasks.pathfinder.shards import (
    read_manifest,
    shard_path,
    write_manifest,
    write_shard,
)
from tasks.pathfinder.snakes import PathfinderSample, draw_sample

BATCH_SIZE = 1000
# Which images a (seed, settings) pair gives. Bump it whenever they change, so that folders
# made before are neither resumed with new batches nor read as current data (the manifest and
# the loader's folder name carry it). 2: the original's seed border rule (issue #17), which
# changed the distribution (4x fewer distractors at 32 px), not only the draws.
GENERATOR_VERSION = 2


def batch_seed(seed: int, params: PathfinderParams, batch: int) -> int:
    """The seed of batch `batch`: distinct per (seed, settings, batch)."""
    text = f"pathfinder:{seed}:{params.digest()}:{batch}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def generate_batch(
    params: PathfinderParams, seed: int, batch: int, size: int
) -> list[PathfinderSample]:
    """The first `size` images of batch `batch`."""
    rng = np.random.default_rng(batch_seed(seed, params, batch))
    return [draw_sample(params, rng) for _ in range(size)]


def metadata_line(batch: int, index: int, label: int, margin: int, p: PathfinderParams) -> str:
    """One line of metadata/<batch>.npy, the 11 columns of `snakes2.accumulate_meta`."""
    columns = [
        f"imgs/{batch}",
        f"sample_{index}.png",
        index,
        label,
        p.continuity,
        p.contour_length,
        p.distractor_length,
        p.paddle_length,
        p.paddle_thickness,
        margin,
        len(p.paddle_contrast_list),
    ]
    return " ".join(str(c) for c in columns) + "\n"


def _batch_sizes(count: int, batch_size: int) -> list[int]:
    full, rest = divmod(count, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def _write_shard_job(job: tuple) -> int:
    folder, params, seed, batch, size = job
    samples = generate_batch(params, seed, batch, size)
    images = np.stack([s.image for s in samples])
    labels = np.array([s.label for s in samples], dtype=np.int64)
    write_shard(shard_path(folder, batch), images, labels)
    return size


def _write_official_job(job: tuple) -> int:
    folder, params, seed, batch, size = job
    samples = generate_batch(params, seed, batch, size)
    image_dir = folder / "imgs" / str(batch)
    image_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, sample in enumerate(samples):
        Image.fromarray(sample.image).save(image_dir / f"sample_{index}.png")
        lines.append(metadata_line(batch, index, sample.label, sample.margin, params))
    # The metadata file is written last and atomically: its presence marks a finished batch.
    metadata = folder / "metadata" / f"{batch}.npy"
    tmp = metadata.with_name(f".{batch}.npy.tmp")
    tmp.write_text("".join(lines))
    tmp.replace(metadata)
    return size


def _prepare(folder: Path, manifest: dict, overwrite: bool, ours: list[str]) -> None:
    """Makes `folder` ready: new, resumable (same settings), or cleared when `overwrite`."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = read_manifest(folder)
    same = existing is not None and {**existing, "complete": False} == manifest
    if same:
        return
    holds_data = existing is not None or any(next(folder.glob(p), None) for p in ours)
    if holds_data and not overwrite:
        raise FileExistsError(
            f"{folder} holds Pathfinder data generated with other settings, by another "
            f"generator version (ours: {GENERATOR_VERSION}) or not by us; "
            "pass --overwrite to replace it"
        )
    for pattern in ours:
        for path in folder.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (folder / "manifest.json").unlink(missing_ok=True)


def _generate(
    folder: Path,
    job: Callable[[tuple], int],
    done: Callable[[int], bool],
    manifest: dict,
    params: PathfinderParams,
    seed: int,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    sizes = _batch_sizes(manifest["count"], manifest["batch_size"])
    jobs = [(folder, params, seed, k, n) for k, n in enumerate(sizes) if not done(k)]
    if progress:
        progress(sum(sizes) - sum(j[-1] for j in jobs))
    write_manifest(folder, manifest)
    if workers <= 1 or len(jobs) <= 1:
        for item in jobs:
            finished = job(item)
            if progress:
                progress(finished)
    else:
        # spawn: workers start clean (no forked RNG or thread state); each builds its stamps.
        with get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for finished in pool.imap_unordered(job, jobs):
                if progress:
                    progress(finished)
    write_manifest(folder, {**manifest, "complete": True})


def _settings(
    fmt: str, resolution: int, difficulty: str, count: int, seed: int, batch_size: int, params
) -> tuple[PathfinderParams, dict]:
    if count < 0 or batch_size < 1:
        raise ValueError(f"need count >= 0 and batch size >= 1, got {count}, {batch_size}")
    params = params or lra_params(resolution, difficulty)
    if params.resolution != resolution:
        raise ValueError(f"params are for {params.resolution} px, not {resolution}")
    manifest = {
        "format": fmt,
        "generator_version": GENERATOR_VERSION,
        "resolution": resolution,
        "difficulty": difficulty,
        "count": count,
        "seed": seed,
        "batch_size": batch_size,
        "shards": len(_batch_sizes(count, batch_size)),
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()},
        "complete": False,
    }
    return params, manifest


def generate_pathfinder_shards(
    out_dir: Path,
    resolution: int = 32,
    difficulty: str = "hard",
    count: int = 200_000,
    seed: int = 0,
    workers: int = 1,
    images_per_shard: int = BATCH_SIZE,
    params: PathfinderParams | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Generates `count` images into `out_dir/shard_<k>.npz` (+ manifest.json); returns out_dir.

    params: settings other than LRA's for (resolution, difficulty) (tests, small profiles)."""
    params, manifest = _settings(
        "shards", resolution, difficulty, count, seed, images_per_shard, params
    )
    folder = Path(out_dir)
    _prepare(folder, manifest, overwrite, ["shard_*.npz"])
    _generate(
        folder,
        _write_shard_job,
        lambda k: shard_path(folder, k).exists(),
        manifest,
        params,
        seed,
        workers,
        progress,
    )
    return folder


def generate_pathfinder_official(
    out_dir: Path,
    resolution: int = 32,
    difficulty: str = "hard",
    count: int = 200_000,
    seed: int = 0,
    workers: int = 1,
    images_per_batch: int = BATCH_SIZE,
    params: PathfinderParams | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Generates `count` images in the official layout under
    `out_dir/pathfinder<R>/<curv_*>/`; returns that folder."""
    params, manifest = _settings(
        "official", resolution, difficulty, count, seed, images_per_batch, params
    )
    folder = Path(out_dir) / f"pathfinder{resolution}" / DIFFICULTIES[difficulty][0]
    _prepare(folder, manifest, overwrite, ["imgs", "metadata"])
    (folder / "metadata").mkdir(exist_ok=True)
    _generate(
        folder,
        _write_official_job,
        lambda k: (folder / "metadata" / f"{k}.npy").exists(),
        manifest,
        params,
        seed,
        workers,
        progress,
    )
    return folder
