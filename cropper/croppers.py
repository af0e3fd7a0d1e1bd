"""Training-free croppers for the `policy` strategy (baselines for the trained `CropPolicy`).

Any object with `propose(image, question, k=None, budget=None) -> list[Box]` plugs into the `policy`
strategy; these two need no training.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from PIL import Image

from .geometry import Box, crop_set


@runtime_checkable
class Cropper(Protocol):
    """Chooses the crops a question needs. An empty list means the global view is enough."""

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        ...


class GridCropper:
    """Every crop of a crop set (`awares9`, `grid:N`, `multiscale`), or the first `k` of them."""

    def __init__(self, crops: str = "grid:2", k: int | None = None):
        self.crops = crop_set(crops)
        self.name = crops
        self.k = k

    def __repr__(self) -> str:
        return f"GridCropper({self.name!r}, k={self.k})"

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        boxes = list(self.crops.values())
        k = k if k is not None else self.k
        return boxes[:k] if k else boxes


class TextRegionCropper:
    """Crops around text the PP-OCR detector finds, merged into blocks, ranked, top `k`.

    The detector runs on a view of at most `detect_side` px (a local, cheap pass: it costs CPU, not the
    VLM's tokens). Ranking: blocks whose background has a colour the question names come first (the
    reader's colour names), then larger blocks.
    """

    def __init__(self, k: int = 2, detect_side: int = 2048, pad: float = 1.0, min_side: float = 0.04):
        self.k = k
        self.detect_side = detect_side
        self.pad = pad
        self.min_side = min_side
        self._engine = None

    def __repr__(self) -> str:
        return f"TextRegionCropper(k={self.k}, detect_side={self.detect_side})"

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        from backends.reader.colours import COLOUR_NAMES, canonical, colour_fraction
        from backends.reader.ocr import shared_engine

        if self._engine is None:
            self._engine = shared_engine()
        view = image.copy() if max(image.size) <= self.detect_side else image.resize(_fit(image.size, self.detect_side))
        w, h = view.size
        # Text lines are wider than tall and small; the detector's other finds are clutter.
        lines = [b for b in self._engine.detect(view)
                 if (b[2] - b[0]) >= 1.3 * (b[3] - b[1]) and (b[3] - b[1]) <= 0.03 * h]
        blocks = [b for b in _merge(lines, gap=1.2) if (b[2] - b[0]) * (b[3] - b[1]) <= 0.25 * w * h]
        if not blocks:
            return []
        wanted = re.findall(r"\b(" + "|".join(COLOUR_NAMES) + r")\b", question.lower())
        colour = canonical(wanted[0]) if wanted else None

        def rank(b):
            # Downscaled text blends into its sign, so ask for a share of the colour, not a majority.
            share = colour_fraction(view, b, colour) if colour is not None else 0.0
            return (-min(share, 0.2), -((b[2] - b[0]) * (b[3] - b[1])))

        blocks.sort(key=rank)
        k = k if k is not None else self.k
        out = []
        for x1, y1, x2, y2 in blocks[:k]:
            box = Box.from_pixels(x1, y1, x2, y2, w, h)
            pad_x, pad_y = box.height * self.pad, box.height * self.pad
            out.append(Box(box.x1 - pad_x, box.y1 - pad_y, box.x2 + pad_x, box.y2 + pad_y).clamp().min_size(self.min_side))
        return out


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    scale = side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _merge(boxes: list[tuple[float, float, float, float]], gap: float) -> list[tuple[float, float, float, float]]:
    """Merge text lines into blocks: boxes closer than `gap` line heights join (repeated until stable)."""
    merged = [list(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        out: list[list[float]] = []
        for b in merged:
            hb = b[3] - b[1]
            for o in out:
                ho = o[3] - o[1]
                g = gap * min(hb, ho) if min(hb, ho) > 0 else 0
                if b[0] - g <= o[2] and o[0] - g <= b[2] and b[1] - g <= o[3] and o[1] - g <= b[3]:
                    o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                    changed = True
                    break
            else:
                out.append(b)
        merged = out
    return [tuple(b) for b in merged]
