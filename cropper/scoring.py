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


# --- the public benchmarks' string metrics ---------------------------------------------------------------
# Pure functions with no model behind them, so `cropper compare` can use them without importing `training`
# (whose `judge.score` dispatches to these and adds the MiniLM similarity).

_SPACES = re.compile(r"\s+")


def _refs(answers: list[str] | str) -> list[str]:
    return [answers] if isinstance(answers, str) else [str(a) for a in answers]


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(prediction: str, answers: list[str] | str, threshold: float = 0.5) -> float:
    """ANLS of one prediction, as the DocVQA / ST-VQA evaluation defines it.

    For each reference, NL = Levenshtein(pred, ref) / max(len(pred), len(ref)) after lower-casing,
    stripping and collapsing whitespace (the official script's normalization); the similarity is
    1 - NL when NL < threshold (0.5) and 0 otherwise; the score is the maximum over the references.
    Averaging this over questions gives the benchmark's ANLS.
    """
    pred = _SPACES.sub(" ", str(prediction).strip().lower())
    best = 0.0
    for ref in _refs(answers):
        ref = _SPACES.sub(" ", ref.strip().lower())
        longest = max(len(pred), len(ref))
        if longest == 0:
            continue  # an empty reference scores nothing (and an empty prediction matches nothing)
        nl = levenshtein(pred, ref) / longest
        if nl < threshold:
            best = max(best, 1.0 - nl)
    return best


_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def to_number(text: str) -> float | None:
    """A number from an answer string: `1,234.5`, `$12`, `45%` (-> 0.45, as ChartQA's evaluation reads
    it), a trailing full stop; None when the string is not a single number."""
    s = unicodedata.normalize("NFKC", str(text)).strip().rstrip(".").strip()
    percent = s.endswith("%")
    s = s.rstrip("%").strip().lstrip("$€£").replace(",", "").replace(" ", "")
    if not _NUMBER.match(s):
        return None
    value = float(s)
    return value / 100.0 if percent else value


def relaxed_match(prediction: str, answers: list[str] | str, tolerance: float = 0.05) -> float:
    """ChartQA's relaxed accuracy: numbers within `tolerance` (5%) relative error, anything else exact.

    As in the reference implementation (pix2struct), a non-zero numeric reference accepts a numeric
    prediction within 5% of it; otherwise the strings must match (normalized here, case-insensitive
    there). A zero reference needs a zero prediction (the reference falls back to string equality).
    """
    pred_value = to_number(prediction)
    for ref in _refs(answers):
        ref_value = to_number(ref)
        if ref_value is not None and pred_value is not None:
            if ref_value == 0:
                if pred_value == 0:
                    return 1.0
            elif abs(pred_value - ref_value) / abs(ref_value) <= tolerance:
                return 1.0
        elif exact_match(prediction, [ref]):
            return 1.0
    return 0.0


def vqa_accuracy(prediction: str, answers: list[str] | str) -> float:
    """VQA accuracy (TextVQA, VQAv2): min(1, #annotators who gave the answer / 3), averaged over the
    10 leave-one-out subsets of the references. Answers are compared normalized (`normalize`)."""
    refs = [normalize(a) for a in _refs(answers)]
    pred = normalize(prediction)
    if not pred or not refs:
        return 0.0
    if len(refs) == 1:
        return float(pred == refs[0])
    matches = [r == pred for r in refs]
    total = sum(matches)
    # Leaving out reference i leaves total - matches[i] agreeing annotators.
    return sum(min(1.0, (total - m) / 3.0) for m in matches) / len(refs)
