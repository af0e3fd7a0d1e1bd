"""Synthetic fine-grained scenes with evidence boxes, fully determined by a seed.

Three families, all large (3000-4200 px wide) with small text (11-17 px):
- `sign_scene`: a cluttered scene with a few small coloured signs/tags/plates/labels carrying codes;
- `form_scene`: a form-like document with `key: value` fields;
- `page_scene`: a page of dense text, for "which word comes right after ..." questions.
`easy=True` renders the asked-for text large, so it is answerable from the low-res view (the gate's
negatives). Each function returns `(image, items)` where an item is a dict of the dataset contract
(without `id`/`image`): `question`, `answers`, `evidence` (normalized boxes), `kind`.

Every scene function takes an optional second generator, `style`. Without it a scene is exactly what it
always was for its `rng` (tests and the demo pin such scenes by seed). With it, the cosmetic choices that
make a training set varied are drawn from `style`: question wording (more phrasings, colour aliases,
adjectives, an optional "in the top left of the image"), objects, backgrounds, clutter shapes, sign
shapes, form layouts (1-3 columns, boxed/underlined/striped fields, headers and footers), ink colours,
page headings and a larger vocabulary. `make_scene`, which the synthetic data writer uses, always passes
one. Every wording stays one the embedded reader parses (`backends.reader.questions`).
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

# --- the larger vocabularies used with a `style` generator ---------------------------------------------------

#: Objects the reader knows (see `backends.reader.questions.OBJECTS`).
MORE_OBJECTS = OBJECTS + ("board", "sticker", "card", "placard", "badge", "panel", "plaque", "ticket", "marker")
#: `{where}` is empty or a quadrant phrase such as " in the top left of the image"; `{adj}` is "" or "small ".
MORE_QUESTION_FORMS = QUESTION_FORMS + (
    "What is written on the {adj}{colour} {object}{where}?",
    "What does the {adj}{colour} {object}{where} say?",
    "What text is printed on the {adj}{colour} {object}{where}?",
    "Read the {adj}{colour} {object}{where}. What does it say?",
    "What is shown on the {adj}{colour} {object}{where}?",
    "What code is displayed on the {adj}{colour} {object}{where}?",
    "What does the {adj}{colour} {object}{where} read?",
    "Which text appears on the {adj}{colour} {object}{where}?",
    "Can you read the {adj}{colour} {object}{where}?",
    "Tell me what the {adj}{colour} {object}{where} says.",
    "What's written on the {adj}{colour} {object}{where}?",
    "What does it say on the {adj}{colour} {object}{where}?",
)
ADJECTIVES = ("small ", "little ", "tiny ", "distant ")
COLOUR_ALIASES = {"gray": ("grey",), "purple": ("violet",), "pink": ("magenta",)}
WHERE = {
    (0.0, 0.0, 0.5, 0.5): (" in the top left of the image", " in the upper left", " in the top-left corner"),
    (0.5, 0.0, 1.0, 0.5): (" in the top right of the image", " in the upper right", " in the top-right corner"),
    (0.0, 0.5, 0.5, 1.0): (" in the bottom left of the image", " in the lower left", " in the bottom-left corner"),
    (0.5, 0.5, 1.0, 1.0): (" in the bottom right of the image", " in the lower right", " in the bottom-right corner"),
}
MORE_ANCHOR_FORMS = ANCHOR_FORMS + (
    'What is the word right after "{anchor}"?',
    'Which word comes after "{anchor}" on the page?',
    'What is the next word after "{anchor}"?',
    'Read the word that follows "{anchor}".',
    'What word follows the phrase "{anchor}"?',
    'Find the word right after "{anchor}" in the text.',
    'Which word is written after "{anchor}"?',
)
MORE_KEY_FORMS = KEY_FORMS + (
    "What's the {key}?",
    "What is the {key} on this form?",
    "What is the {key} in this document?",
    "Give me the {key}",
    "Find the {key} on the form",
    "Tell me the {key}",
    "What is the {key} on the invoice?",
)
MORE_FORM_KEYS = FORM_KEYS + (
    "Order number", "Invoice date", "Ship date", "Part number", "Model number", "Member ID", "Case number",
    "Permit number", "Container ID", "Voucher code", "Locker number", "Platform", "Vehicle plate",
    "Customer ID", "Delivery date", "Amount paid", "Unit price", "Subtotal", "Claim number", "Patient ID",
)
MORE_WORDS = list(dict.fromkeys(WORDS + (
    "anchor bramble cinder dune falcon fable gravel harness ivory juniper kelp lagoon meteor nutmeg opal "
    "pebble quarry rustic spruce thistle urchin valley walnut yarrow acorn bison clover drizzle ferret "
    "goblet hazel inlet jigsaw kiosk ladder mural nimbus otter pylon quartet rafter satchel tablet "
    "vessel wagon badger cactus dagger engine fossil gadget helmet igloo jacket locket magnet novel"
).split()))
FORM_TITLES = ("Invoice", "Registration", "Shipping Form", "Order", "Receipt", "Application", "Delivery Note",
               "Work Order", "Claim Form", "Statement")
#: Ink colours: dark enough for the reader at 11 px.
INKS = ((25, 25, 25), (20, 30, 90), (70, 20, 20), (45, 45, 55), (10, 60, 40))


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


def _muted(rng: random.Random) -> tuple[int, int, int]:
    # Desaturated, so clutter rarely looks like a sign's saturated paint.
    grey = rng.randrange(90, 180)
    return tuple(int(grey + (rng.randrange(60, 210) - grey) * 0.4) for _ in range(3))


def _clutter(draw: ImageDraw.ImageDraw, rng: random.Random, w: int, h: int, n: int,
             style: random.Random | None = None) -> None:
    # Muted blobs and strokes: visual noise that is not sign-shaped and carries no text.
    for _ in range(n):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(30, 260)
        base = _muted(rng)
        shape = rng.random()
        if style is not None and style.random() < 0.35:
            _extra_shape(draw, style, x, y, r, base)
        elif shape < 0.5:
            draw.ellipse([x, y, x + r, y + int(r * rng.uniform(0.4, 1.2))], fill=base)
        elif shape < 0.8:
            draw.line([x, y, x + rng.randint(-r, r), y + rng.randint(-r, r)], fill=base, width=rng.randint(2, 9))
        else:
            draw.polygon([(x, y), (x + r, y + rng.randint(0, r)), (x + rng.randint(0, r), y + r)], fill=base)


def _extra_shape(draw: ImageDraw.ImageDraw, style: random.Random, x: int, y: int, r: int, fill) -> None:
    """Clutter shapes only drawn with a style generator: boxes, rings, windows, arcs, dots."""
    kind = style.randrange(5)
    if kind == 0:  # a tall box (a wall, a door, a crate): never sign-shaped (taller than wide)
        draw.rectangle([x, y, x + max(8, r // 2), y + r], fill=fill)
    elif kind == 1:
        draw.ellipse([x, y, x + r, y + r], outline=fill, width=style.randint(2, 8))
    elif kind == 2:  # a grid of windows
        step = style.randint(18, 40)
        for i in range(style.randint(2, 5)):
            for j in range(style.randint(2, 5)):
                draw.rectangle([x + i * step, y + j * step, x + i * step + step // 2, y + j * step + step // 2 + 4], fill=fill)
    elif kind == 3:
        draw.arc([x, y, x + r, y + r], style.randint(0, 180), style.randint(181, 360), fill=fill, width=style.randint(2, 6))
    else:
        for _ in range(style.randint(5, 20)):
            dx, dy, s = style.randint(0, r), style.randint(0, r), style.randint(3, 10)
            draw.ellipse([x + dx, y + dy, x + dx + s, y + dy + s], fill=fill)


def _background(draw: ImageDraw.ImageDraw, style: random.Random, w: int, h: int, top, bottom) -> None:
    """Backgrounds drawn with a style generator: a gradient, a horizon, or a banded floor/wall."""
    kind = style.randrange(3)
    horizon = int(h * style.uniform(0.35, 0.65))
    for y in range(0, h, 8):
        t = y / h
        if kind == 1:  # sky then ground, with a hard edge at the horizon
            t = 0.25 * t if y < horizon else 0.75 + 0.25 * t
        rgb = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        if kind == 2 and (y // 64) % 2:  # wide bands, like shelves or floor boards
            rgb = tuple(max(0, c - 12) for c in rgb)
        draw.rectangle([0, y, w, y + 8], fill=rgb)


def _quadrant(box: tuple[float, float, float, float], margin: float = 0.03) -> tuple[float, ...] | None:
    """The AwaRes quadrant holding `box` (normalized) clear of the midlines, or None."""
    x1, y1, x2, y2 = box
    for quad in WHERE:
        qx1, qy1, qx2, qy2 = quad
        if x1 >= qx1 + (margin if qx1 else 0) and x2 <= qx2 - (margin if qx2 < 1 else 0) \
                and y1 >= qy1 + (margin if qy1 else 0) and y2 <= qy2 - (margin if qy2 < 1 else 0):
            return quad
    return None


def _sign_question(rng: random.Random, style: random.Random | None, colour: str, obj: str, box) -> str:
    if style is None:
        return rng.choice(QUESTION_FORMS).format(colour=colour, object=obj)
    form = style.choice(MORE_QUESTION_FORMS)
    named = style.choice(COLOUR_ALIASES[colour]) if colour in COLOUR_ALIASES and style.random() < 0.3 else colour
    adj = style.choice(ADJECTIVES) if style.random() < 0.2 else ""
    quad = _quadrant(box)
    where = style.choice(WHERE[quad]) if quad is not None and style.random() < 0.3 else ""
    return form.format(colour=named, object=obj, adj=adj, where=where)


def sign_scene(rng: random.Random, easy: bool = False, n_signs: int | None = None,
               style: random.Random | None = None) -> tuple[Image.Image, list[dict]]:
    """A cluttered scene with small coloured signs; one question per sign (colours are unique)."""
    w = rng.randrange(3000, 4201)
    h = int(w * rng.uniform(0.62, 0.8))
    top, bottom = _jitter((150, 170, 185), rng, 30), _jitter((110, 120, 100), rng, 30)
    img = Image.new("RGB", (w, h), top)
    draw = ImageDraw.Draw(img)
    if style is None:
        for y in range(0, h, 8):  # a cheap vertical gradient, like sky to ground
            t = y / h
            draw.rectangle([0, y, w, y + 8], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    else:
        _background(draw, style, w, h, top, bottom)
    _clutter(draw, rng, w, h, rng.randint(120, 260), style)
    colours = rng.sample(SIGN_COLOURS, n_signs or rng.randint(3, 5))
    placed: list[tuple[int, int, int, int]] = []
    items = []
    for i, colour in enumerate(colours):
        size = rng.randint(60, 90) if easy and i == 0 else rng.randint(11, 17)
        text = code(rng)
        f = font(size)
        left, t, r, b = draw.textbbox((0, 0), text, font=f)
        pad = max(4, size // 2)
        if style is not None:
            pad = max(4, int(size * style.uniform(0.4, 0.8)))
        bw, bh = r - left + 2 * pad, b - t + 2 * pad
        for _ in range(200):
            x, y = rng.randrange(40, w - bw - 40), rng.randrange(40, h - bh - 40)
            rect = (x - 30, y - 30, x + bw + 30, y + bh + 30)
            if not any(rect[0] < p[2] and p[0] < rect[2] and rect[1] < p[3] and p[1] < rect[3] for p in placed):
                break
        placed.append((x, y, x + bw, y + bh))
        obj = rng.choice(OBJECTS)
        if style is not None:
            obj = style.choice(MORE_OBJECTS)
        fill = _jitter(PALETTE[colour], rng, 8)
        outline, width = _jitter(fill, rng, 30), max(1, size // 8)
        if style is None:
            draw.rectangle([x, y, x + bw, y + bh], fill=fill, outline=outline, width=width)
        else:
            _sign_shape(draw, style, (x, y, x + bw, y + bh), fill, outline, width, pad)
        draw.text((x + pad - left, y + pad - t), text, font=f, fill=_text_colour(colour))
        box = (x / w, y / h, (x + bw) / w, (y + bh) / h)
        question = _sign_question(rng, style, colour, obj, box)
        items.append({
            "question": question, "answers": [text], "kind": "sign", "easy": bool(easy and i == 0),
            "evidence": [[round(x / w, 5), round(y / h, 5), round((x + bw) / w, 5), round((y + bh) / h, 5)]],
        })
    if easy:
        items = items[:1]
    return img, items


def _sign_shape(draw: ImageDraw.ImageDraw, style: random.Random, rect, fill, outline, width: int, pad: int) -> None:
    """A sign's body with a style generator: plain, rounded, a plate with an inner rule, or a post below."""
    kind = style.randrange(4)
    x1, y1, x2, y2 = rect
    if kind == 1:
        draw.rounded_rectangle(rect, radius=max(2, pad // 2), fill=fill, outline=outline, width=width)
        return
    if kind == 3:  # a short post under the sign, inside the 30-px margin kept free around it
        cx = (x1 + x2) // 2
        draw.rectangle([cx - 2, y2, cx + 2, y2 + style.randint(10, 28)], fill=(90, 90, 90))
    draw.rectangle(rect, fill=fill, outline=outline, width=width)
    if kind == 2 and pad >= 6:  # a plate: a thin inner rule inside the padding
        inset = max(2, pad // 3)
        draw.rectangle([x1 + inset, y1 + inset, x2 - inset, y2 - inset], outline=outline, width=1)


def _form_value(rng: random.Random, style: random.Random | None) -> str:
    if style is None or style.random() < 0.85:
        return code(rng) if rng.random() < 0.7 else f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(20, 29)}"
    # An amount, with or without a thousands separator.
    units = style.randint(10, 98000)
    whole = f"{units:,}" if units >= 1000 and style.random() < 0.5 else str(units)
    return f"{whole}.{style.randint(0, 99):02d}"


def form_scene(rng: random.Random, easy: bool = False,
               style: random.Random | None = None) -> tuple[Image.Image, list[dict]]:
    """A form-like document: a large title and `key: value` fields in small text."""
    w = rng.randrange(3000, 4201)
    h = int(w * rng.uniform(0.7, 1.1))
    img = Image.new("RGB", (w, h), _jitter((248, 246, 240), rng, 6))
    draw = ImageDraw.Draw(img)
    titles = ('Invoice', 'Registration', 'Shipping Form', 'Order')
    title = f"{rng.choice(WORDS).title()} {rng.choice(titles if style is None else FORM_TITLES)}"
    title_ink = (30, 30, 60) if style is None else style.choice(INKS)
    draw.text((w * 0.08, h * 0.05), title, font=font(rng.randint(90, 130)), fill=title_ink)
    keys = rng.sample(FORM_KEYS if style is None else MORE_FORM_KEYS, rng.randint(6, 10))
    cols = rng.choice((1, 2))
    ink, field, row_gap = (25, 25, 25), "underline", 0.07
    if style is not None:
        cols = style.choice((1, 2, 2, 3))
        ink, field = style.choice(INKS), style.choice(("underline", "box", "plain", "stripes", "dots"))
        row_gap = style.uniform(0.05, 0.08)
        _form_frame(draw, style, w, h, ink)
    col_w = {1: 0.45, 2: 0.45, 3: 0.29}[cols]
    items = []
    y0 = h * 0.2
    for i, key in enumerate(keys):
        size = rng.randint(60, 80) if easy and i == 0 else rng.randint(11, 17)
        value = _form_value(rng, style)
        col, row = (i % cols, i // cols) if cols > 1 else (0, i)
        x = int(w * (0.08 + col_w * col + rng.uniform(0, 0.05)))
        y = int(y0 + row * h * row_gap + rng.uniform(0, h * 0.02))
        line = f"{key}: {value}"
        f = font(size)
        left, t, r, b = draw.textbbox((x, y), line, font=f)
        if field == "stripes" and row % 2 == 0:  # a light band behind the row, drawn before the text
            draw.rectangle([x - 10, t - 6, x + int(w * (col_w - 0.04)), b + 6], fill=(232, 234, 238))
        draw.text((x, y), line, font=f, fill=ink)
        if field == "underline":
            draw.line([x, b + 6, x + (r - left) + 40, b + 6], fill=(170, 170, 170), width=1)
        elif field == "box":
            # Far enough from the text that the detector does not read the box's edge as a "1" or "|".
            draw.rectangle([x - 2 * size, t - size, r + 3 * size, b + size], outline=(150, 150, 160), width=1)
        elif field == "dots":
            for dx in range(0, r - left + 40, 6):
                draw.point((x + dx, b + 6), fill=(150, 150, 150))
        form = rng.choice(KEY_FORMS if style is None else MORE_KEY_FORMS)  # drawn before the casing, as always
        items.append({
            "question": form.format(key=key.lower() if rng.random() < 0.5 else key),
            "answers": [value], "kind": "form", "easy": bool(easy and i == 0),
            "evidence": [[round(left / w, 5), round(t / h, 5), round(r / w, 5), round(b / h, 5)]],
        })
    return img, items[:1] if easy else rng.sample(items, min(3, len(items)))


def _form_frame(draw: ImageDraw.ImageDraw, style: random.Random, w: int, h: int, ink) -> None:
    """A form's furniture with a style generator: a rule under the title, a header line, a footer, a border.

    None of it has a `key: value` shape, so it never answers a question.
    """
    if style.random() < 0.6:
        draw.line([w * 0.08, h * 0.16, w * 0.92, h * 0.16], fill=ink, width=style.randint(1, 4))
    if style.random() < 0.6:
        header = f"{style.choice(MORE_WORDS).title()} {style.choice(('Ltd', 'Inc', 'GmbH', 'Co'))}  {style.randint(1, 999)} {style.choice(MORE_WORDS).title()} Street"
        draw.text((w * 0.6, h * 0.06), header, font=font(style.randint(14, 22)), fill=(90, 90, 90))
    if style.random() < 0.6:
        footer = f"Page {style.randint(1, 3)} of {style.randint(3, 5)}"
        draw.text((w * 0.45, h * 0.95), footer, font=font(style.randint(12, 18)), fill=(110, 110, 110))
    if style.random() < 0.4:
        m = int(w * 0.03)
        draw.rectangle([m, m, w - m, h - m], outline=(180, 180, 185), width=style.randint(1, 3))


def page_scene(rng: random.Random, easy: bool = False,
               style: random.Random | None = None) -> tuple[Image.Image, list[dict]]:
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
    vocabulary, ink = (WORDS, (30, 30, 30)) if style is None else (MORE_WORDS, style.choice(INKS))
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
        if style is not None and style.random() < 0.5:
            # A one-word heading above the block, in the free margin (a single word makes no anchor pair).
            heading = style.choice(MORE_WORDS).title()
            draw.text((x0, y0 - int(1.7 * line_h)), heading, font=font(int(size * 1.3)), fill=ink)
        y = y0
        for _ in range(block_lines):
            x = x0
            while True:
                word = rng.choice(vocabulary)
                wl, wt, wr, wb = draw.textbbox((x, y), word, font=f)
                if wr > x0 + col_w:
                    break
                draw.text((x, y), word, font=f, fill=ink)
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
        forms = ANCHOR_FORMS if style is None else MORE_ANCHOR_FORMS
        items.append({
            "question": rng.choice(forms).format(anchor=anchor), "answers": [target[0]], "kind": "page",
            "easy": easy, "evidence": [[round(box[0] / w, 5), round(box[1] / h, 5), round(box[2] / w, 5), round(box[3] / h, 5)]],
        })
    return img, items


SCENES = {"sign": sign_scene, "form": form_scene, "page": page_scene}

#: How many questions a scene that needs zoom asks (an easy scene asks one): signs 3-5 (drawn by
#: `scene_size`), forms 3, pages 2 (a page can, rarely, hold fewer unique anchor pairs).
HARD_QUESTIONS = {"sign": (3, 5), "form": (3, 3), "page": (2, 2)}


def scene_size(kind: str, seed: int, easy: bool = False) -> int:
    """How many items `make_scene(kind, seed, easy)` returns, known without rendering it.

    Exact for signs and forms; for pages an upper bound that is almost always met.
    """
    if kind not in SCENES:
        raise ValueError(f"unknown scene kind {kind!r}; known: {sorted(SCENES)}")
    if easy:
        return 1
    low, high = HARD_QUESTIONS[kind]
    return random.Random(f"size:{kind}:{seed}").randint(low, high)


def make_scene(kind: str, seed: int, easy: bool = False) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Render scene `kind` ('sign', 'form' or 'page') for `seed`; the same seed gives the same pixels.

    Scenes made here are styled (varied wording, layouts, clutter; see the module docstring).
    """
    if kind not in SCENES:
        raise ValueError(f"unknown scene kind {kind!r}; known: {sorted(SCENES)}")
    rng, style = random.Random(f"{kind}:{seed}"), random.Random(f"style:{kind}:{seed}")
    if kind == "sign":
        return sign_scene(rng, easy=easy, n_signs=scene_size(kind, seed, easy=False), style=style)
    return SCENES[kind](rng, easy=easy, style=style)
