"""Pixels of the Pathfinder generator (drewlinsley/pathfinder, Linsley et al. 2018; Kim, Linsley
et al. 2020): paddle stamps, occupancy-mask stamps, seed kernels, circle markers, the final
byte scaling. Everything here reproduces `snakes.draw_line_n_mask`, `snakes2.draw_circle` and
`scipy.misc.imsave` of the original commit ab9c130, with the same Pillow calls.

Why stamps: the original draws every paddle afresh (PIL line at `antialias_scale`, Lanczos
downsampling, a dilated copy for the occupancy mask), which is most of its 0.19 s per 32x32
image. A paddle's pixels depend only on its orientation (start points are integers and the
stamp is drawn in its own canvas), and the orientations come from finite sets: integer degrees
for seed paddles, and the directions to the integer candidate points of `get_coords_cmf` for
the rest. So each is drawn once per process and pasted with a slice.

Axis legend: y = row, x = column; a stamp is (S, S) with S = 2 * half + 1 and its start point at
the centre (half, half).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

# PIL's Lanczos filter, what scipy.misc.imresize(interp='lanczos') selected (resample=1).
_LANCZOS = Image.Resampling.LANCZOS


def translate(point: tuple[int, int], angle: float, distance: float) -> tuple[int, int]:
    """`snakes.translate_coord`: move `point` (y, x) by `distance` along `angle`, rounding up."""
    return (
        int(math.ceil(point[0] + float(distance) * math.sin(angle))),
        int(math.ceil(point[1] + float(distance) * math.cos(angle))),
    )


def flip_by_pi(angle: float) -> float:
    """`snakes.flip_by_pi`: the opposite direction, kept in [-pi, pi]."""
    return angle + math.pi if angle < 0 else angle - math.pi


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) bool disk, `snakes.generate_dilation_struct`."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x**2 + y**2 <= radius**2


def dilate(image: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Grey dilation (max over `footprint`, centred), pixels outside the image ignored, like
    cv2.dilate with its default border. image: (H, W); footprint: (k, k) bool, k odd."""
    r = footprint.shape[0] // 2
    height, width = image.shape
    padded = np.pad(image, r)  # zeros never win a max over non-negative images
    out = np.zeros_like(image)
    for dy, dx in zip(*np.nonzero(footprint)):
        np.maximum(out, padded[dy : dy + height, dx : dx + width], out=out)
    return out


def to_bytes(image: np.ndarray) -> np.ndarray:
    """scipy.misc.bytescale with its defaults: min-max scale a float image to uint8
    ((x - min) / (max - min) * 255, clipped, + 0.5, truncated); (H, W) -> (H, W) uint8."""
    low, high = float(image.min()), float(image.max())
    span = high - low if high > low else 1.0
    return (((image - low) * (255.0 / span)).clip(0, 255) + 0.5).astype(np.uint8)


def lanczos_downsample(hires: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """scipy.misc.imresize(..., interp='lanczos'): byte-scale (uint8 passes unchanged), then
    PIL Lanczos resize to size (H, W). Returns (H, W) uint8.

    Modern Pillow gives the same bytes as the PIL the original ran on (`ImagingStretch` with
    the ANTIALIAS = Lanczos-3 filter, resample=1): separable passes through an 8-bit image,
    each rounding (+0.5) and clipping negative lobes to 0 (checked against a re-implementation
    of that filter in tests/test_pathfinder_generator.py). Its positive side lobes leave the
    faint 1..5 pixels around every dash and disc (~17% of a 32 px hard image's pixels)."""
    data = hires if hires.dtype == np.uint8 else to_bytes(hires)
    resized = Image.fromarray(data).resize((size[1], size[0]), resample=_LANCZOS)
    return np.asarray(resized)


@dataclass(frozen=True)
class PaddleShape:
    """What fixes a paddle's pixels: length, thickness, gap margin m, supersampling factor."""

    length: int
    thickness: float
    margin: int
    antialias_scale: int

    @property
    def half(self) -> int:
        """Stamp half-size: `length + ceil(thickness) + margin` in the original."""
        return self.length + int(math.ceil(self.thickness)) + self.margin


def paddle_canvas(shape: PaddleShape, angle: float) -> np.ndarray:
    """The supersampled dash of `draw_line_n_mask` before downsampling: a PIL line (no
    anti-aliasing of its own) from the canvas centre, `length * aa` px along `angle`, width
    round(thickness * aa), value 255 on 0. Returns (2*half*aa + 1, 2*half*aa + 1) float32."""
    aa = shape.antialias_scale
    side_hires = shape.half * 2 * aa + 1
    centre = shape.half * aa
    head = translate((centre, centre), angle, shape.length * aa)
    canvas = Image.new("F", (side_hires, side_hires), "black")
    ImageDraw.Draw(canvas).line(
        [(centre, centre), (head[1], head[0])],
        fill="white",
        width=int(round(shape.thickness * aa)),
    )
    return np.asarray(canvas)


def draw_paddle(shape: PaddleShape, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """One paddle starting at the stamp centre and pointing along `angle` (radians).

    Returns (line, occupancy), both (S, S) uint8 as the original's Lanczos output before its
    `/255`: the anti-aliased dash, and the dash dilated by a disk of radius `margin` (drawn at
    `antialias_scale` and downsampled the same way), the footprint other paddles must avoid.
    Lanczos rings: a thin dash gets a halo of faint values (1..3 of 255) 2-3 px away, and so
    did the original's (see `lanczos_downsample`).
    """
    aa = shape.antialias_scale
    hires = paddle_canvas(shape, angle)
    side = shape.half * 2 + 1
    line = lanczos_downsample(hires, (side, side))
    # The original dilates the float image (values 0 / 255) and casts to uint8 before resizing.
    occupancy = lanczos_downsample(
        dilate(hires, disk(shape.margin * aa)).astype(np.uint8), (side, side)
    )
    return line, occupancy


def as_intensity(stamp_u8: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    """The original's paddle values: uint8 / 255 * contrast, stored in a float32 image
    (`Image.new('F')`), then used in float64 arithmetic. Same shape, float64."""
    return (stamp_u8.astype(np.float64) / 255 * contrast).astype(np.float32).astype(np.float64)


def candidate_offsets(radius: int) -> np.ndarray:
    """(K, 2) integer (dy, dx) of the candidate heads of `snakes.get_coords_cmf`: points on a
    circle of `radius` sampled every pixel of arc, truncated to integers, de-duplicated and
    sorted as np.unique sorts them.

    The original truncates absolute coordinates, pivot + r*sin; for in-image points that is
    pivot + floor(r*sin), so the set is the same around every pivot."""
    step = 360.0 / (2 * radius * np.pi)
    angles = np.arange(0, 360, step) * np.pi / 180
    points = np.stack(
        [np.floor(radius * np.sin(angles)), np.floor(radius * np.cos(angles))], axis=1
    ).astype(np.int64)
    return np.unique(points, axis=0)


def seed_kernel_offsets(occupancy_u8: np.ndarray, shape: PaddleShape) -> np.ndarray:
    """(n, 2) (dy, dx) offsets of the kernel `initialize_two_seeds` / `seed_snake` dilate the
    occupancy mask with: the paddle's occupancy stamp pasted with its start at (L+m+1, L+m+1)
    of a (2(L+m)+1)^2 canvas, cast to uint8 (so only pixels at full value 255 count), read
    relative to cv2's anchor, the canvas centre (L+m, L+m). A tail t is free when no t + offset
    is occupied."""
    reach = shape.length + shape.margin
    rows, cols = np.nonzero(occupancy_u8 == 255)
    offsets = np.stack([rows - shape.half + 1, cols - shape.half + 1], axis=1)
    inside = (np.abs(offsets) <= reach).all(axis=1)
    return offsets[inside]


def untapped_pixels(offsets: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: the pixels of a size x size image none of whose kernel taps
    (`offsets`, (n, 2) (dy, dx) as `seed_kernel_offsets` gives them) lands inside the image.

    Why it matters: the original dilates the occupancy mask with `cv2.dilate`, which reads
    pixels outside the image as its dilation border value, -DBL_MAX for the float64 mask
    (`morphologyDefaultBorderValue`; checked with OpenCV 4.5 and 5.0). A pixel with at least one
    tap inside takes the max over those taps, as if outside pixels were ignored; a pixel with
    none comes out -DBL_MAX, and `find_available_coordinates` then returns no free pixel at all
    (`if np.min(mask) < 0`). The seed kernel sits one pixel off cv2's anchor and has only a few
    taps at 32 px, so for most orientations they all lie on one side and this happens.

    A tap (dy, dx) reaches inside from pixel (y, x) when 0 <= y + dy < size and likewise for x,
    so each tap covers one rectangle of pixels; the rest are untapped."""
    tapped = np.zeros((size, size), dtype=bool)
    for dy, dx in np.asarray(offsets).reshape(-1, 2).tolist():
        tapped[max(0, -dy) : min(size, size - dy), max(0, -dx) : min(size, size - dx)] = True
    return ~tapped


def marker_disc(
    size: tuple[int, int], centre: tuple[int, int], radius: float, antialias_scale: int
) -> np.ndarray:
    """`snakes2.draw_circle`: a filled disc of `radius` drawn at `antialias_scale` over the whole
    window and Lanczos-downsampled; (H, W) uint8. Drawn over the whole window (not pasted) so
    that discs near the border get PIL's edge normalisation exactly as the original."""
    aa = antialias_scale
    height, width = size
    y, x = np.ogrid[
        -centre[0] * aa : (height - centre[0]) * aa, -centre[1] * aa : (width - centre[1]) * aa
    ]
    hires = ((x**2 + y**2) <= (radius * aa) ** 2).astype(np.float64)
    return lanczos_downsample(hires, size)


@lru_cache(maxsize=32)
def paddle_stamps(shape: PaddleShape, angles: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Line and occupancy stamps for each angle: two (n, S, S) uint8 stacks (cached)."""
    drawn = [draw_paddle(shape, angle) for angle in angles]
    return np.stack([d[0] for d in drawn]), np.stack([d[1] for d in drawn])
