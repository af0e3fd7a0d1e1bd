"""Synthetic fine-grained scenes with evidence boxes, fully determined by a seed.

Three families, all large (3000-4200 px wide) with small text (11-17 px):
- `sign_scene`: a cluttered scene with a few small coloured signs/tags/plates/labels carrying codes;
- `form_scene`: a form-like document with `key: value` fields;
- `page_scene`: a page of dense text, for "which word comes right after ..." questions.
`easy=True` renders the asked-for text large, so it is answerable from the low-res view (the gate's
negatives). Each function returns `(image, items)` where an item is a dict of the dataset contract
(without `id`/`image`): `question`, `answers`, `evidence` (normalized boxes), `kind`.
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from backends.reader.colours import PALETTE

OBJECTS = ("sign", "tag", "plate", "label")
SIGN_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray")
WORDS = (
    "amber harbor quartz meadow lantern copper falcon willow summit river cedar marble orbit velvet signal "
    "canyon ember prism tundra coral beacon saffron glacier timber nickel harvest compass mosaic thunder "
    "silver maple garnet voyage cobalt orchard pillar quiver raven sable tidal umber vertex zephyr basalt "
    "crimson delta fjord granite hollow island jasper kettle lotus mango nectar oasis pepper quill ridge"
).split()
FORM_KEYS = (
    "Invoice number", "Account ID", "Order date", "Customer code", "Batch number", "Serial number",
    "Reference", "Due date", "Policy number", "Tracking code", "Room number", "Badge ID", "Lot number",
    "Flight", "Gate", "Seat", "Total due", "Postal code", "Project code", "Ticket number",
)
QUESTION_FORMS = (
    "What is written on the {colour} {object}?",
    "What does the {colour} {object} say?",
    "What text is printed on the {colour} {object}?",
    "Read the {colour} {object}. What does it say?",
)
ANCHOR_FORMS = (
    'What word comes right after "{anchor}"?',
    'Which word follows "{anchor}" in the text?',
    'In the document, what word comes right after "{anchor}"?',
)
KEY_FORMS = ("What is the {key}?", "What is the {key} on the form?")


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def code(rng: random.Random) -> str:
    """A plate-like code such as `B7-4421` or `KX 318`."""
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    styles = (
        lambda: f"{rng.choice(letters)}{rng.randint(1, 9)}-{rng.randint(1000, 9999)}",
        lambda: f"{rng.choice(letters)}{rng.choice(letters)} {rng.randint(100, 999)}",
        lambda: f"{rng.randint(10, 99)}-{rng.choice(letters)}{rng.choice(letters)}{rng.randint(1, 9)}",
        lambda: rng.choice(WORDS).upper() + f" {rng.randint(2, 99)}",
    )
    return rng.choice(styles)()


def _text_colour(bg: str) -> tuple[int, int, int]:
    return (20, 20, 20) if bg in ("yellow", "white", "orange", "pink", "gray") else (250, 250, 250)


def _jitter(rgb, rng: random.Random, amount: int = 12) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _clutter(draw: ImageDraw.ImageDraw, rng: random.Random, w: int, h: int, n: int) -> None:
    # Muted blobs and strokes: visual noise that is not sign-shaped and carries no text.
    for _ in range(n):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(30, 260)
        # Desaturated, so clutter rarely looks like a sign's saturated paint.
        grey = rng.randrange(90, 180)
        base = tuple(int(grey + (rng.randrange(60, 210) - grey) * 0.4) for _ in range(3))
        shape = rng.random()
        if shape < 0.5:
            draw.ellipse([x, y, x + r, y + int(r * rng.uniform(0.4, 1.2))], fill=base)
        elif shape < 0.8:
            draw.line([x, y, x + rng.randint(-r, r), y + rng.randint(-r, r)], fill=base, width=rng.randint(2, 9))
        else:
            draw.polygon([(x, y), (x + r, y + rng.randint(0, r)), (x + rng.randint(0, r), y + r)], fill=base)


def sign_scene(rng: random.Random, easy: bool = False, n_signs: int | None = None) -> tuple[Image.Image, list[dict]]:
    """A cluttered scene with small coloured signs; one question per sign (colours are unique)."""
    w = rng.randrange(3000, 4201)
    h = int(w * rng.uniform(0.62, 0.8))
    top, bottom = _jitter((150, 170, 185), rng, 30), _jitter((110, 120, 100), rng, 30)
    img = Image.new("RGB", (w, h), top)
    draw = ImageDraw.Draw(img)
    for y in range(0, h, 8):  # a cheap vertical gradient, like sky to ground
        t = y / h
        draw.rectangle([0, y, w, y + 8], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    _clutter(draw, rng, w, h, rng.randint(120, 260))
    colours = rng.sample(SIGN_COLOURS, n_signs or rng.randint(3, 5))
    placed: list[tuple[int, int, int, int]] = []
    items = []
    for i, colour in enumerate(colours):
        size = rng.randint(60, 90) if easy and i == 0 else rng.randint(11, 17)
        text = code(rng)
        f = font(size)
        left, t, r, b = draw.textbbox((0, 0), text, font=f)
        pad = max(4, size // 2)
        bw, bh = r - left + 2 * pad, b - t + 2 * pad
        for _ in range(200):
            x, y = rng.randrange(40, w - bw - 40), rng.randrange(40, h - bh - 40)
            rect = (x - 30, y - 30, x + bw + 30, y + bh + 30)
            if not any(rect[0] < p[2] and p[0] < rect[2] and rect[1] < p[3] and p[1] < rect[3] for p in placed):
                break
        placed.append((x, y, x + bw, y + bh))
        obj = rng.choice(OBJECTS)
        fill = _jitter(PALETTE[colour], rng, 8)
        draw.rectangle([x, y, x + bw, y + bh], fill=fill, outline=_jitter(fill, rng, 30), width=max(1, size // 8))
        draw.text((x + pad - left, y + pad - t), text, font=f, fill=_text_colour(colour))
        question = rng.choice(QUESTION_FORMS).format(colour=colour, object=obj)
        items.append({
            "question": question, "answers": [text], "kind": "sign", "easy": bool(easy and i == 0),
            "evidence": [[round(x / w, 5), round(y / h, 5), round((x + bw) / w, 5), round((y + bh) / h, 5)]],
        })
    if easy:
        items = items[:1]
    return img, items


def form_scene(rng: random.Random, easy: bool = False) -> tuple[Image.Image, list[dict]]:
    """A form-like document: a large title and `key: value` fields in small text."""
    w = rng.randrange(3000, 4201)
    h = int(w * rng.uniform(0.7, 1.1))
    img = Image.new("RGB", (w, h), _jitter((248, 246, 240), rng, 6))
    draw = ImageDraw.Draw(img)
    title = f"{rng.choice(WORDS).title()} {rng.choice(('Invoice', 'Registration', 'Shipping Form', 'Order'))}"
    draw.text((w * 0.08, h * 0.05), title, font=font(rng.randint(90, 130)), fill=(30, 30, 60))
    keys = rng.sample(FORM_KEYS, rng.randint(6, 10))
    cols = rng.choice((1, 2))
    items = []
    y0 = h * 0.2
    for i, key in enumerate(keys):
        size = rng.randint(60, 80) if easy and i == 0 else rng.randint(11, 17)
        value = code(rng) if rng.random() < 0.7 else f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(20, 29)}"
        col, row = (i % cols, i // cols) if cols == 2 else (0, i)
        x = int(w * (0.08 + 0.45 * col + rng.uniform(0, 0.05)))
        y = int(y0 + row * h * 0.07 + rng.uniform(0, h * 0.02))
        line = f"{key}: {value}"
        f = font(size)
        draw.text((x, y), line, font=f, fill=(25, 25, 25))
        left, t, r, b = draw.textbbox((x, y), line, font=f)
        draw.line([x, b + 6, x + (r - left) + 40, b + 6], fill=(170, 170, 170), width=1)
        items.append({
            "question": rng.choice(KEY_FORMS).format(key=key.lower() if rng.random() < 0.5 else key),
            "answers": [value], "kind": "form", "easy": bool(easy and i == 0),
            "evidence": [[round(left / w, 5), round(t / h, 5), round(r / w, 5), round(b / h, 5)]],
        })
    return img, items[:1] if easy else rng.sample(items, min(3, len(items)))


def page_scene(rng: random.Random, easy: bool = False) -> tuple[Image.Image, list[dict]]:
    """A page of dense text; questions ask for the word right after a unique anchor word pair."""
    w = rng.randrange(3000, 4201)
    h = int(w * rng.uniform(0.7, 1.0))
    img = Image.new("RGB", (w, h), _jitter((250, 250, 247), rng, 4))
    draw = ImageDraw.Draw(img)
    size = rng.randint(60, 80) if easy else rng.randint(11, 17)
    f = font(size)
    margin = int(w * rng.uniform(0.06, 0.12))
    line_h = int(size * rng.uniform(1.6, 2.0))
    gap = size * rng.uniform(0.85, 1.0)  # wide enough that the OCR keeps word boundaries
    n_blocks = 1 if easy else rng.randint(3, 5)
    words_drawn: list[tuple[str, tuple[int, int, int, int], int]] = []  # word, pixel box, line index
    occupied: list[tuple[int, int, int, int]] = []
    line_index = 0
    for _ in range(n_blocks):
        block_lines = rng.randint(2, 4) if easy else rng.randint(5, 10)
        col_w = int(w * (rng.uniform(0.5, 0.7) if easy else rng.uniform(0.13, 0.22)))
        block_h = block_lines * line_h
        for _ in range(100):
            x0 = rng.randint(margin, max(margin + 1, w - margin - col_w))
            y0 = rng.randint(int(h * 0.05), max(int(h * 0.05) + 1, h - block_h - int(h * 0.05)))
            rect = (x0 - 2 * size, y0 - 2 * line_h, x0 + col_w + 2 * size, y0 + block_h + 2 * line_h)
            if not any(rect[0] < o[2] and o[0] < rect[2] and rect[1] < o[3] and o[1] < rect[3] for o in occupied):
                break
        else:
            continue
        occupied.append(rect)
        y = y0
        for _ in range(block_lines):
            x = x0
            while True:
                word = rng.choice(WORDS)
                wl, wt, wr, wb = draw.textbbox((x, y), word, font=f)
                if wr > x0 + col_w:
                    break
                draw.text((x, y), word, font=f, fill=(30, 30, 30))
                words_drawn.append((word, (wl, wt, wr, wb), line_index))
                x = wr + gap
            line_index += 1
            y += line_h
    # An anchor is a pair of adjacent words on one line that occurs once, so the question has one answer.
    pairs: dict[tuple[str, str], list[int]] = {}
    for i in range(len(words_drawn) - 1):
        pairs.setdefault((words_drawn[i][0], words_drawn[i + 1][0]), []).append(i)
    candidates = [
        idx[0] for (a, b), idx in pairs.items()
        if len(idx) == 1 and idx[0] + 2 < len(words_drawn)
        and words_drawn[idx[0]][2] == words_drawn[idx[0] + 1][2] == words_drawn[idx[0] + 2][2]
    ]
    items = []
    for i in rng.sample(candidates, min(1 if easy else 2, len(candidates))):
        anchor = f"{words_drawn[i][0]} {words_drawn[i + 1][0]}"
        target = words_drawn[i + 2]
        box = words_drawn[i][1][0], words_drawn[i][1][1], target[1][2], target[1][3]
        items.append({
            "question": rng.choice(ANCHOR_FORMS).format(anchor=anchor), "answers": [target[0]], "kind": "page",
            "easy": easy, "evidence": [[round(box[0] / w, 5), round(box[1] / h, 5), round(box[2] / w, 5), round(box[3] / h, 5)]],
        })
    return img, items


SCENES = {"sign": sign_scene, "form": form_scene, "page": page_scene}


def make_scene(kind: str, seed: int, easy: bool = False) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Render scene `kind` ('sign', 'form' or 'page') for `seed`; the same seed gives the same pixels."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene kind {kind!r}; known: {sorted(SCENES)}")
    return SCENES[kind](random.Random(f"{kind}:{seed}"), easy=easy)
