"""Is an answer an abstention ("unknown", "I can't read it")? Used by the `policy` strategy's retry.

A model shown a low-resolution view and the wrong crops says so rather than answering; the strategy then
shows it the next-best crops. Matching is deliberately narrow: a short reply that is only a refusal
phrase, so that a real answer that mentions one ("Unknown Pleasures", "the sign says not visible
here") is left alone, at worst costing a retry it did not need.
"""

from __future__ import annotations

import re

# Whole-answer refusals, after lower-casing and trimming punctuation.
_EXACT = {"", "unknown", "unanswerable", "n/a", "na", "not sure", "unsure", "cannot tell", "can't tell",
          "i don't know", "i do not know", "unclear", "illegible", "unreadable", "not visible", "not legible",
          "none visible", "no answer"}

# Refusal sentences: "I can't read the text on the sign.", "The label is not legible in this image."
_PHRASES = re.compile(
    r"\b(?:i\s+(?:can(?:no|')t|am\s+unable\s+to|'m\s+unable\s+to|could\s*n[o']t)\s+"
    r"(?:read|see|tell|determine|make\s+out|identify|find|answer)"
    r"|(?:is|are)\s+not\s+(?:legible|readable|visible|clear)"
    r"|too\s+(?:small|blurry|blurred|low[-\s]resolution)\s+to\s+(?:read|see|be\s+(?:read|legible|readable))"
    r"|not\s+(?:legible|readable)"
    r"|(?:illegible|unreadable)"
    r"|unable\s+to\s+(?:read|see|determine|make\s+out)"
    r"|(?:cannot|can't)\s+be\s+(?:read|determined|made\s+out|seen))\b",
    re.I,
)
_MAX_REFUSAL_WORDS = 30  # a long reply that happens to contain a phrase is an answer with caveats


def is_abstention(text: str | None) -> bool:
    """True when `text` declines to answer (empty, "unknown", "I can't read the label", ...)."""
    cleaned = (text or "").strip().strip(" .!\"'`*").lower()
    if cleaned in _EXACT:
        return True
    if len(cleaned.split()) > _MAX_REFUSAL_WORDS:
        return False
    return bool(_PHRASES.search(cleaned))
