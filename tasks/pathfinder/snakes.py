"""One Pathfinder image: the algorithm of `snakes2.from_wrapper` / `snakes.py` in
drewlinsley/pathfinder (Linsley et al. 2018, "Learning long-range spatial dependencies with
horizontal gated recurrent units"; Kim, Linsley et al. 2020, "Disentangling neural mechanisms
for perceptual grouping"), seeded, with the rendering of tasks/pathfinder/render.py.

Per image (LRA_SPEC.md section 4.2):
1. label ~ {0, 1}; margin m ~ paddle_margin_list.
2. Two target snakes of `contour_length` paddles, retried from scratch until both complete: the
   first seed paddle is placed on a free pixel near the centre, the second `seed_distance` px from
   it; then the snakes grow in turns, one paddle each. Each new paddle's head is drawn on a circle
   of radius L+m around a pivot 2m beyond the last paddle, with probability proportional to
   (1 - dilated occupancy) * max(cos(min(turn * continuity, pi/2)), 0)^2, and is rejected when its
   occupancy footprint overlaps the occupancy mask (sum >= 1.8), up to `max_paddle_retrial` times.
   A paddle enters the occupancy mask one step late, so it never blocks its successor.
3. `num_distractor_snakes` distractor snakes of `distractor_length` paddles, each seeded on a
   free pixel and grown the same way; a failed one is retried, then skipped.
4. Two circle markers on an origin tip (a seed paddle's tail) and a terminal tip (a last
   paddle's head): of the same snake when label = 1, of different snakes when label = 0.
5. The float image (targets paddle_contrast * snake_contrast, distractors snake_contrast,
   markers 1) is min-max scaled to uint8 as scipy.misc.imsave did.

Kept from the original on purpose, because they shape the data: a seed orientation whose
dilation kernel leaves some image pixel without a tap inside the image finds no free tail at all
(cv2.dilate's -DBL_MAX border value; render.untapped_pixels): at 32 px only -150..-121 degrees
can seed, so the first target seed and every distractor point that way, most distractors fail
(~1.2 of 5 placed at hard) and the targets take ~300 tries per hard image; at 128 px it barely
acts. The second seed is not checked against the occupancy mask; after the targets only the
second snake's last paddle is added to the mask (the first snake's last paddle is not, so
distractors may touch it); distractors are seeded away from a 1-px image border, targets from a
2*seed_distance band. Dropped: single-paddle distractors (LRA's wrapper sets
use_single_paddles=False). Added: a cap on target retries, so a setting that can never succeed
raises instead of looping forever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tasks.pathfinder.params import PathfinderParams
from tasks.pathfinder.render import (
    PaddleShape,
    as_intensity,
    candidate_offsets,
    disk,
    flip_by_pi,
    marker_disc,
    paddle_stamps,
    seed_kernel_offsets,
    to_bytes,
    translate,
    untapped_pixels,
)

SEED_ANGLES = 360  # seed orientations: integer degrees -180..179, ids 0..359
# Tries per image for the two targets at LRA's settings, as in the original: ~310 at 32 px
# hard, ~450 at 128 px, ~5800 at 64 px (10 images). The cap only stops settings under which
# two targets can never fit from looping forever.
MAX_TARGET_ATTEMPTS = 1_000_000
COLLISION = 1.8  # `max(mask + footprint) < 1.8` in `extend_snake`
FREE = 0.3  # a pixel is free when its (dilated) occupancy is <= 0.3 (`ceil(x - 0.3) == 0`)


class _TargetsFailed(Exception):
    """The two target snakes could not be completed; the original starts them again."""


def pick(rng: np.random.Generator, options: tuple):
    """`options[np.random.randint(len(options))]`, without a draw when there is one option
    (LRA's lists have one: skipping the draw saves time and changes no distribution)."""
    return options[0] if len(options) == 1 else options[int(rng.integers(0, len(options)))]


@dataclass
class Geometry:
    """Everything about paddles that depends only on the settings and the margin m, built once
    per process. Orientation ids: 0..359 = seed angle (id - 180) degrees, 360 + k = direction to
    candidate k. A paddle stamp id is the orientation id of the snake after drawing it.

    offsets:   (K, 2) candidate head offsets from the pivot (head_flat: in the padded canvas)
    weights:   (360 + K, K) continuity weight of candidate k after orientation id j
    gather:    (K, O) flat offsets (padded canvas) of the dilation disk around each candidate
    occupancy: (360 + K, S, S) float64 occupancy stamps; lines: uint8 stamps, scaled on use
    """

    shape: PaddleShape
    half: int
    pad: int
    padded_width: int
    angles: np.ndarray
    sin: list[float]
    cos: list[float]
    offsets: np.ndarray
    head_offsets: list[tuple[int, int]]
    head_flat: np.ndarray
    weights: np.ndarray
    gather: np.ndarray
    lines_u8: np.ndarray
    occupancy: np.ndarray
    seed_kernels: list[np.ndarray]
    # Per seed orientation id: the dilated seed kernel leaves some pixel of the image with no
    # tap inside it, so the original's cv2.dilate yields -DBL_MAX there and the seed finds no
    # free tail at all (render.untapped_pixels). At 32 px all but 30 of 360 orientations.
    seed_blind: np.ndarray
    _lines: dict = field(default_factory=dict)
    # Free tails of the first target seed per orientation: that seed is always placed on the
    # fresh mask, so they depend on the orientation alone (most of the time of a failed
    # target attempt went into recomputing them).
    first_seed_tails: dict = field(default_factory=dict)

    def lines(self, contrast: float) -> np.ndarray:
        """(360 + K, S, S) float64 line stamps at `contrast` (cached per contrast)."""
        if contrast not in self._lines:
            self._lines[contrast] = as_intensity(self.lines_u8, contrast)
        return self._lines[contrast]


@lru_cache(maxsize=16)
def geometry(params: PathfinderParams, margin: int) -> Geometry:
    """The Geometry of `params` at margin m (cached: ~0.1 s of PIL drawing per process)."""
    shape = PaddleShape(
        params.paddle_length, params.paddle_thickness, margin, params.antialias_scale
    )
    length = params.paddle_length
    offsets = candidate_offsets(length + margin)
    seed_angles = [deg * np.pi / 180 for deg in range(-180, 180)]
    candidate_angles = np.arctan2(offsets[:, 0], offsets[:, 1])
    angles = np.concatenate([seed_angles, candidate_angles])
    # An extension paddle is drawn from its head back towards the pivot.
    stamp_angles = tuple(seed_angles) + tuple(flip_by_pi(a) for a in candidate_angles.tolist())
    lines_u8, occupancy_u8 = paddle_stamps(shape, stamp_angles)

    turn = np.abs(candidate_angles[None, :] - angles[:, None])
    turn = np.minimum(turn, 2 * np.pi - turn)
    turn = np.minimum(turn * params.continuity, 0.5 * np.pi)
    weights = np.maximum(np.cos(turn), 0) ** 2

    # The padded canvas must hold every read: a pivot lies up to m + 2 px outside the image,
    # candidates L + m + 1 px from it, their dilation disk m px further.
    pad = max(shape.half + 2, length + 3 * margin + 6)
    padded_width = params.resolution + 2 * pad
    disk_y, disk_x = np.nonzero(disk(margin))
    disk_flat = (disk_y - margin) * padded_width + (disk_x - margin)
    head_flat = offsets[:, 0] * padded_width + offsets[:, 1]
    seed_kernels = [seed_kernel_offsets(occupancy_u8[i], shape) for i in range(SEED_ANGLES)]
    return Geometry(
        shape=shape,
        half=shape.half,
        pad=pad,
        padded_width=padded_width,
        angles=angles,
        sin=np.sin(angles).tolist(),
        cos=np.cos(angles).tolist(),
        offsets=offsets,
        head_offsets=[(int(dy), int(dx)) for dy, dx in offsets],
        head_flat=head_flat,
        weights=weights,
        gather=head_flat[:, None] + disk_flat[None, :],
        lines_u8=lines_u8,
        occupancy=as_intensity(occupancy_u8),
        seed_kernels=seed_kernels,
        seed_blind=np.array(
            [untapped_pixels(k, params.resolution).any() for k in seed_kernels], dtype=bool
        ),
    )


@dataclass
class Snake:
    """A growing snake: where the next paddle hangs from, and its paddles so far.

    paddles: (stamp id, y, x, contrast) per paddle, y, x = the stamp's start point
    pending: the last paddle, not yet in the occupancy mask (the one-step lag)
    """

    pivot: tuple[int, int]
    orientation: int
    tail: tuple[int, int]
    head: tuple[int, int]
    paddles: list[tuple[int, int, int, float]]

    @property
    def pending(self) -> tuple[int, int, int, float]:
        return self.paddles[-1]


@dataclass
class PathfinderSample:
    """One generated image.

    image:   (H, W) uint8, what the PNG holds
    label:   1 if the markers sit on the two ends of one target snake, else 0
    margin:  the paddle margin m drawn for this image (metadata column 9)
    markers: ((y, x) origin marker, (y, x) terminal marker)
    targets: the two target snakes (their paddles, tails and heads), for checks; targets[0]
             is the one seeded on a free tail, targets[1] seed_distance px from it
    distractors: the distractor snakes placed, in order, for checks
    target_tries: how many tries placing the two target snakes took (`two_snakes` calls)
    """

    image: np.ndarray
    label: int
    margin: int
    markers: tuple[tuple[int, int], tuple[int, int]]
    targets: tuple[Snake, Snake]
    distractors: tuple[Snake, ...] = ()
    target_tries: int = 1


class Canvas:
    """Image and occupancy mask of one image, padded by `g.pad` so stamps paste with a slice.
    The mask's padding stays zero (the original clips masks to the image, and cv2.dilate's
    border value -DBL_MAX never wins a max; the pixels with no tap inside at all are
    Geometry.seed_blind's business); the image's padding is cropped at the end."""

    def __init__(self, params: PathfinderParams, g: Geometry, rng: np.random.Generator):
        self.p, self.g, self.rng = params, g, rng
        self.size = params.resolution
        side = self.size + 2 * g.pad
        self.image = np.zeros((side, side))
        self.mask = np.zeros((side, side))
        self.mask_flat = self.mask.reshape(-1)
        inside = np.zeros((side, side))
        inside[g.pad : g.pad + self.size, g.pad : g.pad + self.size] = 1.0
        self.inside_flat = inside.reshape(-1)
        self.undo: list[tuple[np.ndarray, tuple[slice, slice], np.ndarray]] | None = None
        # The empty mask: zero but for the `padding`-px border (`initialize_two_seeds`).
        self.fresh_mask = np.zeros((side, side))
        inner = self.fresh_mask[g.pad : g.pad + self.size, g.pad : g.pad + self.size]
        band = params.padding
        inner[:band, :] = inner[-band:, :] = 1
        inner[:, :band] = inner[:, -band:] = 1
        self.clean = False  # image and mask as reset() leaves them

    def inside(self, point: tuple[int, int]) -> bool:
        return 0 <= point[0] < self.size and 0 <= point[1] < self.size

    def image_view(self) -> np.ndarray:
        pad = self.g.pad
        return self.image[pad : pad + self.size, pad : pad + self.size]

    def mask_view(self) -> np.ndarray:
        pad = self.g.pad
        return self.mask[pad : pad + self.size, pad : pad + self.size]

    # -- stamps ---------------------------------------------------------------------------
    def _clipped(self, y: int, x: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """Mask window and stamp window of a stamp starting at (y, x), clipped to the image."""
        half, pad, size = self.g.half, self.g.pad, self.size
        y0, y1 = max(y - half, 0), min(y + half, size - 1) + 1
        x0, x1 = max(x - half, 0), min(x + half, size - 1) + 1
        window = (slice(pad + y0, pad + y1), slice(pad + x0, pad + x1))
        stamp = (slice(y0 - y + half, y1 - y + half), slice(x0 - x + half, x1 - x + half))
        return window, stamp

    def _maximum(self, target: np.ndarray, window: tuple[slice, slice], values: np.ndarray):
        self.clean = False
        region = target[window]
        if self.undo is not None:
            self.undo.append((target, window, region.copy()))
        np.maximum(region, values, out=region)

    def paste_line(self, paddle: tuple[int, int, int, float]) -> None:
        stamp, y, x, contrast = paddle
        half, pad = self.g.half, self.g.pad
        window = (
            slice(pad + y - half, pad + y + half + 1),
            slice(pad + x - half, pad + x + half + 1),
        )
        self._maximum(self.image, window, self.g.lines(contrast)[stamp])

    def paste_occupancy(self, paddle: tuple[int, int, int, float]) -> None:
        stamp, y, x, _ = paddle
        window, part = self._clipped(y, x)
        self._maximum(self.mask, window, self.g.occupancy[stamp][part])

    def collides(self, stamp: int, y: int, x: int) -> bool:
        """`max(mask + footprint) >= 1.8` for a stamp starting at (y, x) inside the image.
        Read over the whole stamp, padding included, without clipping: the mask's padding is
        0 and a footprint is <= 1, so the padding never reaches 1.8 and the answer is the
        original's on the clipped footprint (clipping was 1/4 of the time of a paddle)."""
        half, pad = self.g.half, self.g.pad
        y, x = y + pad, x + pad
        window = self.mask[y - half : y + half + 1, x - half : x + half + 1]
        return float((window + self.g.occupancy[stamp]).max()) >= COLLISION

    # -- snakes ---------------------------------------------------------------------------
    def free_tails(self, degree_id: int, band: int) -> np.ndarray:
        """Flat indices (row-major, image coordinates) of the tails where a seed paddle of this
        orientation fits: the occupancy mask, with a `band`-px image border set, dilated by the
        paddle's kernel, is <= 0.3 there. None at all when the kernel leaves a pixel untapped,
        as in the original (its cv2 border value; see render.untapped_pixels): this is what
        limits seeds at 32 px to orientations -150..-121 degrees. Kept on purpose: it shapes
        LRA's data (fewer distractors, one seed direction)."""
        g, size, pad = self.g, self.size, self.g.pad
        if g.seed_blind[degree_id]:
            return np.empty(0, dtype=np.intp)
        # The padding is False: a pixel with a tap inside the image takes the max over its
        # inside taps, as under cv2's -DBL_MAX border (untapped pixels are handled above).
        blocked = self.mask > FREE
        inner = blocked[pad : pad + size, pad : pad + size]
        inner[:band, :] = inner[-band:, :] = True
        inner[:, :band] = inner[:, -band:] = True
        hit = np.zeros((size, size), dtype=bool)
        for dy, dx in g.seed_kernels[degree_id]:
            np.logical_or(
                hit, blocked[pad + dy : pad + dy + size, pad + dx : pad + dx + size], out=hit
            )
        return np.flatnonzero(~hit)

    def seed_endpoints(self, tail: tuple[int, int], degree_id: int):
        """Head and pivot of a seed paddle from `tail`, or None if either leaves the image."""
        angle = float(self.g.angles[degree_id])
        reverse = angle + math.pi if angle + math.pi < math.pi else angle - math.pi
        head = translate(tail, angle, self.p.paddle_length)
        pivot = translate(head, reverse, self.p.paddle_length + self.g.shape.margin)
        if self.inside(head) and self.inside(pivot):
            return head, pivot
        return None

    def random_degree_id(self) -> int:
        return int(self.rng.integers(0, SEED_ANGLES))  # randint(-180, 180) + 180

    def seed_snake(self, contrast: float, band: int = 1) -> Snake | None:
        """`snakes.seed_snake`: a first paddle on a free tail (distractors), or None."""
        p, size = self.p, self.size
        for _ in range(p.max_paddle_retrial + 1):
            degree_id = self.random_degree_id()
            available = np.count_nonzero(self.mask_view() <= FREE)
            if available / (size * size) < p.stop_with_availability:
                return None
            free = self.free_tails(degree_id, band)
            if len(free) == 0:
                return None
            tail = divmod(int(free[self.rng.integers(0, len(free))]), size)
            ends = self.seed_endpoints(tail, degree_id)
            if ends is not None:
                return self._start(tail, degree_id, ends, contrast)
        return None

    def _start(self, tail, degree_id, ends, contrast) -> Snake:
        paddle = (degree_id, tail[0], tail[1], contrast)
        return Snake(
            pivot=ends[1], orientation=degree_id, tail=tail, head=ends[0], paddles=[paddle]
        )

    def candidate_weights(self, pivot: tuple[int, int], orientation: int) -> np.ndarray:
        """`snakes.get_coords_cmf` before normalising: (K,) weight of each candidate head
        pivot + offsets[k] after a paddle of orientation id `orientation`, i.e.
        (1 - occupancy dilated by disk(m)) * continuity weight, 0 outside the image."""
        g = self.g
        base = (pivot[0] + g.pad) * g.padded_width + pivot[1] + g.pad
        inside = self.inside_flat[base + g.head_flat]  # the original deletes outside points
        dilated = self.mask_flat[base + g.gather].max(axis=1)
        return (1.0 - dilated) * (g.weights[orientation] * inside)

    def extend(self, snake: Snake, contrast: float) -> bool:
        """`snakes.extend_snake`: one more paddle, or False when none fits."""
        g, p = self.g, self.p
        o = snake.orientation
        step = p.paddle_length + 2 * g.shape.margin
        pivot = (
            int(math.ceil(snake.pivot[0] + step * g.sin[o])),
            int(math.ceil(snake.pivot[1] + step * g.cos[o])),
        )
        cmf = self.candidate_weights(pivot, o).cumsum()
        total = float(cmf[-1])
        if total < 1e-4:
            return False
        for _ in range(p.max_paddle_retrial + 1):
            # The first k with cmf > u, as `argmax(cmf - u > 0)` (cmf left unnormalised).
            k = int(cmf.searchsorted(self.rng.random() * total, side="right"))
            if k == len(cmf):  # u * total rounded up to total
                k = int(np.argmax(cmf >= total))
            head = (pivot[0] + g.head_offsets[k][0], pivot[1] + g.head_offsets[k][1])
            if self.collides(SEED_ANGLES + k, *head):
                continue
            paddle = (SEED_ANGLES + k, head[0], head[1], contrast)
            self.paste_occupancy(snake.pending)
            snake.paddles.append(paddle)
            snake.pivot, snake.orientation, snake.head = pivot, SEED_ANGLES + k, head
            return True
        return False

    def first_target_seed(self) -> tuple[tuple[int, int], int, tuple]:
        """`initialize_two_seeds`, first seed: (tail, orientation id, (head, pivot)) on a free
        tail away from a 2*seed_distance border band, or _TargetsFailed. Needs the fresh mask
        (reset()); its free tails depend on the orientation alone and are cached. At 32 px
        330 of 360 orientations have none (free_tails), and the try fails here at once, as in
        the original: 11 of 12 tries end here."""
        p, rng = self.p, self.rng
        for _ in range(p.max_paddle_retrial + 1):
            degree_id = self.random_degree_id()
            free = self.g.first_seed_tails.get(degree_id)
            if free is None:
                free = self.free_tails(degree_id, 2 * p.seed_distance)
                self.g.first_seed_tails[degree_id] = free
            if len(free) == 0:
                raise _TargetsFailed
            tail = divmod(int(free[rng.integers(0, len(free))]), self.size)
            ends = self.seed_endpoints(tail, degree_id)
            if ends is not None:
                return tail, degree_id, ends
        raise _TargetsFailed

    def second_target_seed(self, tail: tuple[int, int]) -> tuple[tuple[int, int], int, tuple]:
        """`initialize_two_seeds`, second seed: seed_distance px from the first seed's tail in
        a random direction, not checked against the mask; as first_target_seed."""
        p, rng = self.p, self.rng
        for _ in range(p.max_paddle_retrial + 1):
            degree_id = self.random_degree_id()
            direction = int(rng.integers(0, 360)) * np.pi / 180
            tail2 = (
                int(round(tail[0] + p.seed_distance * math.sin(direction))),
                int(round(tail[1] + p.seed_distance * math.cos(direction))),
            )
            ends = self.seed_endpoints(tail2, degree_id)
            if ends is not None:
                return tail2, degree_id, ends
        raise _TargetsFailed

    def targets(self) -> tuple[Snake, Snake]:
        """`two_snakes`: both target snakes, grown in turns; raises _TargetsFailed.

        The contrasts (independent of everything else) are drawn after the first seed's site,
        not before as in the original, so that the many tries failing there cost one draw."""
        p, rng = self.p, self.rng
        self.reset()
        first_site = self.first_target_seed()
        mu = list(p.snake_contrast_list) * 2
        rng.shuffle(mu)
        paddle_contrast = p.paddle_contrast_list
        first_contrast = pick(rng, paddle_contrast) * mu[0]
        second_contrast = pick(rng, paddle_contrast) * mu[1]
        first = self._start(*first_site, first_contrast)
        second = self._start(*self.second_target_seed(first_site[0]), second_contrast)
        snakes = (first, second)
        for _ in range(p.contour_length - 1):
            contrast = pick(rng, paddle_contrast)
            for snake, snake_mu in zip(snakes, mu):
                if not self.extend(snake, contrast * snake_mu):
                    raise _TargetsFailed
        self.paste_occupancy(snakes[1].pending)  # the original's snakes[-1] only
        for snake in snakes:
            self.draw(snake)
        return snakes

    def distractor(self) -> Snake | None:
        """`snakes.make_snake`: one whole distractor snake, or None and no change at all."""
        p, rng = self.p, self.rng
        contrasts = p.snake_contrast_list
        self.undo = []
        try:
            snake = self.seed_snake(pick(rng, contrasts))
            if snake is None:
                return None
            for _ in range(p.distractor_length - 1):
                if not self.extend(snake, pick(rng, contrasts)):
                    for target, window, saved in reversed(self.undo):
                        target[window] = saved
                    return None
            self.paste_occupancy(snake.pending)
            self.draw(snake)
            return snake
        finally:
            self.undo = None

    def draw(self, snake: Snake) -> None:
        """Pastes a finished snake's paddles into the image. Only the mask steers placement, so
        a snake is drawn once it is complete (the image is max-combined, order is free): the
        lines of the many failed tries are never drawn nor undone."""
        for paddle in snake.paddles:
            self.paste_line(paddle)

    def reset(self) -> None:
        """An empty image and the fresh mask (a no-op when nothing was pasted since)."""
        if not self.clean:
            self.image.fill(0)
            np.copyto(self.mask, self.fresh_mask)
            self.clean = True


def draw_sample(
    params: PathfinderParams, rng: np.random.Generator, distractors: bool = True
) -> PathfinderSample:
    """One image and its label. `distractors=False` draws the targets and markers only (for
    checking the label geometry)."""
    label = int(rng.integers(0, 2))
    margin = pick(rng, params.paddle_margin_list)
    canvas = Canvas(params, geometry(params, margin), rng)
    targets, tries = None, 0
    while targets is None:  # `from_wrapper`: `while not success: two_snakes(...)`
        tries += 1
        if tries > MAX_TARGET_ATTEMPTS:
            raise RuntimeError(
                f"no two target snakes fit after {MAX_TARGET_ATTEMPTS} tries: {params}"
            )
        try:
            targets = canvas.targets()
        except _TargetsFailed:
            pass
    placed = []
    if distractors:
        # `make_many_snakes`: each of num_distractor_snakes gets 1 + retrial tries.
        for _ in range(params.num_distractor_snakes):
            for _ in range(params.max_distractor_contour_retrial + 1):
                snake = canvas.distractor()
                if snake is not None:
                    placed.append(snake)
                    break

    origin = int(rng.integers(0, 2))
    terminal = origin if label == 1 else 1 - origin
    markers = (targets[origin].tail, targets[terminal].head)
    size = (params.resolution, params.resolution)
    image = canvas.image_view().copy()
    for centre in markers:
        disc = marker_disc(size, centre, params.marker_radius, params.antialias_scale)
        np.maximum(image, disc / 255, out=image)
    return PathfinderSample(
        image=to_bytes(image),
        label=label,
        margin=margin,
        markers=markers,
        targets=targets,
        distractors=tuple(placed),
        target_tries=tries,
    )


def render_paddles(
    params: PathfinderParams, margin: int, paddles: list[tuple[int, int, int, float]]
) -> np.ndarray:
    """(H, W) float image of the given paddles alone (for checks of one snake)."""
    g = geometry(params, margin)
    canvas = Canvas(params, g, np.random.default_rng(0))
    for paddle in paddles:
        canvas.paste_line(paddle)
    return canvas.image_view().copy()
