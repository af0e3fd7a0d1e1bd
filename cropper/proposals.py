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

from backends.reader.colours import PALETTE, name_pixels
from backends.reader.zones import context_box, unique

Rect = tuple[float, float, float, float]

_NAME_INDEX = {name: i for i, name in enumerate(PALETTE)}


def find_proposals(view: np.ndarray, max_proposals: int = 96) -> list[Rect]:
    """Candidate zoom boxes in a square uint8 RGB `view` [S, S, 3]: sign-like blobs first, then text zones.

    Sign-like: a connected part of one colour name (or of pixels that stand out from their
    surroundings) that is solid, wider than about as tall, and small. Text zones: ink that differs from
    the local background, joined into lines and blocks, most ink first. At most `max_proposals`, with
    near-duplicates (one mostly inside an earlier one) dropped.
    """
    if view.ndim != 3 or view.shape[2] != 3 or view.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 view, got {view.shape} {view.dtype}")
    h, w = view.shape[:2]
    side = max(h, w)
    gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    background = _local_background(view)
    contrast = _channel_max(cv2.absdiff(view, background))
    codes = name_codes(view)
    sums, squares = cv2.integral2(gray, sdepth=cv2.CV_64F)  # box sums in O(1): texture per blob

    signs: list[tuple[float, Rect]] = []
    salient = (contrast > 28).astype(np.uint8)
    masks = [(salient, (1, 3))]
    present = np.bincount(codes.ravel(), minlength=len(PALETTE))
    for colour, index in _NAME_INDEX.items():
        if colour in ("white", "gray", "black") or present[index] < 4:
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
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    zones = []
    for i in range(1, n):
        x, y, bw, bh, _ = stats[i]
        amount = int(_box_sum(ink_sums, x, y, bw, bh))
        if amount < 4 or bw * bh > 0.6 * w * h:
            continue
        zones.append((amount, context_box((x / w, y / h, (x + bw) / w, (y + bh) / h), grow=0.1, min_side=0.06)))
    zones.sort(key=lambda z: -z[0])
    return unique([b for _, b in signs] + [b for _, b in zones])[:max_proposals]


def _sign_like(mask: np.ndarray, sums: np.ndarray, squares: np.ndarray, w: int, h: int) -> list[tuple[float, Rect]]:
    """Connected parts of `mask` shaped like a sign, with a sign-likeness (texture x fill) for ranking."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area < 6 or bw < 3:
            continue
        fill = area / float(bw * bh)
        # The view squashes the image to a square, so a wide sign can look square: 0.8, not 1.3.
        if fill < 0.55 or not 0.8 <= bw / bh <= 12 or bw > 0.25 * w or bh > 0.12 * h:
            continue
        mean = _box_sum(sums, x, y, bw, bh) / (bw * bh)
        texture = max(0.0, _box_sum(squares, x, y, bw, bh) / (bw * bh) - mean * mean) ** 0.5
        out.append((texture * fill, context_box((x / w, y / h, (x + bw) / w, (y + bh) / h))))
    return out


def name_codes(view: np.ndarray) -> np.ndarray:
    """[H, W] uint8: the index in `PALETTE` of each pixel's colour name (`name_pixels`, as small ints)."""
    return colour_code_table()[_quantized(view)]


@functools.lru_cache(maxsize=1)
def colour_code_table() -> np.ndarray:
    """[4096] uint8: the `PALETTE` index of each colour quantized to 16 levels per channel (r*256+g*16+b)."""
    names = name_pixels(np.array([[[(k // 256) * 16 + 8, ((k // 16) % 16) * 16 + 8, (k % 16) * 16 + 8]
                                   for k in range(4096)]], dtype=np.uint8))[0]
    return np.array([_NAME_INDEX[str(n)] for n in names], dtype=np.uint8)


def colour_shares(view: np.ndarray, cell: int = 4) -> np.ndarray:
    """[K, H/cell, W/cell] float32: the share of each `PALETTE` colour name in each `cell` x `cell` block."""
    h, w = view.shape[0] // cell * cell, view.shape[1] // cell * cell
    k = len(PALETTE)
    # One bincount over (block, colour) pairs: a single pass, where a mask per colour would be eleven.
    index = _block_index(h, w, cell) * k + name_codes(view[:h, :w])
    counts = np.bincount(index.ravel(), minlength=(h // cell) * (w // cell) * k)
    shares = counts.reshape(h // cell, w // cell, k).transpose(2, 0, 1) / float(cell * cell)
    return np.ascontiguousarray(shares, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def _block_index(h: int, w: int, cell: int) -> np.ndarray:
    rows, cols = np.arange(h)[:, None] // cell, np.arange(w)[None, :] // cell
    return (rows * (w // cell) + cols).astype(np.int64)


def _quantized(view: np.ndarray) -> np.ndarray:
    quant = (view >> 4).astype(np.int32)
    return quant[..., 0] * 256 + quant[..., 1] * 16 + quant[..., 2]


def _channel_max(arr: np.ndarray) -> np.ndarray:
    a, b, c = cv2.split(arr)
    return cv2.max(cv2.max(a, b), c)


def _box_sum(integral: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    return float(integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x])


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
