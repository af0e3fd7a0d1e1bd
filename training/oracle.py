"""The oracle: evidence boxes for items that have none, and the crops of a crop set that show them.

Evidence comes from, in order:
1. `ground_answer`: OCR the full-resolution image with the embedded reader's detector/recognizer and find
   where the answer is written (tolerant of OCR spacing, case and small misreads; narrowed to the answer's
   characters within a longer line; preferring the occurrence preceded by words of the question, such as
   a form key or a quoted anchor);
2. `ask_grounding`: ask a grounding-capable backend for `[x1, y1, x2, y2]` and parse whichever coordinate
   convention it answered in.

`target_crops` / `best_crop` / `crop_labels` then map evidence to the candidate crops (policy targets).
`fill_evidence` runs 1 then 2 over a dataset, appending each result to a cache file as it goes, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from cropper.box_parsing import CONVENTIONS, parse_boxes  # noqa: F401  (re-exported: the oracle's API)
from cropper.geometry import Box
from cropper.scoring import normalize

# --- (a) OCR grounding of the answer -------------------------------------------------------------------------


def ground_answer(image: Image.Image, answers: str | Sequence[str], question: str | None = None, *,
                  min_ratio: float = 0.8, pad: float = 0.75, engine: Any = None,
                  lines: Sequence[Any] | None = None) -> list[Box]:
    """Normalized boxes around where one of `answers` is written in `image` (read at full resolution).

    Matching is on `cropper.scoring.normalize`d text (case, spaces and punctuation ignored): a line
    containing the answer matches exactly; otherwise the best window of about the answer's length must
    reach a difflib ratio of `min_ratio`. Inside a longer line the box is narrowed to the matched
    characters in proportion to their position in the line's text. When `question` is given, the text
    right before the answer that also occurs in the question (a form key, a quoted anchor) is kept in the
    box and ranks that occurrence first, so "the word after X" picks the right copy of a common word.
    All occurrences that rank equally best are returned; none: `[]`.

    `pad` grows each box by that many text-line heights on every side: evidence includes the
    surroundings needed to answer (a sign's colour around its code). `lines` reuses an earlier reading
    (`TextLine`s in this image's pixels); otherwise `engine` (default: the reader's shared engine) reads.
    """
    refs = [answers] if isinstance(answers, str) else list(answers)
    targets = [t for t in dict.fromkeys(_norm_map(a)[0] for a in refs) if t]
    if not targets:
        return []
    if lines is None:
        if engine is None:
            from backends.reader.ocr import shared_engine

            engine = shared_engine()
        lines = engine.read(image.convert("RGB"))
    q_norm = _norm_map(question)[0] if question else ""
    found: list[tuple[float, Box]] = []
    width, height = image.size
    for line in lines:
        text = str(getattr(line, "text", ""))
        norm, index = _norm_map(text)
        if not norm:
            continue
        for target in targets:
            for ratio, start, end in _find(norm, target, min_ratio):
                start, bonus = _extend_with_context(norm, start, q_norm, target)
                raw_start, raw_end = index[start], index[end - 1] + 1
                box = _span_box(line.box, len(text), raw_start, raw_end, pad, width, height)
                if box is not None:
                    found.append((ratio + bonus, box))
    if not found:
        return []
    best = max(score for score, _ in found)
    out: list[Box] = []
    for score, box in sorted(found, key=lambda sb: (-sb[0], sb[1].y1, sb[1].x1)):
        if score >= best - 1e-9 and not any(box.iou(o) > 0.5 for o in out):
            out.append(box)
    return out


def _norm_map(text: str | None) -> tuple[str, list[int]]:
    """`normalize(text)` built character by character, with the index in `text` of each kept character."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text or ""):
        for c in normalize(ch):
            chars.append(c)
            index.append(i)
    return "".join(chars), index


def _find(norm: str, target: str, min_ratio: float) -> list[tuple[float, int, int]]:
    """Occurrences of `target` in `norm` as (ratio, start, end): every exact one, else the best near miss."""
    exact, at = [], norm.find(target)
    while at >= 0:
        exact.append((1.0, at, at + len(target)))
        at = norm.find(target, at + 1)
    if exact or min_ratio >= 1.0:
        return exact
    n = len(target)
    if len(norm) < math.ceil(min_ratio * n / (2 - min_ratio)):  # too short to reach min_ratio at all
        return []
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(target)  # SequenceMatcher caches facts about seq2: vary seq1
    best = (0.0, 0, 0)
    for size in sorted({max(1, n - 1), n, n + 1}):
        for start in range(0, max(1, len(norm) - size + 1)):
            window = norm[start : start + size]
            matcher.set_seq1(window)
            if matcher.real_quick_ratio() < max(min_ratio, best[0]) or matcher.quick_ratio() < max(min_ratio, best[0]):
                continue
            ratio = matcher.ratio()
            if ratio > best[0]:
                best = (ratio, start, start + len(window))
    return [best] if best[0] >= min_ratio else []


def _extend_with_context(norm: str, start: int, question: str, target: str) -> tuple[int, float]:
    """Extend a match back over the text just before it that also occurs in the question.

    Returns the new start and a bonus in 0..1 (1 for 8+ shared characters): a form key before its value
    or a quoted anchor before the asked-for word. The answer's own characters are excluded from the
    question first, so an answer quoted in the question does not count as context for itself.
    """
    if not question or start == 0:
        return start, 0.0
    q = question.replace(target, " ")
    length = 0
    while length < start and norm[start - length - 1 : start] in q:
        length += 1
    if length < 3:  # a couple of shared letters is chance, not context
        return start, 0.0
    return start - length, min(1.0, length / 8)


def _span_box(px: Sequence[float], n_chars: int, start: int, end: int, pad: float,
              width: int, height: int) -> Box | None:
    left, top, right, bottom = (float(v) for v in px)
    if n_chars <= 0 or right <= left or bottom <= top:
        return None
    x1 = left + (right - left) * start / n_chars
    x2 = left + (right - left) * end / n_chars
    grow = pad * (bottom - top)
    return Box.from_pixels(x1 - grow, top - grow, x2 + grow, bottom + grow, width, height)


# --- (b) asking a grounding-capable backend --------------------------------------------------------------

GROUNDING_PROMPT = (
    "Question: {question}\n"
    "Find the region of the image that holds the information needed to answer the question. "
    "Reply with its bounding box as [x1, y1, x2, y2] in coordinates normalized to 0-1000 "
    "((0, 0) is the top-left corner and (1000, 1000) the bottom-right corner of the image). "
    "If several separate regions are needed, give one box per region. Reply with the box(es) only."
)

def ask_grounding(backend: Any, image: Image.Image, question: str, *, prompt: str = GROUNDING_PROMPT,
                  convention: str = "auto", pixel_size: tuple[int, int] | None = None,
                  **options: Any) -> list[Box]:
    """Ask `backend` (any `generate(messages) -> Reply`) where the evidence for `question` is; [] if no box.

    The original image is sent as it is (the backend applies its own resizing); `options` go to
    `generate`. See `parse_boxes` for the conventions understood and how `auto` chooses.
    """
    from backends.messages import ImagePart, Message, TextPart

    message = Message("user", [ImagePart(image), TextPart(prompt.format(question=question))])
    reply = backend.generate([message], **options)
    return parse_boxes(reply.text or "", image.width, image.height, convention=convention, pixel_size=pixel_size)


# --- (c) evidence -> target crops ------------------------------------------------------------------------


def evidence_coverage(crop: Box, evidence: Sequence[Box]) -> float:
    """The share of the evidence (all boxes, by area) inside `crop`; a zero-area box counts by its centre."""
    total = inside = 0.0
    for box in evidence:
        if box.area > 0:
            total += box.area
            inside += crop.intersection(box)
        else:
            total += 1e-12
            inside += 1e-12 * crop.contains_point(*box.center)
    return inside / total if total > 0 else 0.0


def target_crops(evidence: Sequence[Box], crops: Mapping[str, Box], min_coverage: float = 0.9) -> list[str]:
    """Names of the crops covering at least `min_coverage` of the evidence, smallest area first.

    Ties go to the higher coverage, then the name. No evidence: `[]` (nothing to look at).
    """
    evidence = _boxes(evidence)
    if not evidence:
        return []
    scored = [(box.area, -evidence_coverage(box, evidence), name) for name, box in crops.items()]
    return [name for _, neg_cov, name in sorted(scored) if -neg_cov >= min_coverage]


def best_crop(evidence: Sequence[Box], crops: Mapping[str, Box], min_coverage: float = 0.9,
              fallback: bool = False) -> str | None:
    """The smallest crop covering the evidence; None when none does (or, with `fallback`, the crop that
    covers the most of it, smallest first among equals; None only without evidence)."""
    names = target_crops(evidence, crops, min_coverage)
    if names:
        return names[0]
    evidence = _boxes(evidence)
    if not fallback or not evidence or not crops:
        return None
    return min(crops, key=lambda name: (-evidence_coverage(crops[name], evidence), crops[name].area, name))


def crop_labels(evidence: Sequence[Box], crops: Mapping[str, Box], min_coverage: float = 0.9) -> dict[str, float]:
    """Soft SFT targets over the crop set: for each crop, how good a choice it is (0..1).

    A covering crop scores `smallest covering area / its area` (the smallest scores 1, one twice as
    large 0.5): every covering crop answers, the small ones at a lower token cost. When no crop covers
    the evidence (it spans several), the crops covering the most of it score that coverage times the
    same area factor, so the policy still learns the best partial view. Without evidence all are 0.
    """
    labels = {name: 0.0 for name in crops}
    evidence = _boxes(evidence)
    if not evidence or not crops:
        return labels
    cover = {name: evidence_coverage(box, evidence) for name, box in crops.items()}
    chosen = [name for name in crops if cover[name] >= min_coverage]
    weight = dict.fromkeys(chosen, 1.0)
    if not chosen:
        top = max(cover.values())
        if top <= 0:
            return labels
        chosen = [name for name in crops if cover[name] >= top - 1e-9]
        weight = {name: cover[name] for name in chosen}
    smallest = min(crops[name].area for name in chosen)
    for name in chosen:
        area = crops[name].area
        labels[name] = weight[name] * (smallest / area if area > 0 else 1.0)
    return labels


def _boxes(evidence: Iterable[Box | Sequence[float]]) -> list[Box]:
    return [b if isinstance(b, Box) else Box.from_list(b) for b in evidence or []]


# --- filling a dataset ---------------------------------------------------------------------------------


def fill_evidence(items: Iterable[Mapping[str, Any]], root: str | os.PathLike = ".", *, backend: Any = None,
                  cache: str | os.PathLike | None = None, progress: bool = True, min_ratio: float = 0.8,
                  engine: Any = None, **grounding: Any) -> list[dict[str, Any]]:
    """Copies of `items` with `evidence` filled where missing or empty, and `evidence_source` saying how.

    For each such item: OCR grounding of its answers (`ground_answer`), then, if that finds nothing and a
    `backend` is given, `ask_grounding` (`grounding` keywords go to it). `evidence_source` is `given`,
    `ocr`, `grounding` or `none` (found nowhere: `evidence` is then `[]`). Images are `item["image"]`:
    a PIL image, or a path (relative ones against `root`, the dataset file's folder).

    `cache` (a JSONL file) makes the run resumable: each result is appended and flushed as it is found,
    and a rerun takes results from it instead of redoing them (a `none` found without a backend is
    retried when one is given). Backend errors propagate; what was done before is in the cache.
    """
    items = list(items)
    done = _load_cache(cache)
    out: list[dict[str, Any]] = []
    current: tuple[Any, Image.Image] | None = None  # items sharing an image are usually adjacent
    from tqdm.auto import tqdm

    fh = open(cache, "a", encoding="utf-8") if cache else None  # noqa: SIM115 - closed in finally
    try:
        for item in tqdm(items, desc="oracle", unit="item", disable=not progress):
            new = dict(item)
            if item.get("evidence"):
                new.setdefault("evidence_source", "given")
                out.append(new)
                continue
            key = _item_key(item)
            hit = done.get(key)
            if hit is not None and not (hit["source"] == "none" and backend is not None and not hit.get("asked")):
                new["evidence"], new["evidence_source"] = hit["evidence"], hit["source"]
                out.append(new)
                continue
            ref = item.get("image")
            if current is None or not _same_image(current[0], ref):
                current = (ref, _load_image(ref, root))
            image = current[1]
            boxes = ground_answer(image, item.get("answers") or [], item.get("question"), min_ratio=min_ratio,
                                  engine=engine)
            source = "ocr" if boxes else "none"
            if not boxes and backend is not None:
                boxes = ask_grounding(backend, image, str(item.get("question", "")), **grounding)
                source = "grounding" if boxes else "none"
            record = {"key": key, "evidence": [b.to_list(5) for b in boxes], "source": source,
                      "asked": backend is not None}
            if fh is not None:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
            done[key] = record
            new["evidence"], new["evidence_source"] = record["evidence"], source
            out.append(new)
    finally:
        if fh is not None:
            fh.close()
    return out


def _item_key(item: Mapping[str, Any]) -> str:
    image = item.get("image")
    ref = image if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>"
    blob = json.dumps([item.get("id"), str(ref), item.get("question"), item.get("answers")], sort_keys=True,
                      default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()


def _load_cache(cache: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not cache or not Path(cache).exists():
        return done
    with open(cache, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
                done[record["key"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by an interruption: that item is simply redone
    return done


def _same_image(a: Any, b: Any) -> bool:
    if isinstance(a, Image.Image) or isinstance(b, Image.Image):
        return a is b  # never compare pixels
    return a == b


def _load_image(ref: Any, root: str | os.PathLike) -> Image.Image:
    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    if ref is None:
        raise ValueError("item has no image")
    path = Path(ref)
    if not path.is_absolute():
        path = Path(root) / path
    with Image.open(path) as im:
        return im.convert("RGB")
