"""The question forms the embedded reader understands, parsed into a `Query`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .colours import COLOUR_NAMES, canonical

OBJECTS = (
    "sign", "tag", "plate", "label", "board", "sticker", "banner", "card", "note", "placard", "badge",
    "box", "panel", "plaque", "ticket", "marker", "flag", "poster",
)

POSITIONS = {
    "top left": (0.0, 0.0, 0.5, 0.5),
    "upper left": (0.0, 0.0, 0.5, 0.5),
    "top right": (0.5, 0.0, 1.0, 0.5),
    "upper right": (0.5, 0.0, 1.0, 0.5),
    "bottom left": (0.0, 0.5, 0.5, 1.0),
    "lower left": (0.0, 0.5, 0.5, 1.0),
    "bottom right": (0.5, 0.5, 1.0, 1.0),
    "lower right": (0.5, 0.5, 1.0, 1.0),
}

_COLOUR = "|".join(sorted(COLOUR_NAMES, key=len, reverse=True))
_OBJECT = "|".join(OBJECTS)
_POSITION = "|".join(sorted(POSITIONS, key=len, reverse=True)).replace(" ", r"[\s-]+")
_QUOTE = r"[\"'“”‘’«»]"

_COLOUR_OBJECT = re.compile(rf"\b(?P<colour>{_COLOUR})\s+(?:\w+\s+)?(?P<object>{_OBJECT})s?\b", re.I)
_POSITION_RE = re.compile(rf"\b(?P<position>{_POSITION})\b", re.I)
_ANCHOR = re.compile(
    rf"(?:after|follows?|following|next\s+to)\s+(?:the\s+(?:word|phrase|text)\s+)?{_QUOTE}(?P<anchor>[^\"“”‘’«»]+?){_QUOTE}",
    re.I,
)
_KEY = re.compile(r"^\s*(?:what\s+is|what's|what\s+are|give\s+me|find|tell\s+me)\s+(?:the\s+)?(?P<key>[^?]+?)\s*\??\s*$", re.I)
_READ_VERBS = re.compile(r"\b(written|say|says|read|text|printed|shown|displayed|show|shows)\b", re.I)


@dataclass
class Query:
    """What the question asks for.

    kind: `colour_object` (text on a coloured object, optionally in a quadrant), `key_value` (the value
    of a form field), `anchor` (the word right after a quoted anchor) or `generic`.
    """

    kind: str
    text: str
    colour: str | None = None
    object: str | None = None
    position: tuple[float, float, float, float] | None = None
    key: str | None = None
    anchor: str | None = None


def parse_question(question: str) -> Query:
    """Recognise one of the reader's question forms; anything else is `generic`."""
    q = " ".join(question.split())
    anchor = _ANCHOR.search(q)
    if anchor and re.search(r"\bword\b|\bfollow|\bnext\b|\bafter\b", q, re.I):
        return Query("anchor", q, anchor=anchor.group("anchor").strip())
    position = None
    pos = _POSITION_RE.search(q)
    if pos:
        position = POSITIONS[" ".join(pos.group("position").lower().replace("-", " ").split())]
    co = _COLOUR_OBJECT.search(q)
    if co and (_READ_VERBS.search(q) or q.lower().startswith(("what", "read", "which"))):
        return Query("colour_object", q, colour=canonical(co.group("colour")), object=co.group("object").lower(),
                     position=position)
    key = _KEY.match(q)
    if key and not _READ_VERBS.search(key.group("key")):
        name = re.sub(r"\s+(?:on|in|of)\s+(?:the|this)\s+(?:form|document|page|image|invoice|receipt)$", "",
                      key.group("key"), flags=re.I)
        return Query("key_value", q, key=name.strip(" :"))
    return Query("generic", q, position=position)
