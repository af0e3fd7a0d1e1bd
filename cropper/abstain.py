"""Is an answer an abstention ("unknown", "I can't read it")? Used by the `policy` strategy's retry.

A model shown a low-resolution view and the wrong crops says so rather than answering; the strategy then
shows it the next-best crops. Matching is deliberately narrow: a short reply that is only a refusal, or a
sentence saying the text cannot be read or the answer cannot be determined. "Not visible" and "not
clear" are left alone, since they answer yes/no questions ("Is the logo visible?"), and so is a long
reply that mentions a refusal among other things.
"""

from __future__ import annotations

import re

# Whole-answer refusals, after lower-casing and trimming punctuation.
_EXACT = {"", "unknown", "unanswerable", "n/a", "not sure", "unsure", "cannot tell", "can't tell",
          "cannot determine", "can't determine", "i don't know", "i do not know", "unclear", "illegible",
          "unreadable", "not legible", "not readable", "no answer"}

_SEE = r"(?:read|see|tell|determine|make\s+out|identify|find|answer|discern|decipher)"
# Refusal sentences: "I can't read the text on the sign.", "The label is not legible in this image."
_PHRASES = re.compile(
    rf"\b(?:i(?:\s+am|'m)?\s+(?:can(?:no|')t|unable\s+to|not\s+able\s+to|could\s*n[o']t)\s+{_SEE}"
    rf"|(?:cannot|can't|unable\s+to)\s+(?:be\s+)?{_SEE}"
    rf"|(?:not\s+possible|impossible)\s+to\s+{_SEE}"
    r"|(?:is|are)\s+not\s+(?:legible|readable)"
    r"|too\s+(?:small|blurry|blurred|low[-\s]resolution)\s+to\s+(?:read|see|be\s+(?:read|legible|readable))"
    r"|not\s+(?:legible|readable)|illegible|unreadable)\b",
    re.I,
)
_MAX_REFUSAL_WORDS = 30  # a long reply that happens to contain a phrase is an answer with caveats


def is_abstention(text: str | None) -> bool:
    """True when `text` declines to answer (empty, "unknown", "I can't read the label", ...)."""
    cleaned = (text or "").replace("\u2019", "'").strip().strip(" .!\"'`*").lower()
    if cleaned in _EXACT:
        return True
    if len(cleaned.split()) > _MAX_REFUSAL_WORDS:
        return False
    return bool(_PHRASES.search(cleaned))
