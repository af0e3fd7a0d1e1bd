"""The extractive answering layer: from what the OCR read in every view, answer or say where to look.

Each view is an image of a region of the original image (the global view covers all of it; a crop
covers its box). Text lines are mapped into normalized coordinates of the ORIGINAL image so that
positions ("in the top left of the image") and already-seen regions are comparable across views.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from .colours import colour_fraction, dominant_colour
from .ocr import OcrEngine, TextLine, image_digest
from .questions import Query
from .zones import Rect, centre, context_box, covers, inside, sign_blobs, text_zones

#: Recognition confidence above which a line counts as read.
READ_SCORE = 0.8
#: Share of a line's surroundings in one colour above which the line counts as on a sign of that colour.
SIGN_SHARE = 0.3
#: A view whose scale (view px / original px) is at least this counts as full resolution.
FULL_RES = 0.9


@dataclass
class ViewInput:
    """An image the reader was shown and the region of the original image it covers (normalized)."""

    image: Image.Image
    region: Rect = (0.0, 0.0, 1.0, 1.0)
    scale: float | None = None  # view px per original px; None when unknown (assume the view is the original)
    order: int = 0


@dataclass
class Seen:
    """A text line placed in the original image."""

    line: TextLine
    view: ViewInput
    box: Rect  # normalized in the original image
    _colour: str | None = field(default=None, repr=False)
    _shares: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def readable(self) -> bool:
        return self.line.score >= READ_SCORE and sum(ch.isalnum() for ch in self.line.text) >= 1

    @property
    def text(self) -> str:
        return self.line.text

    @property
    def cut(self) -> bool:
        """Whether the line touches an edge of its view that is not an edge of the image (a crop may cut it)."""
        w, h = self.view.image.size
        left, top, right, bottom = self.line.box
        rx1, ry1, rx2, ry2 = self.view.region
        margin = 2.0  # px: the detector's box ends at the glyphs, a line cut by the crop ends at the edge
        return ((left <= margin and rx1 > 0.0) or (top <= margin and ry1 > 0.0)
                or (right >= w - margin and rx2 < 1.0) or (bottom >= h - margin and ry2 < 1.0))

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def colour(self) -> str:
        """The most common colour name around the line."""
        if self._colour is None:
            self._colour = dominant_colour(self.view.image, self.line.box)
        return self._colour

    def has_colour(self, name: str) -> bool:
        """Whether the line sits on `name`: the dominant colour, or a large share of the area around it.

        The detector's box is sometimes looser than the sign, taking in the background, so a sign's colour
        need not be the majority of that box.
        """
        if name not in self._shares:
            self._shares[name] = colour_fraction(self.view.image, self.line.box, name)
        return self.colour() == name or self._shares[name] >= SIGN_SHARE


@dataclass
class Outcome:
    """Either an answer, or regions (normalized boxes) worth zooming into, best first."""

    answer: str | None = None
    zoom: list[Rect] = field(default_factory=list)
    scan: bool = False  # True when the boxes are a search over where text is, not a located target


def observe(views: list[ViewInput], ocr: OcrEngine, scope: str = "") -> list[Seen]:
    """OCR every view and place its lines in the original image."""
    seen = []
    for view in views:
        rx1, ry1, rx2, ry2 = view.region
        w, h = view.image.size
        for line in ocr.read(view.image, scope):
            left, top, right, bottom = line.box
            box = (rx1 + left / w * (rx2 - rx1), ry1 + top / h * (ry2 - ry1),
                   rx1 + right / w * (rx2 - rx1), ry1 + bottom / h * (ry2 - ry1))
            seen.append(Seen(line, view, box))
    return seen


def answer(query: Query, views: list[ViewInput], ocr: OcrEngine, scope: str = "") -> Outcome:
    """Answer `query` from `views`, or say which regions to zoom into (`scope`: the OCR cache's scope)."""
    seen = observe(views, ocr, scope)
    if query.kind == "colour_object":
        return _colour_object(query, views, seen)
    if query.kind == "key_value":
        return _after_anchor(query.key or "", views, seen, key_value=True)
    if query.kind == "anchor":
        return _after_anchor(query.anchor or "", views, seen, key_value=False)
    return _generic(query, views, seen)


# --- colour + object ---------------------------------------------------------------------------------------


def _colour_object(query: Query, views: list[ViewInput], seen: list[Seen]) -> Outcome:
    def placed(s: Seen) -> bool:
        return query.position is None or inside(s.centre, query.position)

    matches = [s for s in seen if placed(s) and _has_letters(s.text) and s.has_colour(query.colour or "")]
    readable = _drop_partial_readings([s for s in matches if s.readable])
    if readable:
        # The same sign may be read in several views: trust a whole reading (not cut by a crop's edge),
        # then the sharpest (largest text in px).
        best = max(readable, key=lambda s: (not s.cut, s.line.height, s.line.score))
        return Outcome(answer=best.text)
    located = _unseen([context_box(s.box) for s in matches], views)
    if located:  # a blurry line on that colour: one look at it
        return Outcome(zoom=located)
    # Otherwise a search over sign-shaped blobs of that colour, several per turn (each is a small crop).
    zoom = [b for b in _colour_blobs(views, query.colour or "") if query.position is None or inside(centre(b), query.position)]
    if query.position is not None:
        zoom.append(query.position)
    return Outcome(zoom=_unseen(zoom, views), scan=True)


def _drop_partial_readings(readings: list[Seen]) -> list[Seen]:
    """Drop readings that are part of a longer reading of the same sign.

    A crop whose edge falls in the gap between two letters cuts a sign without touching its text, so the
    reading ("MEA" of "MEADOW 22") does not look cut; another view's reading that spans it and contains
    its text shows it was only a part.
    """
    def squashed(s: Seen) -> str:
        return "".join(ch for ch in s.text.lower() if ch.isalnum())

    def part_of(s: Seen, other: Seen) -> bool:
        return (len(squashed(other)) > len(squashed(s)) and squashed(s) in squashed(other)
                and covers(other.box, s.box) >= 0.8)

    return [s for s in readings if not any(part_of(s, o) for o in readings if o is not s)]


def _colour_blobs(views: list[ViewInput], colour: str) -> list[Rect]:
    """Sign-shaped regions of `colour` in the coarsest view (see `zones.sign_blobs`)."""
    view = min(views, key=_scale, default=None)
    return [] if view is None else _found(view, "signs:" + colour, lambda v: sign_blobs(v.image, colour, v.region))


# --- key: value and anchored words -------------------------------------------------------------------------


def _after_anchor(anchor: str, views: list[ViewInput], seen: list[Seen], key_value: bool) -> Outcome:
    if not anchor:
        return Outcome()
    # A sharp line counts when the words that matter are read well, even if another word on it is not (a
    # word cut by a crop's edge, a garbled neighbour); a blurry line must be read well throughout.
    lines = sorted((s for s in seen if s.readable or _scale(s.view) >= FULL_RES), key=lambda s: (s.cut, -s.line.height))
    ends_at_anchor = []
    for s in lines:
        found = _word_after(s.text, anchor, key_value)
        if found is None:
            continue
        value, start, end = found
        confident = s.line.span_score(start, end) >= READ_SCORE
        if value and confident:
            return Outcome(answer=value)
        if not value and confident:
            ends_at_anchor.append(s)
    # Only when no view reads the answer on the anchor's own line: a line may end at the anchor because a
    # crop's edge fell in the gap after it (so it does not look cut) while another view reads on.
    for s in ends_at_anchor:
        nxt = _line_to_the_right(s, lines) or (None if key_value else _line_below(s, lines))
        if nxt is None or not nxt.text.split():
            continue
        value = nxt.text.lstrip(":： ") if key_value else _clean_word(nxt.text.split()[0])
        span = len(nxt.text) if key_value else len(nxt.text.split()[0])
        if value and nxt.line.span_score(0, span) >= READ_SCORE:
            return Outcome(answer=value)
    # Read, but with an OCR slip in the anchor ("kelpp pillar"): the closest run of words, if close enough.
    found_fuzzy = _fuzzy_after(anchor, [s for s in lines if _scale(s.view) >= FULL_RES], key_value)
    if found_fuzzy:
        return Outcome(answer=found_fuzzy)
    # Not read yet: zoom where a blurry line partially matches the anchor, else search where text is.
    blurry = [s for s in seen if _scale(s.view) < FULL_RES]
    partial = sorted((s for s in blurry if _similarity(s.text, anchor) >= 0.7), key=lambda s: -_similarity(s.text, anchor))
    zoom = _unseen([context_box(s.box, grow=0.3, min_side=0.08) for s in partial], views)
    if zoom:
        return Outcome(zoom=zoom)
    return Outcome(zoom=_unseen(_text_regions(views, seen), views), scan=True)


def _word_after(text: str, anchor: str, key_value: bool) -> tuple[str, int, int] | None:
    """The word(s) after `anchor` in `text` and the span of anchor and answer (for its confidence).

    None if the anchor is absent; an empty answer if it ends the line.
    """
    if key_value:
        m = re.search(rf"{_fuzzy(anchor)}\s*[:：]\s*(?P<rest>.*)$", text, re.I)
        return None if m is None else (m.group("rest").strip(), m.start(), m.end())
    # No word-boundary checks: the OCR sometimes runs neighbouring words together ("quillthunder").
    m = re.search(rf"{_fuzzy(anchor)}[\s,;:.]*(?P<rest>\S*)", text, re.I)
    if m is None:
        return None
    return _clean_word(m.group("rest")), m.start(), m.end()


def _fuzzy_after(anchor: str, lines: list[Seen], key_value: bool, threshold: float = 0.85) -> str | None:
    """The word (or, for `key: value`, the rest of the line) after the best approximate match of `anchor`.

    Only full-resolution lines are given; the match is a run of as many words as the anchor, compared with
    spaces removed, and must reach `threshold` (one slipped letter in a two-word anchor scores about 0.95).
    The answer's own words must be read with confidence; the slipped anchor need not be.
    """
    n = max(1, len(anchor.split()))
    target = anchor.lower().replace(" ", "")
    best: tuple[float, str] | None = None
    for s in lines:
        words = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", s.text)]
        for i in range(len(words) - n + 1):
            window = "".join(w for w, _, _ in words[i : i + n]).lower().rstrip(":：")
            score = difflib.SequenceMatcher(None, window, target, autojunk=False).ratio()
            rest = words[i + n :]
            if score < threshold or not rest:
                continue
            if key_value:
                value, span = " ".join(w for w, _, _ in rest).lstrip(":： ").strip(), (rest[0][1], rest[-1][2])
            else:
                value, span = _clean_word(rest[0][0].lstrip(":：")), (rest[0][1], rest[0][2])
            if value and s.line.span_score(*span) >= READ_SCORE and (best is None or score > best[0]):
                best = (score, value)
    return None if best is None else best[1]


def _fuzzy(anchor: str) -> str:
    # OCR often drops or merges spaces: let any run of spaces in the anchor match zero or more spaces.
    return r"\s*".join(re.escape(part) for part in anchor.split())


def _clean_word(word: str) -> str:
    return word.strip(".,;:!?\"'()[]")


def _line_to_the_right(s: Seen, lines: list[Seen]) -> Seen | None:
    cy = s.centre[1]
    row = [o for o in lines if o is not s and o.box[0] >= s.box[2] - 0.002 and o.box[1] <= cy <= o.box[3]]
    return min(row, key=lambda o: o.box[0], default=None)


def _line_below(s: Seen, lines: list[Seen]) -> Seen | None:
    height = s.box[3] - s.box[1]
    below = [o for o in lines if o is not s and 0 <= o.box[1] - s.box[3] <= 2.5 * height and o.box[0] < s.box[2]]
    return min(below, key=lambda o: (o.box[1], o.box[0]), default=None)


def _similarity(text: str, anchor: str) -> float:
    """How well `anchor` matches some run of as many words in `text` (0..1), tolerant of OCR errors."""
    words, n = text.lower().split(), max(1, len(anchor.split()))
    a = anchor.lower().replace(" ", "")
    if not words or not a:
        return 0.0
    best = 0.0
    for i in range(max(1, len(words) - n + 1)):
        window = "".join(words[i : i + n])
        best = max(best, difflib.SequenceMatcher(None, window, a, autojunk=False).ratio())
    return best


def _text_regions(views: list[ViewInput], seen: list[Seen]) -> list[Rect]:
    """Where text seems to be in the coarsest view (see `zones.text_zones`), most ink first."""
    view = min(views, key=_scale, default=None)
    return [] if view is None else _found(view, "text", lambda v: text_zones(v.image, v.region))


# --- anything else -----------------------------------------------------------------------------------------


def _generic(query: Query, views: list[ViewInput], seen: list[Seen]) -> Outcome:
    if not views:
        return Outcome()
    latest = max(views, key=lambda v: v.order)
    lines = [s for s in seen if s.view is latest and s.readable and _has_letters(s.text)]
    if query.position is not None:
        lines = [s for s in lines if inside(s.centre, query.position)]
    if lines:
        return Outcome(answer=max(lines, key=lambda s: s.line.height * s.line.score).text)
    return Outcome(zoom=_unseen(_text_regions(views, seen), views), scan=True)


# --- helpers -----------------------------------------------------------------------------------------------

#: What the finders saw in recent views. Each round of a tool conversation shows the reader the same global
#: view again, and the finders (~0.2 s on a 1024-px view) are pure functions of its pixels: compute once.
_FOUND: OrderedDict[tuple, list[Rect]] = OrderedDict()
_FOUND_LOCK = threading.Lock()
_FOUND_SIZE = 32


def _found(view: ViewInput, what: str, finder: Callable[[ViewInput], list[Rect]]) -> list[Rect]:
    key = (what, image_digest(view.image), tuple(view.region))
    with _FOUND_LOCK:
        if key in _FOUND:
            _FOUND.move_to_end(key)
            return list(_FOUND[key])
    boxes = finder(view)
    with _FOUND_LOCK:
        _FOUND[key] = list(boxes)
        while len(_FOUND) > _FOUND_SIZE:
            _FOUND.popitem(last=False)
    return boxes


def _has_letters(text: str) -> bool:
    return sum(ch.isalnum() for ch in text) >= 2


def _scale(view: ViewInput) -> float:
    if view.scale is not None:
        return view.scale
    return 1.0


def _unseen(boxes: list[Rect], views: list[ViewInput]) -> list[Rect]:
    """Drop boxes already shown at full resolution, and near-duplicates, keeping order."""
    sharp = [v.region for v in views if _scale(v) >= FULL_RES]
    out: list[Rect] = []
    for b in boxes:
        if any(covers(s, b) >= 0.9 for s in sharp):
            continue
        if any(covers(o, b) >= 0.9 for o in out):
            continue
        out.append(b)
    return out
