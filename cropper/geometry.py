"""Normalized boxes and the crop sets built from them.

A `Box` is `[x1, y1, x2, y2]` in 0..1 of the ORIGINAL image, origin top-left. Every crop the library
sends is cut from the original full-resolution image through a Box, never from a resized copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A normalized box `x1, y1, x2, y2` (0..1, origin top-left). Iterating yields the four floats."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):  # store floats even when built from ints
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        vals = (self.x1, self.y1, self.x2, self.y2)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            raise ValueError(f"box coordinates must be finite numbers, got {vals}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box {vals} has x2 < x1 or y2 < y1")

    def __iter__(self) -> Iterator[float]:
        return iter((self.x1, self.y1, self.x2, self.y2))

    @classmethod
    def from_list(cls, values: Sequence[float]) -> Box:
        """Build from `[x1, y1, x2, y2]` (normalized), clamped to the image."""
        if len(values) != 4:
            raise ValueError(f"a box needs 4 numbers [x1, y1, x2, y2], got {list(values)!r}")
        x1, y1, x2, y2 = (float(v) for v in values)
        return cls(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)).clamp()

    @classmethod
    def many_from_lists(cls, rows: Sequence[Sequence[float]]) -> list[Box]:
        """`[Box.from_list(r) for r in rows]`, fast: one vectorized clamp, no per-box validation.

        The policy builds a box for each of its ~100 candidates per query; one by one that cost ~7 ms.
        """
        import numpy as np

        xy = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
        if not np.isfinite(xy).all():
            return [cls.from_list(r) for r in rows]  # the checked path says which box is bad
        # The same operations as `from_list` then `clamp`: min/max are exact, so are the results.
        lo = np.clip(np.minimum(xy[:, :2], xy[:, 2:]), 0.0, 1.0)
        hi = np.maximum(lo, np.clip(np.maximum(xy[:, :2], xy[:, 2:]), 0.0, 1.0))
        out = []
        for x1, y1, x2, y2 in np.concatenate([lo, hi], axis=1).tolist():
            box = object.__new__(cls)
            object.__setattr__(box, "x1", x1)
            object.__setattr__(box, "y1", y1)
            object.__setattr__(box, "x2", x2)
            object.__setattr__(box, "y2", y2)
            out.append(box)
        return out

    @classmethod
    def from_pixels(cls, x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
        """Build from pixel coordinates of an image of `width` x `height`."""
        return cls.from_list([x1 / width, y1 / height, x2 / width, y2 / height])

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def to_list(self, ndigits: int | None = 4) -> list[float]:
        """The four coordinates as a list (rounded for display/JSON unless `ndigits` is None)."""
        return [round(v, ndigits) if ndigits is not None else v for v in self]

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Integer pixel box (left, top, right, bottom) covering this box, at least 1x1."""
        left = max(0, min(width - 1, math.floor(self.x1 * width)))
        top = max(0, min(height - 1, math.floor(self.y1 * height)))
        right = max(left + 1, min(width, math.ceil(self.x2 * width)))
        bottom = max(top + 1, min(height, math.ceil(self.y2 * height)))
        return left, top, right, bottom

    def intersection(self, other: Box) -> float:
        """Area of the overlap with `other`."""
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(0.0, w) * max(0.0, h)

    def iou(self, other: Box) -> float:
        """Intersection over union."""
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def coverage(self, target: Box) -> float:
        """Fraction of `target`'s area that lies inside this box (1.0: this box contains target)."""
        return self.intersection(target) / target.area if target.area > 0 else float(self.contains_point(*target.center))

    def contains_point(self, x: float, y: float) -> bool:
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2

    def union(self, other: Box) -> Box:
        """The smallest box containing both."""
        return Box(min(self.x1, other.x1), min(self.y1, other.y1), max(self.x2, other.x2), max(self.y2, other.y2))

    def clamp(self) -> Box:
        """Clip to the image (0..1)."""
        c = lambda v: min(1.0, max(0.0, v))  # noqa: E731
        return Box(c(self.x1), c(self.y1), max(c(self.x1), c(self.x2)), max(c(self.y1), c(self.y2)))

    def pad(self, fraction: float = 0.0, absolute: float = 0.0) -> Box:
        """Grow each side by `fraction` of the box size plus `absolute` (normalized), then clamp."""
        dx = self.width * fraction + absolute
        dy = self.height * fraction + absolute
        return Box(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy).clamp()

    def min_size(self, width: float, height: float | None = None) -> Box:
        """Grow around the centre to at least `width` x `height` (normalized), shifting inside the image."""
        height = width if height is None else height
        w, h = max(self.width, min(1.0, width)), max(self.height, min(1.0, height))
        cx, cy = self.center
        x1 = min(max(0.0, cx - w / 2), 1.0 - w)
        y1 = min(max(0.0, cy - h / 2), 1.0 - h)
        return Box(x1, y1, x1 + w, y1 + h)

    def describe(self) -> str:
        """Human/VLM-readable form used in crop captions: `[0.500, 0.000, 1.000, 0.500]`."""
        return "[" + ", ".join(f"{v:.3f}" for v in self) + "]"


FULL = Box(0.0, 0.0, 1.0, 1.0)


def union_all(boxes: Iterable[Box]) -> Box | None:
    """The smallest box containing all `boxes`, or None for none."""
    out: Box | None = None
    for b in boxes:
        out = b if out is None else out.union(b)
    return out


def covered(boxes: Sequence[Box], target: Box, threshold: float = 0.9) -> bool:
    """True when a single box of `boxes` covers at least `threshold` of `target`."""
    return any(b.coverage(target) >= threshold for b in boxes)


def evidence_hit(boxes: Sequence[Box], evidence: Sequence[Box], coverage: float = 0.9) -> bool:
    """True when every evidence box is at least `coverage` inside one of the crops (False without evidence)."""
    return bool(evidence) and all(covered(boxes, ev, coverage) for ev in evidence)


# --- crop sets -------------------------------------------------------------------------------------------

AWARES9: dict[str, Box] = {
    # The AwaRes candidate set: four quadrants, the centre crop of half width and half height, and the
    # four halves.
    "top_left": Box(0.0, 0.0, 0.5, 0.5),
    "top_right": Box(0.5, 0.0, 1.0, 0.5),
    "bottom_left": Box(0.0, 0.5, 0.5, 1.0),
    "bottom_right": Box(0.5, 0.5, 1.0, 1.0),
    "center": Box(0.25, 0.25, 0.75, 0.75),
    "top": Box(0.0, 0.0, 1.0, 0.5),
    "bottom": Box(0.0, 0.5, 1.0, 1.0),
    "left": Box(0.0, 0.0, 0.5, 1.0),
    "right": Box(0.5, 0.0, 1.0, 1.0),
}


def grid(n: int, overlap: float = 0.0) -> dict[str, Box]:
    """An n x n grid of crops named `r{row}c{col}`; `overlap` grows each cell by that fraction."""
    if n < 1:
        raise ValueError(f"grid size must be >= 1, got {n}")
    out = {}
    for r in range(n):
        for c in range(n):
            out[f"r{r}c{c}"] = Box(c / n, r / n, (c + 1) / n, (r + 1) / n).pad(overlap / 2)
    return out


def multiscale(levels: Sequence[int] = (2, 3, 4), overlap: float = 0.25) -> dict[str, Box]:
    """Grids at several scales (names prefixed `s{n}_`), e.g. 4 + 9 + 16 crops for (2, 3, 4)."""
    out = {}
    for n in levels:
        for name, box in grid(n, overlap=overlap if n > 1 else 0.0).items():
            out[f"s{n}_{name}"] = box
    return out


def crop_set(name: str) -> dict[str, Box]:
    """A named crop set: `awares9`, `grid:N`, or `multiscale` / `multiscale:2,3,4`."""
    key, _, arg = name.strip().lower().partition(":")
    if key == "awares9":
        return dict(AWARES9)
    if key == "grid":
        try:
            n = int(arg)
        except ValueError as exc:
            raise ValueError(f"crop set {name!r}: expected 'grid:N' with a whole number N") from exc
        return grid(n)
    if key == "multiscale":
        try:
            levels = tuple(int(x) for x in arg.split(",")) if arg else (2, 3, 4)
        except ValueError as exc:
            raise ValueError(f"crop set {name!r}: expected 'multiscale:2,3,4'") from exc
        return multiscale(levels)
    raise ValueError(f"unknown crop set {name!r}; known: 'awares9', 'grid:N', 'multiscale[:2,3,4]'")
