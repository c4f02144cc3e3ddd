"""Images as pixel-token sequences (LRA's Image, Pathfinder and Path-X tasks).

Each 8-bit gray pixel is a token id 0..255 (vocabulary 256); an image is flattened row-major,
as LRA's `inputs.reshape(batch, -1)`. Every position is real: lengths are always the full
H * W, and the padding mask comes from them, not from `tokens == 0` (0 is a black pixel; LRA's
Transformer masks black pixels as keys, LRA_SPEC pitfall 10, which we deliberately do not copy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.base import Split

PIXEL_VOCAB_SIZE = 256
# tf.image.rgb_to_grayscale weights (ITU-R 601 luma, as TensorFlow writes them).
TF_GRAY_WEIGHTS = np.asarray([0.2989, 0.5870, 0.1140], dtype=np.float32)


def tf_grayscale(rgb: np.ndarray) -> np.ndarray:
    """TensorFlow's `rgb_to_grayscale` on uint8 images, bit for bit in float32.

    rgb: (..., 3) uint8 -> (...) uint8. TF converts to float (x * (1/255)), takes the weighted
    sum, and converts back with `convert_image_dtype`: multiply by 255.5 and cast, which
    truncates. So pure green (0, 255, 0) gives 149, where PIL's rounded integer luma gives 150.
    """
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    scaled = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    gray = (
        scaled[..., 0] * TF_GRAY_WEIGHTS[0]
        + scaled[..., 1] * TF_GRAY_WEIGHTS[1]
        + scaled[..., 2] * TF_GRAY_WEIGHTS[2]
    )
    return (gray * np.float32(255.5)).astype(np.uint8)


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks, rounded to nearest: (N, H, W) uint8 ->
    (N, H / factor, W / factor) uint8. For the mini profiles only (shorter sequences on a CPU);
    LRA itself never downsamples."""
    if factor == 1:
        return images
    n, h, w = images.shape
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not divisible by downsample={factor}")
    blocks = images.reshape(n, h // factor, factor, w // factor, factor).astype(np.float32)
    return np.floor(blocks.mean(axis=(2, 4)) + 0.5).astype(np.uint8)


def pixel_split(images: np.ndarray, labels: np.ndarray) -> Split:
    """A Split of (N, H, W) uint8 images, flattened row-major to (N, H * W) pixel tokens."""
    n = len(images)
    tokens = np.ascontiguousarray(images.reshape(n, -1), dtype=np.uint8)
    lengths = np.full(n, tokens.shape[1], dtype=np.int32)
    return Split(tokens=tokens, lengths=lengths, labels=np.asarray(labels, dtype=np.int64))


def decode_png(path: Path, side: int) -> np.ndarray:
    """(side, side) uint8 gray pixels of one PNG, as stored (mode L; another mode is converted
    to L). LRA decodes Pathfinder PNGs with tf.image.decode_png, which gives the same values."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode != "L":
            image = image.convert("L")
        pixels = np.asarray(image, dtype=np.uint8)
    if pixels.shape != (side, side):
        raise ValueError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, expected {side}")
    return pixels


def decode_pngs(job: tuple[list[str], int]) -> np.ndarray:
    """(n, side, side) uint8 of a block of PNG paths; job = (paths, side). A module-level
    function of a light module, so that pool workers start fast."""
    paths, side = job
    return np.stack([decode_png(Path(p), side) for p in paths])
