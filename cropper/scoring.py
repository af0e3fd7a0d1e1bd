"""Answer scoring shared by the demo, evaluation and (later) rewards: one function, one truth."""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w]+", re.UNICODE)


def normalize(text: str) -> str:
    """Case-, accent-, space- and punctuation-insensitive form: OCR spacing must not decide correctness."""
    text = unicodedata.normalize("NFKC", str(text)).lower().strip()
    return _PUNCT.sub("", text)


def exact_match(prediction: str, answers: list[str] | str) -> float:
    """1.0 when the normalized prediction equals any normalized reference answer, else 0.0."""
    refs = [answers] if isinstance(answers, str) else list(answers)
    pred = normalize(prediction)
    return float(bool(pred) and any(pred == normalize(a) for a in refs))
