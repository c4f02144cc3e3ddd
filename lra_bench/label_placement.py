"""Labels beside points that never overprint one another: each label tries positions around
its point (right, left, the diagonals, above, below) at growing distances, and takes the closest
one that is clear of every label already placed and inside the axes, preferring places that do
not cover other points' discs; a label set away from its point gets a leader line to it.

Run it last, once the figure's layout is final: positions are worked out in pixels.
"""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.text import Annotation

# Directions tried, in order of preference (degrees; 0 = right of the point).
ANGLES = (0, 180, 30, -30, 150, -150, 60, -60, 120, -120, 90, -90)
# Extra distances (points) beyond the point's disc, tried one ring after another.
RINGS = (3, 10, 20, 32, 48, 68, 92, 120)
# The line from a label to its point's centre, stopping short of the centre marker.
LEADER = {"arrowstyle": "-", "color": "0.3", "linewidth": 0.6, "shrinkA": 1, "shrinkB": 3}
AMBIGUOUS = 6  # points: another point nearer than the own one plus this makes a label unclear


def _overlap(a: tuple, b: tuple) -> float:
    """Area shared by two boxes (x0, y0, x1, y1)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _disc_overlap(box: tuple, disc: tuple) -> float:
    """Area of `box` inside the square around disc (cx, cy, r): a cheap bound for a disc."""
    cx, cy, r = disc
    return _overlap(box, (cx - r, cy - r, cx + r, cy + r))


def _gap(box: tuple, disc: tuple) -> float:
    """Distance from `box` to the edge of disc (cx, cy, r); negative where the box reaches in."""
    cx, cy, r = disc
    dx = max(box[0] - cx, 0.0, cx - box[2])
    dy = max(box[1] - cy, 0.0, cy - box[3])
    return math.hypot(dx, dy) - r


def _outside(box: tuple, frame: tuple) -> float:
    """Area of `box` outside `frame`."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    return area - _overlap(box, frame)


def _box(cx, cy, angle, distance, width, height) -> tuple[tuple, str, str, float, float]:
    """The label's box, its alignment and its offset (pixels) at `angle` and `distance`
    from (cx, cy): the label's near side faces the point."""
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    ox, oy = dx * distance, dy * distance
    ha = "left" if dx > 0.3 else "right" if dx < -0.3 else "center"
    va = "bottom" if dy > 0.3 else "top" if dy < -0.3 else "center"
    x0 = cx + ox - {"left": 0, "right": width, "center": width / 2}[ha]
    y0 = cy + oy - {"bottom": 0, "top": height, "center": height / 2}[va]
    return (x0, y0, x0 + width, y0 + height), ha, va, ox, oy


def place_labels(
    ax: Axes, xy: list[tuple[float, float]], texts: list[str], radii: list[float], fontsize=8
) -> list[Annotation]:
    """Annotates point i (data coordinates `xy[i]`, a disc of radius `radii[i]` points) with
    `texts[i]`; returns the annotations. Every place within the rings is scored; labels never
    overlap each other where any free place exists, failing that the least overlap wins."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pixels_per_point = fig.dpi / 72.0
    centres = ax.transData.transform(xy) if len(xy) else []
    discs = [(cx, cy, r * pixels_per_point) for (cx, cy), r in zip(centres, radii)]
    frame = tuple(ax.get_window_extent(renderer).extents)
    sizes = []
    for text in texts:
        probe = ax.text(0, 0, text, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((extent.width + 2, extent.height + 2))
    placed: list[tuple] = []
    annotations = []
    # The most crowded points first: they have the fewest free places.
    order = sorted(
        range(len(texts)),
        key=lambda i: -sum(math.dist(centres[i], centres[j]) < 60 for j in range(len(texts))),
    )
    for i in order:
        cx, cy, r = discs[i]
        width, height = sizes[i]
        best = None
        for ring in RINGS:
            for angle in ANGLES:
                box, ha, va, ox, oy = _box(
                    cx, cy, angle, r + ring * pixels_per_point, width, height
                )
                # Overprinting another label or leaving the axes: never, where avoidable.
                clash = sum(_overlap(box, other) for other in placed) + _outside(box, frame)
                # Covering another point's disc (drawn translucent): better avoided than a long
                # leader line, but not at any distance.
                covered = sum(_disc_overlap(box, d) for j, d in enumerate(discs) if j != i)
                # A label as near another point as its own reads as that point's.
                own = ring * pixels_per_point
                nearest = min(
                    (_gap(box, d) for j, d in enumerate(discs) if j != i), default=math.inf
                )
                ambiguous = max(0.0, own + AMBIGUOUS * pixels_per_point - nearest)
                cost = 1000.0 * clash + 0.1 * covered + 5.0 * ambiguous + ring
                if best is None or cost < best[0]:
                    best = (cost, box, ha, va, ox, oy, ring, ambiguous)
        _, box, ha, va, ox, oy, ring, ambiguous = best
        placed.append(box)
        # A leader line to the point's centre wherever the label is away from it or as near
        # another point.
        leader = ring > RINGS[0] or ambiguous > 0
        annotations.append(
            ax.annotate(
                texts[i],
                xy[i],
                xytext=(ox / pixels_per_point, oy / pixels_per_point),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=fontsize,
                annotation_clip=False,
                arrowprops=LEADER if leader else None,
            )
        )
    # Back in the caller's order.
    by_index = dict(zip(order, annotations))
    return [by_index[i] for i in range(len(texts))]
