"""Dataset items turned into the policy's training examples: tensors and targets, cached per image.

Several questions often share one large image; its low-res view is computed once. Targets:
- gate: 1 when the item needs zoom (from the item's `needs_zoom`, else from the judge's label, else True
  when evidence boxes are given);
- crops: a distribution over the candidates of the item's image (the policy's fixed ones plus those found
  in the image): those covering at least `min_coverage` of every evidence box, weighted toward the
  smallest (cheaper crops that still hold the evidence);
- box: the union of the evidence, padded, that the best candidate's refinement should move towards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cropper.geometry import Box, union_all


@dataclass
class Example:
    """One (image, question) with its policy targets."""

    item_id: str
    image_key: str
    question: str
    answers: list[str]
    needs_zoom: bool
    crop_target: torch.Tensor  # [C], sums to 1 (all zeros when no candidate holds the evidence)
    box_target: torch.Tensor | None  # [4] normalized, or None
    evidence: list[Box]
    candidates: list[Box] | None = None  # the C boxes `crop_target` is over (GRPO asks the target about them)


def crop_distribution(evidence: list[Box], candidates: list[Box], min_coverage: float = 0.9,
                      sharpness: float = 1.0) -> torch.Tensor:
    """Soft target over candidates: covering ones weighted by (smallest area / area) ** sharpness."""
    covering = [i for i, c in enumerate(candidates) if evidence and all(c.coverage(e) >= min_coverage for e in evidence)]
    target = torch.zeros(len(candidates))
    if not covering:
        return target
    smallest = min(candidates[i].area for i in covering)
    for i in covering:
        target[i] = (smallest / candidates[i].area) ** sharpness
    return target / target.sum()


def box_target(evidence: list[Box], pad: float = 0.5, min_side: float = 0.05) -> Box | None:
    """Where a refined crop should go: the evidence union, padded by `pad` of its size, at least `min_side`."""
    union = union_all(evidence)
    if union is None:
        return None
    return union.pad(fraction=pad).min_size(min_side)


def make_examples(items, candidates: list[Box] | Callable[[str], list[Box]] | None,
                  labels: dict[str, bool] | None = None, min_coverage: float = 0.9) -> list[Example]:
    """Examples from dataset items (`training.datasets.Item` or dicts with the same fields).

    `candidates`: the boxes every image shares, or `candidates(image_key)` for per-image ones (e.g.
    `ImageStore.candidates`, the policy's fixed candidates plus those found in each image), or None for
    examples that are only evaluated (no crop targets: an empty `crop_target`).
    """
    out = []
    for item in items:
        get = item.get if isinstance(item, dict) else lambda k, d=None, it=item: getattr(it, k, it.extra.get(k, d))
        evidence = [b if isinstance(b, Box) else Box.from_list(b) for b in (get("evidence") or [])]
        needs = get("needs_zoom", None)
        if needs is None and labels is not None:
            needs = labels.get(str(get("id")))
        if needs is None:
            needs = bool(evidence)
        image = get("image_path", None) or get("image")
        boxes = candidates(str(image)) if callable(candidates) else (candidates or [])
        target = crop_distribution(evidence, boxes, min_coverage) if needs and boxes else torch.zeros(len(boxes))
        bt = box_target(evidence) if needs else None
        out.append(Example(
            item_id=str(get("id")), image_key=str(image), question=str(get("question")),
            answers=list(get("answers")), needs_zoom=bool(needs), crop_target=target,
            box_target=torch.tensor(list(bt)) if bt is not None else None, evidence=evidence,
            candidates=list(boxes),
        ))
    return out
