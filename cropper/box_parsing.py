"""Boxes in a model's reply: `[x1, y1, x2, y2]` in whichever coordinate convention the model used.

Shared by the oracle (asking a grounding model where the evidence is) and `VLMCropper` (a VLM asked which
region would help), so every model's boxes are read by one parser.
"""

from __future__ import annotations

import re

from .geometry import Box

__all__ = ["CONVENTIONS", "parse_boxes"]

_NUM = r"[-+]?\d+(?:\.\d+)?"
_SEP = r"\s*[,;\s]\s*"
_QUAD = re.compile(rf"[\[\(\{{<]\s*({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})\s*[\]\)\}}>]")
_PAIRS = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*(?:,|-|to|and)?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)", re.I)
_ANY_NUM = re.compile(_NUM)

CONVENTIONS = ("auto", "unit", "percent", "thousand", "pixels")


def parse_boxes(text: str, width: int, height: int, convention: str = "auto",
                pixel_size: tuple[int, int] | None = None) -> list[Box]:
    """Every `[x1, y1, x2, y2]` box in a model's reply, as normalized Boxes (empty boxes dropped).

    Accepted shapes: `[x1, y1, x2, y2]` (also in parentheses or braces, comma- or space-separated, e.g.
    Qwen2.5-VL's `{"bbox_2d": [...]}`), `(x1, y1), (x2, y2)` (Qwen-VL's `<box>` form), or a reply that
    is exactly four numbers. `convention` says what the numbers are: `unit` (0-1), `percent` (0-100),
    `thousand` (0-1000) or `pixels` (of an image `pixel_size`, default `width` x `height`: the image as
    sent; give the model's own input size for models that resize before answering, like Qwen2.5-VL).

    `auto` decides from the largest number M among all boxes of the reply (one convention per reply):
    M <= 1: unit; a `%` in the reply: percent; M > 1000: pixels; `px`/`pixel` in the reply: pixels;
    M <= 100: percent; otherwise thousand (the convention `GROUNDING_PROMPT` asks for). Hence the
    ambiguous cases: 0-1000 boxes lying within the first tenth of both axes read as percent, and pixel
    boxes of an image up to 1000 px read as thousandths unless the reply says "px"; pass `convention`
    when the model is known.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r}; known: {CONVENTIONS}")
    quads = [tuple(float(v) for v in m.groups()) for m in _QUAD.finditer(text)]
    quads += [tuple(float(v) for v in m.groups()) for m in _PAIRS.finditer(text)]
    if not quads:
        numbers = _ANY_NUM.findall(text)
        if len(numbers) == 4:
            quads = [tuple(float(v) for v in numbers)]
    if not quads:
        return []
    if convention == "auto":
        convention = _guess_convention(text, max(max(abs(v) for v in q) for q in quads))
    pw, ph = pixel_size or (width, height)
    scale = {"unit": (1.0, 1.0), "percent": (100.0, 100.0), "thousand": (1000.0, 1000.0),
             "pixels": (float(pw), float(ph))}[convention]
    out: list[Box] = []
    for x1, y1, x2, y2 in quads:
        box = Box.from_list([x1 / scale[0], y1 / scale[1], x2 / scale[0], y2 / scale[1]])
        if box.area > 0 and box not in out:
            out.append(box)
    return out


def _guess_convention(text: str, largest: float) -> str:
    if largest <= 1.0:
        return "unit"
    if "%" in text:
        return "percent"
    if largest > 1000:
        return "pixels"
    if re.search(r"\bpx\b|pixel", text, re.I):
        return "pixels"
    if largest <= 100:
        return "percent"
    return "thousand"
