"""Where to look in a view where text is too small to read: text zones and coloured signs.

Both work on a downscaled view with OpenCV (milliseconds, no OCR): the embedded reader uses them to
decide where to zoom, and `TextRegionCropper` to propose crops. Boxes are normalized in the ORIGINAL
image (`region` says which part of it the view shows).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .colours import PALETTE, canonical, name_pixels

Rect = tuple[float, float, float, float]


def text_zones(image: Image.Image, region: Rect = (0.0, 0.0, 1.0, 1.0)) -> list[Rect]:
    """Where text seems to be in `image` (a view of `region` of the original), as zoom boxes, most ink first.

    Small text that cannot be read at low resolution still shows as grey texture on a page: find it
    as "ink" that differs from the local background, join nearby ink into zones, and zoom there.
    """
    small = image.copy()
    small.thumbnail((768, 768))
    gray = np.asarray(small.convert("L"), dtype=np.int16)
    h, w = gray.shape
    background = cv2.medianBlur(gray.astype(np.uint8), 31).astype(np.int16)
    ink = (np.abs(gray - background) > 24).astype(np.uint8)
    # Join letters into lines and lines into blocks: about 2% of the view, a few text lines.
    k = max(3, int(0.02 * max(w, h)))
    joined = cv2.dilate(ink, np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    rx1, ry1, rx2, ry2 = region
    zones = []
    for i in range(1, n):
        x, y, bw, bh, _ = stats[i]
        amount = int(ink[y : y + bh, x : x + bw].sum())
        if amount < 4 or bw * bh > 0.6 * w * h:
            continue
        box = (rx1 + x / w * (rx2 - rx1), ry1 + y / h * (ry2 - ry1),
               rx1 + (x + bw) / w * (rx2 - rx1), ry1 + (y + bh) / h * (ry2 - ry1))
        zones.append((amount, context_box(box, grow=0.05, min_side=0.05)))
    zones.sort(key=lambda z: -z[0])
    return [z for _, z in zones]


def sign_blobs(image: Image.Image, colour: str, region: Rect = (0.0, 0.0, 1.0, 1.0)) -> list[Rect]:
    """Sign-shaped regions of `colour` in `image` (a view of `region` of the original), as zoom boxes, most sign-like first.

    A sign is a small solid rectangle, wider than tall, with text inside: even when the text is too
    small to read, its strokes make the inside of a sign uneven, unlike a plain blob of clutter. Two
    ways to find one: pixels named `colour` that clump into such a rectangle, and (for a sign on a
    background of a similar name, a yellow plate on olive grass) a rectangle that stands out from its
    surroundings and is mostly `colour` inside.
    """
    colour = canonical(colour)
    if colour not in PALETTE:
        return []
    small = image.copy()
    small.thumbnail((1024, 1024))
    arr = np.asarray(small.convert("RGB"))
    gray = np.asarray(small.convert("L"), dtype=np.float32)
    names = name_pixels(arr)
    named = (names == colour).astype(np.uint8)
    background = cv2.medianBlur(arr, 31).astype(np.int16)
    salient = (np.abs(arr.astype(np.int16) - background).max(axis=2) > 28).astype(np.uint8)
    found = []
    # A post under a sign, which stands out as much as the sign, would change its shape: the salient mask
    # peels off parts under 5 px wide (a sign is wider); the named one only specks.
    for mask, min_share, peel in ((named, 0.0, (3, 3)), (salient, 0.5, (1, 5))):
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))  # text strokes punch holes
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones(peel, np.uint8))
        found += _sign_shapes(mask, names, gray, colour, min_share, region)
    found.sort(key=lambda t: -t[0])
    return unique([b for _, b in found])


def _sign_shapes(mask, names, gray, colour: str, min_share: float, region: Rect) -> list[tuple[float, Rect]]:
    """Connected parts of `mask` shaped like a sign and at least `min_share` `colour`, with a sign-likeness."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    rx1, ry1, rx2, ry2 = region
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area < 6 or bw < 3:
            continue
        fill = area / float(bw * bh)
        aspect = bw / float(bh)
        if fill < 0.6 or not 1.3 <= aspect <= 12 or bw > 0.08 * w or bh > 0.05 * h:
            continue
        if min_share and float((names[y : y + bh, x : x + bw] == colour).mean()) < min_share:
            continue
        texture = float(gray[y : y + bh, x : x + bw].std())
        box = (rx1 + x / w * (rx2 - rx1), ry1 + y / h * (ry2 - ry1),
               rx1 + (x + bw) / w * (rx2 - rx1), ry1 + (y + bh) / h * (ry2 - ry1))
        out.append((texture * fill, context_box(box)))
    return out


def unique(boxes: list[Rect], limit: int | None = None, share: float = 0.8) -> list[Rect]:
    """`boxes` without near-duplicates (one at least `share` inside an earlier kept one), keeping order;
    with `limit`, only the first that many.

    A greedy pass over a containment matrix: a cluttered scene yields hundreds of blobs, and the pairwise
    Python loop this replaced cost 17 ms on one.
    """
    if not boxes:
        return []
    b = np.asarray(boxes, dtype=np.float64)
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inside = (w * h >= share * area[None, :]) & (area[None, :] > 0)  # [i, j]: box j is mostly inside box i
    suppressed = np.zeros(len(b), dtype=bool)
    kept: list[Rect] = []
    for i, box in enumerate(boxes):
        if suppressed[i]:
            continue
        kept.append(box)
        if limit is not None and len(kept) >= limit:
            break
        suppressed |= inside[i]
    return kept


def context_box(box: Rect, grow: float = 1.5, min_side: float = 0.06) -> Rect:
    """A zoom box around `box`: grown by `grow` of its size on each side, at least `min_side` wide/tall."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    w2, h2 = max(w * (1 + 2 * grow), min_side), max(h * (1 + 2 * grow), min_side)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    nx1 = min(max(0.0, cx - w2 / 2), max(0.0, 1.0 - w2))
    ny1 = min(max(0.0, cy - h2 / 2), max(0.0, 1.0 - h2))
    return (round(nx1, 4), round(ny1, 4), round(min(1.0, nx1 + w2), 4), round(min(1.0, ny1 + h2), 4))


def context_boxes(x1, y1, x2, y2, grow: float = 1.5, min_side: float = 0.06) -> list[Rect]:
    """`context_box` over arrays of corners, unrounded (the policy's finder grows hundreds of blobs a query;
    the scalar form, whose rounding the reader's answers rely on, stays for the reader)."""
    w2 = np.maximum((x2 - x1) * (1 + 2 * grow), min_side)
    h2 = np.maximum((y2 - y1) * (1 + 2 * grow), min_side)
    nx1 = np.minimum(np.maximum(0.0, (x1 + x2) / 2 - w2 / 2), np.maximum(0.0, 1.0 - w2))
    ny1 = np.minimum(np.maximum(0.0, (y1 + y2) / 2 - h2 / 2), np.maximum(0.0, 1.0 - h2))
    out = np.stack([nx1, ny1, np.minimum(1.0, nx1 + w2), np.minimum(1.0, ny1 + h2)], axis=1)
    return [tuple(row) for row in out.tolist()]


def covers(outer: Rect, inner: Rect) -> float:
    w = min(outer[2], inner[2]) - max(outer[0], inner[0])
    h = min(outer[3], inner[3]) - max(outer[1], inner[1])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return max(0.0, w) * max(0.0, h) / area if area > 0 else 0.0


def centre(rect: Rect) -> tuple[float, float]:
    return ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)


def inside(point: tuple[float, float], rect: Rect) -> bool:
    return rect[0] <= point[0] <= rect[2] and rect[1] <= point[1] <= rect[3]
