"""Settings of the Pathfinder generator (Linsley et al. 2018, "Learning long-range spatial
dependencies with horizontal gated recurrent units"; Kim, Linsley et al. 2020, "Disentangling
neural mechanisms for perceptual grouping"), as LRA (Tay et al. 2021) customised them.

The defaults are those of `snakes2_wrapper.Args` in drewlinsley/pathfinder; `lra_params` applies
the per-resolution overrides from the docstrings of `Pathfinder32/64/128/256` in LRA's
`lra_benchmarks/data/pathfinder.py`. LRA's settings were run under Python 2, so
`distractor_length = contour_length / 3` and `num_distractor_snakes = N / distractor_length` are
integer divisions (LRA_SPEC.md pitfall 17): at 32x32 hard that is 4 paddles and 5 distractors.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace

# LRA's split names -> (folder of the release, paddles per target contour).
DIFFICULTIES = {
    "easy": ("curv_baseline", 6),
    "intermediate": ("curv_contour_length_9", 9),
    "hard": ("curv_contour_length_14", 14),
}


@dataclass(frozen=True)
class PathfinderParams:
    """One generator configuration. Lengths are in pixels of the final image.

    resolution:             side of the square image (`window_size`)
    contour_length:         paddles per target snake
    distractor_length:      paddles per distractor snake
    num_distractor_snakes:  distractor snakes attempted per image
    padding:                border (px) kept free of target paddles by the occupancy mask
    antialias_scale:        supersampling factor used to draw paddles and markers
    paddle_margin_list:     gap parameter m, one drawn per image (gaps are ~2m px)
    paddle_length:          length L of one paddle (dash)
    paddle_thickness:       stroke width; thickness * antialias_scale must be an integer
    marker_radius:          radius of the two circle markers
    seed_distance:          distance between the two target snakes' first paddles
    continuity:             turn penalty; higher gives straighter snakes
    snake_contrast_list:    intensity of a snake (distractors use it alone)
    paddle_contrast_list:   extra factor on target paddles
    """

    resolution: int = 256
    contour_length: int = 15
    distractor_length: int = 5
    num_distractor_snakes: int = 6
    padding: int = 22
    antialias_scale: int = 4
    paddle_margin_list: tuple[int, ...] = (4,)
    paddle_length: int = 5
    paddle_thickness: float = 1.5
    marker_radius: float = 3
    seed_distance: int = 27
    continuity: float = 1.4
    snake_contrast_list: tuple[float, ...] = (1.0,)
    paddle_contrast_list: tuple[float, ...] = (1.0,)
    max_paddle_retrial: int = 2
    max_distractor_contour_retrial: int = 4
    # Distractor seeding stops once less than this fraction of the image is free.
    stop_with_availability: float = 0.01

    def __post_init__(self) -> None:
        scaled = self.paddle_thickness * self.antialias_scale
        if scaled != round(scaled):
            raise ValueError(f"paddle_thickness * antialias_scale must be an integer, got {scaled}")
        if self.contour_length < 1 or self.distractor_length < 1:
            raise ValueError("contour_length and distractor_length must be >= 1")
        if not self.paddle_margin_list or min(self.paddle_margin_list) < 1:
            raise ValueError("paddle_margin_list needs margins >= 1")
        if not self.snake_contrast_list or not self.paddle_contrast_list:
            raise ValueError("contrast lists must not be empty")
        if self.resolution <= 2 * self.padding:
            raise ValueError(f"padding {self.padding} leaves no room in {self.resolution} px")

    def digest(self) -> str:
        """A short name for these settings (names generated-data folders, checks resumes)."""
        text = ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# Per-resolution overrides (LRA docstrings). The distractor budget N gives
# num_distractor_snakes = N // distractor_length. PF64/128/256 leave paddle_length at the
# generator default 5 (LRA_SPEC.md lists this as inferred).
_LRA_OVERRIDES = {
    32: dict(
        padding=1,
        antialias_scale=2,
        paddle_margin_list=(1,),
        paddle_length=2,
        paddle_thickness=0.5,
        marker_radius=1.5,
        seed_distance=7,
        continuity=1.0,
        snake_contrast_list=(2.0,),
        paddle_contrast_list=(0.75,),
    ),
    64: dict(
        padding=1,
        antialias_scale=2,
        paddle_margin_list=(1,),
        paddle_thickness=1,
        marker_radius=2.5,
        seed_distance=12,
        continuity=1.8,
        snake_contrast_list=(0.8,),
    ),
    128: dict(
        padding=1,
        antialias_scale=2,
        paddle_margin_list=(2, 3),
        paddle_thickness=1.5,
        marker_radius=3,
        seed_distance=20,
        continuity=1.8,
        snake_contrast_list=(0.9,),
    ),
    256: dict(
        antialias_scale=2,
        paddle_margin_list=(3,),
        paddle_thickness=2,
        marker_radius=5,
        continuity=1.8,
        snake_contrast_list=(1.0,),
    ),
}
_DISTRACTOR_BUDGET = {32: 20, 64: 22, 128: 35, 256: 30}


def lra_params(resolution: int, difficulty: str) -> PathfinderParams:
    """LRA's settings for `resolution` in {32, 64, 128, 256} and a difficulty of DIFFICULTIES."""
    if resolution not in _LRA_OVERRIDES:
        raise ValueError(f"resolution must be one of {sorted(_LRA_OVERRIDES)}, got {resolution}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)}, got {difficulty!r}")
    contour_length = DIFFICULTIES[difficulty][1]
    distractor_length = contour_length // 3
    return replace(
        PathfinderParams(),
        resolution=resolution,
        contour_length=contour_length,
        distractor_length=distractor_length,
        num_distractor_snakes=_DISTRACTOR_BUDGET[resolution] // distractor_length,
        **_LRA_OVERRIDES[resolution],
    )
