"""Image-specific candidate crops for `CropPolicy`: where text and signs are, found in milliseconds.

A fixed candidate set (quadrants, a 4x4 grid) rarely fits a 10-pixel sign: the sign straddles a cell
edge, or the only cell that holds it is a quarter of the image. So the policy also scores boxes found in
the image itself, the way a two-stage detector scores region proposals. The finder is question-agnostic
(the network brings the question) and colour-agnostic (every sign-shaped blob of any colour, plus text
zones), and it reads only a small square view that `CropPolicy` already makes, so it costs a few
milliseconds of OpenCV.

Boxes are normalized `[x1, y1, x2, y2]` in the original image; the view is the image squashed to a
square, so a view pixel maps to the same fraction of the original on each axis.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from backends.reader.colours import PALETTE, name_codes
from backends.reader.zones import context_boxes, unique

Rect = tuple[float, float, float, float]

_NAME_INDEX = {name: i for i, name in enumerate(PALETTE)}


def find_proposals(view: np.ndarray, max_proposals: int = 96, codes: np.ndarray | None = None) -> list[Rect]:
    """Candidate zoom boxes in a square uint8 RGB `view` [S, S, 3]: sign-like blobs first, then text zones.

    Sign-like: a connected part of one colour name (or of pixels that stand out from their
    surroundings) that is solid, wider than about as tall, and small. Text zones: ink that differs from
    the local background, joined into lines and blocks, most ink first. At most `max_proposals`, with
    near-duplicates (one mostly inside an earlier one) dropped. `codes`: the view's `name_codes`, when
    the caller already has them.
    """
    if view.ndim != 3 or view.shape[2] != 3 or view.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 view, got {view.shape} {view.dtype}")
    h, w = view.shape[:2]
    side = max(h, w)
    gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    background = _local_background(view)
    contrast = _channel_max(cv2.absdiff(view, background))
    codes = name_codes(view) if codes is None else codes
    sums, squares = cv2.integral2(gray, sdepth=cv2.CV_64F)  # box sums in O(1): texture per blob

    signs: list[tuple[float, Rect]] = []
    salient = (contrast > 28).astype(np.uint8)
    masks = [(salient, (1, 3))]
    present = np.bincount(codes.ravel(), minlength=len(PALETTE))
    for colour, index in _NAME_INDEX.items():
        if colour in ("white", "gray", "black") or present[index] < 6:
            continue  # white, gray, black: the paper and ink of every page, which text zones cover
        masks.append(((codes == index).astype(np.uint8), (2, 2)))
    for mask, peel in masks:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones(peel, np.uint8))
        signs += _sign_like(mask, sums, squares, w, h)
    signs.sort(key=lambda t: -t[0])

    ink = (cv2.absdiff(gray, cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)) > 24).astype(np.uint8)
    ink_sums = cv2.integral(ink)
    k = max(3, int(0.02 * side))
    joined = cv2.dilate(ink, np.ones((k, k), np.uint8))
    stats = _component_stats(joined)
    x, y, bw, bh = (stats[1:, i].astype(np.int64) for i in range(4))
    amount = _box_sums(ink_sums, x, y, bw, bh)
    keep = (amount >= 4) & (bw * bh <= 0.6 * w * h)
    x, y, bw, bh, amount = x[keep], y[keep], bw[keep], bh[keep], amount[keep]
    zone_boxes = context_boxes(x / w, y / h, (x + bw) / w, (y + bh) / h, grow=0.1, min_side=0.06)
    zones = sorted(zip(amount.tolist(), zone_boxes, strict=True), key=lambda z: -z[0])
    return unique([b for _, b in signs] + [b for _, b in zones], max_proposals)


def _sign_like(mask: np.ndarray, sums: np.ndarray, squares: np.ndarray, w: int, h: int) -> list[tuple[float, Rect]]:
    """Connected parts of `mask` shaped like a sign, with a sign-likeness (texture x fill) for ranking.

    Filtered with array operations on the component table: a cluttered view has hundreds of parts.
    """
    stats = _component_stats(mask)
    x, y, bw, bh, area = (stats[1:, i].astype(np.int64) for i in range(5))
    fill = area / np.maximum(1, bw * bh)
    aspect = bw / np.maximum(1, bh)
    # The view squashes the image to a square, so a wide sign can look square: 0.8, not 1.3.
    keep = ((area >= 6) & (bw >= 3) & (fill >= 0.55) & (aspect >= 0.8) & (aspect <= 12)
            & (bw <= 0.25 * w) & (bh <= 0.12 * h))
    if not keep.any():
        return []
    x, y, bw, bh, fill = x[keep], y[keep], bw[keep], bh[keep], fill[keep]
    n = (bw * bh).astype(np.float64)
    mean = _box_sums(sums, x, y, bw, bh) / n
    texture = np.sqrt(np.maximum(0.0, _box_sums(squares, x, y, bw, bh) / n - mean * mean))
    boxes = context_boxes(x / w, y / h, (x + bw) / w, (y + bh) / h, grow=1.5, min_side=0.06)
    return list(zip((texture * fill).tolist(), boxes, strict=True))


def _component_stats(mask: np.ndarray) -> np.ndarray:
    """`cv2.connectedComponentsWithStats(mask, connectivity=8)`'s stats table, found faster.

    The finder labels ten masks a query, which made labelling half its time. Grana's block-based
    algorithm with 16-bit labels gives the same table (same labels, same order) in about 40% of the time of
    the default call on one thread: the label image is a quarter of the memory traffic. 16 bits hold
    every label of a view up to 510 px (8-connected parts are at most one per 2x2 block).
    """
    h, w = mask.shape[:2]
    ltype = cv2.CV_16U if ((h + 1) // 2) * ((w + 1) // 2) < 65535 else cv2.CV_32S
    return cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, ltype, cv2.CCL_GRANA)[2]


def _box_sums(integral: np.ndarray, x, y, w, h) -> np.ndarray:
    """Sums over many boxes at once from an integral image (arrays of x, y, w, h)."""
    return integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]


def colour_shares(view: np.ndarray, cell: int = 4, codes: np.ndarray | None = None) -> np.ndarray:
    """[K, H/cell, W/cell] float32: the share of each `PALETTE` colour name in each `cell` x `cell` block
    (`codes`: the view's `name_codes`, when the caller already has them)."""
    h, w = view.shape[0] // cell * cell, view.shape[1] // cell * cell
    codes = name_codes(view) if codes is None else codes
    k = len(PALETTE)
    # One bincount over (block, colour) pairs: a single pass, where a mask per colour would be eleven.
    index = _block_index(h, w, cell) * k + codes[:h, :w]
    counts = np.bincount(index.ravel(), minlength=(h // cell) * (w // cell) * k)
    shares = counts.reshape(h // cell, w // cell, k).transpose(2, 0, 1) / float(cell * cell)
    return np.ascontiguousarray(shares, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def _block_index(h: int, w: int, cell: int) -> np.ndarray:
    rows, cols = np.arange(h)[:, None] // cell, np.arange(w)[None, :] // cell
    return (rows * (w // cell) + cols).astype(np.int64)


def _channel_max(arr: np.ndarray) -> np.ndarray:
    a, b, c = cv2.split(arr)
    return cv2.max(cv2.max(a, b), c)


def _local_background(view: np.ndarray) -> np.ndarray:
    """The view's local background: a median over about 4% of the view, taken at a quarter of the
    resolution (a 3-channel median at full size costs 8 ms of the finder's budget; this, under one)."""
    h, w = view.shape[:2]
    small = cv2.resize(view, (max(8, w // 4), max(8, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.medianBlur(small, _odd(max(h, w) / 100))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _odd(x: float) -> int:
    k = max(3, int(round(x)))
    return k if k % 2 else k + 1
