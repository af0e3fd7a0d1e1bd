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

#: White, gray and black: the paper and ink of every page, left to the text zones.
_PAPER_AND_INK = np.array([name in ("white", "gray", "black") for name in PALETTE])
_SQUARE3 = np.ones((3, 3), np.uint8)
#: Zero pixels kept around a mask's bounding box: a 3x3 close and a 2-pixel open reach 2 pixels out.
_MARGIN = 4


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

    # Component tables of the salient mask and of each colour present but paper and ink, in this order:
    # the signs' ranking keeps it on ties.
    tables = [_closed_components((contrast > 28).astype(np.uint8), (1, 3))]
    present = np.bincount(codes.ravel(), minlength=len(PALETTE))
    for index in np.flatnonzero((present >= 6) & ~_PAPER_AND_INK):
        tables.append(_closed_components((codes == index).astype(np.uint8), (2, 2)))
    signs = _sign_like(np.concatenate(tables), sums, squares, w, h)

    ink = (cv2.absdiff(gray, cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)) > 24).astype(np.uint8)
    ink_sums = cv2.integral(ink)
    k = max(3, int(0.02 * side))
    joined = cv2.dilate(ink, np.ones((k, k), np.uint8))
    stats = _component_stats(joined)
    x, y, bw, bh = (stats[1:, i].astype(np.int64) for i in range(4))
    amount = _box_sums(ink_sums, x, y, bw, bh)
    keep = (amount >= 4) & (bw * bh <= 0.6 * w * h)
    x, y, bw, bh, amount = x[keep], y[keep], bw[keep], bh[keep], amount[keep]
    order = np.argsort(-amount, kind="stable")  # most ink first
    x, y, bw, bh = x[order], y[order], bw[order], bh[order]
    zones = context_boxes(x / w, y / h, (x + bw) / w, (y + bh) / h, grow=0.1, min_side=0.06)
    return unique(signs + zones, max_proposals)


def _sign_like(stats: np.ndarray, sums: np.ndarray, squares: np.ndarray, w: int, h: int) -> list[Rect]:
    """Zoom boxes around the components (rows of `stats`: x, y, w, h, area) shaped like a sign, most
    sign-like (texture x fill) first; ties keep the rows' order.

    Filtered with array operations on the component tables of all masks at once: a cluttered view has
    hundreds of parts.
    """
    x, y, bw, bh, area = stats.astype(np.int64).T
    fill = area / np.maximum(1, bw * bh)
    aspect = bw / np.maximum(1, bh)
    # The view squashes the image to a square, so a wide sign can look square: 0.8, not 1.3.
    keep = ((area >= 6) & (bw >= 3) & (fill >= 0.55) & (aspect >= 0.8) & (aspect <= 12)
            & (bw <= 0.25 * w) & (bh <= 0.12 * h))
    x, y, bw, bh, fill = x[keep], y[keep], bw[keep], bh[keep], fill[keep]
    n = (bw * bh).astype(np.float64)
    mean = _box_sums(sums, x, y, bw, bh) / n
    texture = np.sqrt(np.maximum(0.0, _box_sums(squares, x, y, bw, bh) / n - mean * mean))
    order = np.argsort(-(texture * fill), kind="stable")
    x, y, bw, bh = x[order], y[order], bw[order], bh[order]
    return context_boxes(x / w, y / h, (x + bw) / w, (y + bh) / h, grow=1.5, min_side=0.06)


def _closed_components(mask: np.ndarray, peel: tuple[int, int]) -> np.ndarray:
    """The components of `mask` closed (3x3) then opened (`peel`): their stats rows (x, y, w, h, area)
    in the labeller's order, background left out.

    Only the mask's bounding box (grown by a margin the two filters cannot cross) is filtered and
    labelled: a colour present in one corner then costs a corner, not the whole view. The box starts on
    even coordinates, so the labeller's 2x2 blocks fall where they fell on the whole view (a test checks
    the tables are equal, order included, for boxes at corners, edges and odd places).
    """
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return np.zeros((0, 5), np.int32)
    cols = np.flatnonzero(mask.any(0))
    h, w = mask.shape
    x0, y0 = max(0, int(cols[0]) - _MARGIN) & ~1, max(0, int(rows[0]) - _MARGIN) & ~1
    part = np.ascontiguousarray(mask[y0 : min(h, int(rows[-1]) + 1 + _MARGIN), x0 : min(w, int(cols[-1]) + 1 + _MARGIN)])
    part = cv2.morphologyEx(part, cv2.MORPH_CLOSE, _SQUARE3)
    part = cv2.morphologyEx(part, cv2.MORPH_OPEN, np.ones(peel, np.uint8))
    stats = _component_stats(part)[1:].copy()
    stats[:, 0] += x0
    stats[:, 1] += y0
    return stats


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
