"""PP-OCR (detector + recognizer) from the `rapidocr-onnxruntime` wheel, read at the pixels given.

The reader must be resolution-sensitive like a VLM: it reads an image at exactly the size it was sent,
so small text in a downscaled global view stays unreadable and becomes readable in a full-resolution
crop. RapidOCR itself would shrink anything over 2000 px; we tile large images instead, so `full` really
reads the full resolution.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..base import require

#: Tiles at most this many pixels per side (RapidOCR's own limit, above which it downsizes).
TILE = 1800
OVERLAP = 160
#: A blank gap at least this many line heights wide is a word space even inside a short line.
WORD_SPACE = 0.7
#: A line's first or last piece narrower than this many heights and read below `SLIVER_SCORE` is a sliver.
SLIVER_WIDTH = 0.7
SLIVER_SCORE = 0.8


@dataclass
class TextLine:
    """One detected text line in the pixel coordinates of the image it was read from.

    `score` is the recognizer's confidence in its worst word (0 when recognition produced nothing); a
    detected line with a low score is text the reader can see but not read. `words` keeps each recognised
    piece with its own confidence, so a question about one part of a line can trust that part even when
    another word (say, one cut by a crop's edge) is garbled; `text` is the pieces joined by spaces.
    """

    text: str
    score: float
    box: tuple[float, float, float, float]  # left, top, right, bottom in pixels
    words: tuple[tuple[str, float], ...] = ()

    def span_score(self, start: int, end: int) -> float:
        """The confidence of the characters `text[start:end]`: the worst piece overlapping them.

        A line built without pieces answers with its own `score`.
        """
        if not self.words:
            return self.score
        worst, at = 1.0, 0
        for piece, score in self.words:
            if at < end and at + len(piece) > start:
                worst = min(worst, score)
            at += len(piece) + 1  # the joining space
        return worst

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class OcrEngine:
    """A thin, cached, thread-safe wrapper over RapidOCR's detector and recognizer."""

    def __init__(self, cache_size: int = 256):
        rapidocr = require("rapidocr_onnxruntime", "rapidocr-onnxruntime")
        # Upright synthetic and document text: the angle classifier only costs time.
        self._engine = rapidocr.RapidOCR(use_cls=False, print_verbose=False)
        self._lock = threading.Lock()
        self._cache: dict[str, list[TextLine]] = {}
        self._cache_size = cache_size

    def read(self, image: Image.Image, scope: str = "") -> list[TextLine]:
        """All text lines in `image` (RGB), read at its own resolution, top to bottom.

        Results are cached per `scope` (the reader passes one conversation's key), so rounds of one tool
        conversation reuse what was read while a new question pays for its reading again, as a VLM would.
        """
        key = scope + ":" + image_digest(image)
        with self._lock:
            if key in self._cache:
                self._cache[key] = lines = self._cache.pop(key)  # least recently used goes first
                return lines
        lines = merge_rows(self._read_tiled(np.asarray(image.convert("RGB"))[:, :, ::-1].copy()))
        with self._lock:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = lines
        return lines

    def detect(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        """Text-line boxes (pixels) found by the detector alone: cheap, no recognition."""
        bgr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()
        h, w = bgr.shape[:2]
        out = []
        for y0 in _starts(h):
            for x0 in _starts(w):
                tile = bgr[y0 : y0 + TILE, x0 : x0 + TILE]
                if min(tile.shape[:2]) < 8:
                    continue
                with self._lock:
                    boxes, _ = self._engine.text_det(_padded(tile))
                for quad in boxes if boxes is not None else []:
                    xs, ys = quad[:, 0], quad[:, 1]
                    out.append((float(xs.min()) + x0, float(ys.min()) + y0, float(xs.max()) + x0, float(ys.max()) + y0))
        return out

    def _read_tiled(self, bgr: np.ndarray) -> list[TextLine]:
        h, w = bgr.shape[:2]
        if max(h, w) <= TILE:
            return self._read_tile(bgr, 0, 0)
        lines: list[TextLine] = []
        for y0 in _starts(h):
            for x0 in _starts(w):
                tile = bgr[y0 : y0 + TILE, x0 : x0 + TILE]
                lines.extend(self._read_tile(tile, x0, y0))
        return _dedupe(lines)

    def _read_tile(self, bgr: np.ndarray, x0: int, y0: int) -> list[TextLine]:
        if min(bgr.shape[:2]) < 8:
            return []
        engine = self._engine
        bgr = _padded(bgr)
        with self._lock:  # onnxruntime sessions are thread-safe, RapidOCR's pre/post-processing state is not
            boxes, _ = engine.text_det(bgr)
            if boxes is None or len(boxes) == 0:
                return []
            boxes = engine.sorted_boxes(boxes)
            crops = engine.get_crop_img_list(bgr, boxes)
            # The recognizer drops the spaces of long English lines: recognise long lines word by word.
            pieces = [split_words(c) for c in crops]
            flat = [p for ps in pieces for p in ps]
            rec_flat, _ = engine.text_rec(flat, False) if flat else ([], None)
        parts, i = [], 0
        for ps in pieces:
            parts.append(list(rec_flat[i : i + len(ps)]))
            i += len(ps)
        self._respace(pieces, parts)
        rec = [_words(_drop_slivers(ps, pt)) for ps, pt in zip(pieces, parts, strict=True)]
        out = []
        for quad, words in zip(boxes, rec, strict=False):
            text = " ".join(w for w, _ in words)
            score = min((sc for _, sc in words), default=0.0)
            xs, ys = quad[:, 0], quad[:, 1]
            if not words and xs.max() - xs.min() < SLIVER_WIDTH * (ys.max() - ys.min()):
                continue  # a lone sliver: no text, and joined to a row it would only stretch the row's box
            out.append(TextLine(text, score, (float(xs.min()) + x0, float(ys.min()) + y0,
                                              float(xs.max()) + x0, float(ys.max()) + y0), words))
        return out

    def _respace(self, pieces: list[list[np.ndarray]], parts: list[list]) -> None:
        """Put back the spaces the recognizer drops inside short lines ("rivermural" for "river mural").

        Short lines are recognised whole (cutting codes such as "B7-4421" at narrow gaps would hurt);
        where such a line has a blank gap as wide as a word space, its pieces are recognised too, and they
        replace the whole line (in `pieces` and `parts`, in place) only when the two readings agree letter
        for letter but for the spaces.
        """
        todo = []
        for j, ps in enumerate(pieces):
            if len(ps) == 1 and _words(parts[j]):
                alt = split_words(ps[0], min_gap=WORD_SPACE, min_ratio=0.0)
                if len(alt) > 1:
                    todo.append((j, alt))
        if not todo:
            return
        flat = [p for _, alt in todo for p in alt]
        with self._lock:
            rec_flat, _ = self._engine.text_rec(flat, False)
        i = 0
        for j, alt in todo:
            alt_parts = list(rec_flat[i : i + len(alt)])
            i += len(alt)
            if _letters(_words(alt_parts)) == _letters(_words(parts[j])):
                pieces[j], parts[j] = alt, alt_parts


#: Thinner tiles than this (long side / short side) are padded before detection (`_padded`).
MAX_TILE_RATIO = 4


def _padded(bgr: np.ndarray) -> np.ndarray:
    """A very thin tile padded with white below or to the right to `MAX_TILE_RATIO`:1.

    RapidOCR's detector scales the short side up to 736 px, so a 10x1800 strip became 736x132480 (111 s for
    one tile), and a 1800x40 line of text 33120x736 (24.5 s; 1.5 s padded, read the same). Tiles up to 4:1
    are not touched, so most crops are detected at the scale they were; padding at the far edges keeps
    every box's coordinates as they were.
    """
    h, w = bgr.shape[:2]
    if MAX_TILE_RATIO * min(h, w) >= max(h, w):
        return bgr
    short = -(-max(h, w) // MAX_TILE_RATIO)
    out = np.full((max(h, short), max(w, short), 3), 255, dtype=bgr.dtype)
    out[:h, :w] = bgr
    return out


def _letters(words: tuple[tuple[str, float], ...]) -> str:
    return "".join(w for w, _ in words).replace(" ", "")


def _drop_slivers(pieces: list[np.ndarray], parts: list) -> list:
    """Drop an unsure, narrow first or last piece: a neighbour's stroke inside an overlapping detector box.

    Boxes of adjacent words overlap by a few pixels, so a line often starts or ends with a sliver that
    reads as "1", "V" or "C" at low confidence; kept, it would stand between an anchor and its next word.
    A box that is nothing but such a sliver loses its only piece (and `_read_tile` drops the box).
    """
    drop = set()
    for end in {0, len(pieces) - 1}:
        height, width = pieces[end].shape[:2]
        if width < SLIVER_WIDTH * height and float(parts[end][1]) < SLIVER_SCORE:
            drop.add(end)
    return [p for k, p in enumerate(parts) if k not in drop]


def _words(parts) -> tuple[tuple[str, float], ...]:
    """Recognizer results as (text, confidence) pieces, empty readings dropped."""
    return tuple((str(r[0]).strip(), float(r[1])) for r in parts if str(r[0]).strip())


def split_words(crop: np.ndarray, min_gap: float = 0.4, min_ratio: float = 6.0) -> list[np.ndarray]:
    """Cut a long text-line image at blank columns at least `min_gap` line heights wide.

    Lines shorter than `min_ratio` heights are kept whole (nothing to gain, and codes like "B7-4421"
    must not be cut at narrow gaps).
    """
    h, w = crop.shape[:2]
    if h == 0 or w < min_ratio * h:
        return [crop]
    gray = crop.mean(axis=2) if crop.ndim == 3 else crop.astype(np.float64)
    # Ink = pixels far from the line's typical (background) level.
    background = np.median(gray)
    ink = np.abs(gray - background) > 60
    blank = ~ink.any(axis=0)
    cuts, start, gap = [], None, max(2, int(min_gap * h))
    for x in range(w):
        if blank[x] and start is None:
            start = x
        elif not blank[x] and start is not None:
            if x - start >= gap and start > 0:
                cuts.append((start, x))  # a blank run [start, x) between two words
            start = None
    if not cuts:
        return [crop]
    # Each word keeps some blank margin (the recognizer reads tight crops worse), but never reaches past
    # the middle of a gap: a sliver of the neighbour's last stroke reads as an extra "1" or "l".
    pad = max(1, h // 4)
    lefts = [0] + [max((a + b) // 2, b - pad) for a, b in cuts]
    rights = [min((a + b) // 2, a + pad) for a, b in cuts] + [w]
    return [crop[:, x1:x2] for x1, x2 in zip(lefts, rights, strict=True) if x2 - x1 > 2]


def merge_rows(lines: list[TextLine], max_gap: float = 1.6) -> list[TextLine]:
    """Join boxes that sit on one text row with a small gap into one line, reading order top to bottom.

    The detector often splits a row at wide word gaps; questions like "the word after X" need the row.
    A box may join a row on either side (a row's first word can sit a pixel lower than the rest), and
    joined rows are joined again until nothing changes: a middle box may first join the right-hand part.
    """
    rows = list(lines)
    while True:
        joined = _join_pass(rows, max_gap)
        if len(joined) == len(rows):
            break
        rows = joined
    rows.sort(key=lambda t: (round(t.box[1] / max(4.0, t.height)), t.box[0]))
    return rows


def _join_pass(lines: list[TextLine], max_gap: float) -> list[TextLine]:
    rows: list[TextLine] = []
    for line in sorted(lines, key=lambda t: (t.box[1], t.box[0])):
        joined = False
        for idx, row in enumerate(rows):
            side = _side(row, line, max_gap)
            if side is None:
                continue
            left, right = (row, line) if side == "right" else (line, row)
            rows[idx] = TextLine(
                (left.text + " " + right.text).strip(),
                min(left.score, right.score),
                (min(left.box[0], right.box[0]), min(left.box[1], right.box[1]),
                 max(left.box[2], right.box[2]), max(left.box[3], right.box[3])),
                _pieces(left) + _pieces(right),
            )
            joined = True
            break
        if not joined:
            rows.append(line)  # rows are replaced when joined, never changed in place
    return rows


def _side(row: TextLine, line: TextLine, max_gap: float) -> str | None:
    """On which side of `row` the box `line` continues it ("right", "left"), or None if it does not."""
    h = min(row.height, line.height)
    v_overlap = min(row.box[3], line.box[3]) - max(row.box[1], line.box[1])
    if h <= 0 or v_overlap < 0.6 * h or not 0.6 < line.height / row.height < 1.6:
        return None
    # Adjacent boxes overlap: a detector box often takes in its neighbour's first or last stroke.
    if -h <= line.box[0] - row.box[2] <= max_gap * h:
        return "right"
    if -h <= row.box[0] - line.box[2] <= max_gap * h:
        return "left"
    return None


def _pieces(line: TextLine) -> tuple[tuple[str, float], ...]:
    """A line's pieces, or the whole line as one piece (so joined rows keep every part's confidence)."""
    if line.words:
        return line.words
    return ((line.text, line.score),) if line.text else ()


def _starts(n: int) -> list[int]:
    if n <= TILE:
        return [0]
    step = TILE - OVERLAP
    starts = list(range(0, n - TILE, step)) + [n - TILE]
    return sorted(set(starts))


def _dedupe(lines: list[TextLine]) -> list[TextLine]:
    """Drop lines read twice in the overlap of two tiles (keep the longer, then more confident, read)."""
    lines = sorted(lines, key=lambda t: (-len(t.text), -t.score))
    kept: list[TextLine] = []
    for line in lines:
        if not any(_overlap(line.box, k.box) > 0.5 for k in kept):
            kept.append(line)
    return kept


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0


def image_digest(image: Image.Image) -> str:
    """A key for an image's exact pixels (size and mode included)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.size}{image.mode}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


_shared: OcrEngine | None = None
_shared_lock = threading.Lock()


def shared_engine() -> OcrEngine:
    """One process-wide engine: loading the ONNX sessions costs time and memory."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = OcrEngine()
        return _shared
