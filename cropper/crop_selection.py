"""From a policy's ranking to the crops sent: `Decision`, `select_crops` and, for a retry, `more_crops`.

Kept apart from the network (`cropper.policy`) because sweeps, training evaluation and the `policy`
strategy's retry all select from rankings without running the network again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import Box

# A candidate counts as held by a crop (seen, for a retry; covered, for `mass`) when this share of it lies inside.
SEEN_COVERAGE = 0.9


@dataclass
class Decision:
    """What the policy thinks of one (image, question): gate probability and every candidate, best first."""

    gate: float
    names: list[str]
    scores: list[float]
    boxes: list[Box]  # refined (when the policy refines) and clamped


def select_crops(decision: Decision, k: int, nms_iou: float, mass: float | None = None,
                 max_area: float | None = None) -> list[Box]:
    """Best-first crops from a `Decision`: NMS at `nms_iou`, at most `k`, and with `mass` stop once the
    candidates the chosen crops hold (mostly inside one, or suppressed by one) carry that softmax share.
    With `max_area`, a crop that would take the crops' total share of the image past it is skipped (the
    first crop is always kept)."""
    probs = torch.softmax(torch.tensor(decision.scores), dim=0).tolist() if mass else []
    chosen: list[Box] = []
    area = 0.0
    for box in decision.boxes:
        if box.area <= 0 or any(box.iou(c) > nms_iou for c in chosen):
            continue
        if chosen and max_area is not None and area + box.area > max_area:
            continue
        chosen.append(box)
        area += box.area
        if len(chosen) >= k:
            break
        if mass:
            held = sum(p for b, p in zip(decision.boxes, probs, strict=True)
                       if any(c.coverage(b) >= SEEN_COVERAGE or c.iou(b) > nms_iou for c in chosen))
            if held >= mass:
                break
    return chosen


def unseen(decision: Decision, shown: list[Box], nms_iou: float) -> Decision:
    """`decision` without the candidates the `shown` crops already hold (mostly inside one, or overlapping
    one by more than `nms_iou`): what is left to look at, in the same order."""
    keep = [i for i, box in enumerate(decision.boxes)
            if not any(s.coverage(box) >= SEEN_COVERAGE or s.iou(box) > nms_iou for s in shown)]
    return Decision(gate=decision.gate, names=[decision.names[i] for i in keep],
                    scores=[decision.scores[i] for i in keep], boxes=[decision.boxes[i] for i in keep])


def more_crops(decision: Decision, shown: list[Box], k: int, nms_iou: float, mass: float | None = None,
               max_area: float | None = None) -> list[Box]:
    """The next crops after `shown`: `select_crops` over the candidates not seen yet (the gate ignored:
    the caller asks because what was shown did not answer)."""
    return select_crops(unseen(decision, shown, nms_iou), k, nms_iou, mass, max_area)
