"""Pathfinder and Path-X: are the two circles connected by one dashed path? (LRA 2.5, 2.6)

Data: the Pathfinder challenge (Linsley et al., 2018, "Learning long-range spatial dependencies
with horizontal gated recurrent units"), as rendered for LRA (Tay et al., 2021): 200,000 gray
images per difficulty; label 1 = the markers lie on the two ends of one contour. LRA's Pathfinder
is 32x32 `hard`, Path-X 128x128 `hard`. Each pixel 0..255 is a token (vocabulary 256), flattened
row-major (1024 or 16,384 tokens).

Sources, in this order:
1. `data_dir`: a folder in the official layout (the release root, `pathfinder<R>/`, or one
   difficulty folder) or a folder of generator shards (tasks/pathfinder/shards.py);
2. `<data_root>/lra_release/pathfinder<R>/<difficulty folder>` (`lra-bench data import`);
3. `<data_root>/pathfinder/generated-<id>/`, generated there first when `generate` is set (the
   mini and smoke profiles) by tasks/pathfinder/generator.py; <id> names the generator version,
   so data an older generator made there is not read.

Official layout: `<difficulty>/metadata/<k>.npy` are TEXT files (one line per image, 11
space-separated columns: subpath, file name, index, label, ...), images at
`<difficulty>/<subpath>/<file name>`. Metadata files are read in order of k (as S4 does), empty
PNGs are skipped (the release has one: pathfinder32/curv_baseline/imgs/0/sample_172.png).
Splits: 80/10/10 of a permutation drawn with a fixed seed, exactly as S4's
`random_split(dataset, [n - 2 * n // 10, n // 10, n // 10], torch.Generator().manual_seed(42))`,
so with the default seed our splits are S4's (LRA's own order, from a Beam pipeline, is not
reproducible).
"""

from __future__ import annotations

import json
import sys
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tasks.base import Source, Task
from tasks.cache import CacheBuilder, source_fingerprint
from tasks.pixels import PIXEL_VOCAB_SIZE, decode_pngs, downsample, pixel_split
from tasks.release import IMPORT_HINT, release_root

NUM_CLASSES = 2
DIFFICULTIES = {
    "easy": "curv_baseline",
    "intermediate": "curv_contour_length_9",
    "hard": "curv_contour_length_14",
}
DECODE_CHUNK = 2000  # images per worker task


def read_metadata(folder: Path) -> list[tuple[str, int]]:
    """[(image path relative to `folder`, label)] of one official difficulty folder, metadata
    files in order of their number, lines in file order."""
    files = sorted((folder / "metadata").glob("*.npy"), key=lambda p: int(p.stem))
    if not files:
        raise FileNotFoundError(f"{folder / 'metadata'} has no <k>.npy metadata files")
    entries = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            columns = line.split()
            if not columns:
                continue
            if len(columns) < 4 or columns[3] not in ("0", "1"):
                raise ValueError(f"{path}:{number}: expected >= 4 columns with label 0/1 in 4th")
            entries.append((f"{columns[0]}/{columns[1]}", int(columns[3])))
    return entries


def official_entries(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, labels (N,) int64 and skipped (empty) image names of one official
    difficulty folder, in metadata order."""
    paths, labels, skipped = [], [], []
    for relative, label in read_metadata(folder):
        path = folder / relative
        if path.stat().st_size == 0:
            skipped.append(relative)
        else:
            paths.append(path)
            labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64), skipped


def decode_images(paths: list[Path], resolution: int, pool=None):
    """Yields (n, R, R) uint8 blocks of the images at `paths`, in order; `pool` (a
    multiprocessing pool) decodes blocks in parallel."""
    jobs = [
        ([str(p) for p in paths[start : start + DECODE_CHUNK]], resolution)
        for start in range(0, len(paths), DECODE_CHUNK)
    ]
    yield from (pool.imap(decode_pngs, jobs) if pool is not None else map(decode_pngs, jobs))


def split_indices(count: int, seed: int) -> dict[str, np.ndarray]:
    """{train, val, test} row indices: 80/10/10 of torch.randperm(count) seeded with `seed`,
    which is what torch's random_split draws (S4's Pathfinder split with seed 42)."""
    val = test = count // 10
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    train = count - val - test
    return {"train": order[:train], "val": order[train : train + val], "test": order[train + val :]}


def generated_complete(folder: Path) -> bool:
    """Whether `folder` holds a finished generation (the generator's manifest says so)."""
    manifest = Path(folder) / "manifest.json"
    return manifest.exists() and bool(json.loads(manifest.read_text()).get("complete"))


def find_official(folder: Path, resolution: int, difficulty: str) -> Path | None:
    """The difficulty folder inside `folder`: a data root, the release root, `pathfinder<R>/`,
    or the difficulty folder itself."""
    name = DIFFICULTIES[difficulty]
    inside_release = Path(f"pathfinder{resolution}") / name
    candidates = (
        folder,
        folder / name,
        folder / inside_release,
        release_root(folder) / inside_release,
    )
    for candidate in candidates:
        if (candidate / "metadata").is_dir():
            return candidate
    return None


class Pathfinder(Task):
    """Pathfinder (32x32) and Path-X (128x128); one class, two task configs.

    name:        the task's name in records ('pathfinder' or 'pathx').
    resolution:  image side (32 Pathfinder, 128 Path-X; the release also has 64 and 256).
    difficulty:  easy (curv_baseline) | intermediate (curv_contour_length_9) |
                 hard (curv_contour_length_14, LRA's choice for both tasks).
    data_dir:    an official folder or generator shards; null = look under data_root.
    generate:    {count, seed, workers}: generate this many images when no data is found (mini
                 and smoke profiles); null = an error that says how to get the data.
    split_seed:  seed of the 80/10/10 split (42 = S4's).
    downsample:  average f x f pixel blocks (1 = LRA; mini profiles on a CPU may shrink).
    workers:     processes decoding official PNGs.
    """

    vocab_size = PIXEL_VOCAB_SIZE
    intensities = True
    num_classes = NUM_CLASSES

    def __init__(
        self,
        name: str = "pathfinder",
        resolution: int = 32,
        difficulty: str = "hard",
        data_dir: str | None = None,
        generate: dict | None = None,
        split_seed: int = 42,
        downsample: int = 1,
        workers: int = 2,
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f"task.data.difficulty={difficulty!r}; choose from {list(DIFFICULTIES)}"
            )
        if int(resolution) % int(downsample):
            raise ValueError(f"task.data.downsample={downsample} does not divide {resolution}")
        self.name = name
        self.resolution = int(resolution)
        self.difficulty = difficulty
        self.data_dir = Path(data_dir) if data_dir else None
        self.generate = dict(generate) if generate else None
        self.split_seed = int(split_seed)
        self.downsample = int(downsample)
        self.workers = int(workers)

    @property
    def max_length(self) -> int:
        return (self.resolution // self.downsample) ** 2

    def generated_folder(self, data_root: Path) -> Path:
        from tasks.pathfinder.generator import GENERATOR_VERSION

        settings = self.generate or {}
        ident = (
            f"v{GENERATOR_VERSION}-{self.resolution}-{self.difficulty}-"
            f"{settings.get('count')}-{settings.get('seed', 0)}"
        )
        return Path(data_root) / "pathfinder" / f"generated-{ident}"

    def locate(self, data_root: Path, progress: bool = True) -> tuple[str, Path]:
        """('official', difficulty folder) or ('shards', folder), generating shards if allowed."""
        if self.data_dir is not None:
            official = find_official(self.data_dir, self.resolution, self.difficulty)
            if official is not None:
                return "official", official
            if self.data_dir.is_dir():
                return "shards", self.data_dir
            raise FileNotFoundError(f"Pathfinder data_dir {self.data_dir} does not exist")
        official = find_official(release_root(data_root), self.resolution, self.difficulty)
        if official is not None:
            return "official", official
        generated = self.generated_folder(data_root)
        if generated_complete(generated):
            return "shards", generated
        if self.generate is None:
            raise FileNotFoundError(
                f"Pathfinder {self.resolution}x{self.resolution} {self.difficulty} not found "
                f"under {release_root(data_root)}; "
                + IMPORT_HINT.format(root=data_root)
                + ", or generate it: set task.data.generate={count: N} (the mini profile does)"
            )
        self._generate_into(generated, progress)
        return "shards", generated

    def _generate_into(self, folder: Path, progress: bool) -> None:
        """Generates shards straight into `folder`. The generator marks its manifest complete
        only at the end and resumes an interrupted folder of the same settings, so a half-made
        folder is never read as data (`generated_complete`) and never started over."""
        from tasks.pathfinder.generator import generate_pathfinder_shards

        count = int(self.generate["count"])
        bar = tqdm(
            total=count,
            desc=f"generating Pathfinder {self.resolution}x{self.resolution} {self.difficulty}",
            unit="img",
            disable=not progress,
            file=sys.stderr,
        )
        with bar:
            generate_pathfinder_shards(
                folder,
                resolution=self.resolution,
                difficulty=self.difficulty,
                count=count,
                seed=int(self.generate.get("seed", 0)),
                workers=int(self.generate.get("workers", self.workers)),
                progress=bar.update,
            )

    def find_source(self, data_root: Path, progress: bool) -> Source:
        kind, folder = self.locate(data_root, progress)
        if kind == "official":
            # Metadata by content; the images by the stats of their folders (200 of them): a
            # folder's mtime changes when an image is added, removed or renamed. Stat-ing or
            # reading 200k PNGs at every load would cost seconds; the release is never rewritten
            # in place.
            metadata = sorted((folder / "metadata").glob("*.npy"))
            image_folders = sorted(p for p in (folder / "imgs").iterdir() if p.is_dir())
            fingerprint = "official:" + source_fingerprint(metadata, folder)
            fingerprint += ":" + source_fingerprint(image_folders, folder, read_content=False)
        else:
            files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
            fingerprint = "shards:" + source_fingerprint(files, folder)
        return Source(kind, folder, fingerprint, f"{kind}:{folder}")

    def cache_params(self) -> dict:
        return {
            "resolution": self.resolution,
            "difficulty": self.difficulty,
            "split_seed": self.split_seed,
            "downsample": self.downsample,
        }

    def build_cache(self, builder, source: Source, data_root: Path, progress: bool) -> dict:
        if source.kind == "official":
            return {"skipped_empty_images": self._build_official(builder, source.folder, progress)}
        self._build_shards(builder, source.folder)
        return {}

    def _build_official(self, builder: CacheBuilder, folder: Path, progress: bool) -> list[str]:
        """Decodes the PNGs split by split, block by block (Path-X is 3.3 GB of pixels)."""
        paths, labels, skipped = official_entries(folder)
        bar = tqdm(
            total=len(paths),
            desc=f"decoding {folder.parent.name}/{folder.name}",
            unit="img",
            disable=not progress,
            file=sys.stderr,
        )
        # Worth a pool only beyond one block: spawning workers costs about a second.
        parallel = self.workers > 1 and len(paths) > DECODE_CHUNK
        pool = get_context("spawn").Pool(self.workers) if parallel else None
        try:
            with bar:
                for split, rows in split_indices(len(labels), self.split_seed).items():
                    rows = np.sort(rows)  # sorted: sequential reads; training shuffles anyway
                    writer = builder.writer(split, (self.max_length,), np.uint8)
                    start = 0
                    for block in decode_images([paths[i] for i in rows], self.resolution, pool):
                        part = pixel_split(
                            downsample(block, self.downsample),
                            labels[rows[start : start + len(block)]],
                        )
                        writer.append(part.tokens, part.lengths, part.labels)
                        start += len(block)
                        bar.update(len(block))
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        return skipped

    def _build_shards(self, builder: CacheBuilder, folder: Path) -> None:
        from tasks.pathfinder.shards import read_pathfinder_shards

        images, labels = read_pathfinder_shards(folder)
        if images.shape[1:] != (self.resolution, self.resolution):
            raise ValueError(f"{folder}: images {images.shape[1:]}, expected {self.resolution}")
        images = downsample(np.asarray(images, dtype=np.uint8), self.downsample)
        labels = np.asarray(labels, dtype=np.int64)
        for split, rows in split_indices(len(labels), self.split_seed).items():
            rows = np.sort(rows)
            builder.put(split, pixel_split(images[rows], labels[rows]))
