"""From a policy's ranking to the crops sent: `Decision`, `select_crops` and, for a retry, `more_crops`.

Kept apart from the network (`cropper.policy`) because sweeps, training evaluation and the `policy`
strategy's retry all select from rankings without running the network again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
    boxes = decision.boxes
    if not boxes or k <= 0:
        return []
    # One vectorized pass for every pair instead of Box.iou in a Python loop (~10 ms of a ~50 ms query):
    # the same float64 operations in the same order as `Box`, so the choices are identical.
    iou, coverage, areas = _pairwise(boxes)
    probs = torch.softmax(torch.tensor(decision.scores), dim=0).tolist() if mass else None
    # What the chosen crops suppress, kept up to date as they are chosen: a candidate is then skipped in
    # O(1) rather than by a pass over the chosen ones (the loop often walks every candidate, ~110).
    suppressed = np.zeros(len(boxes), dtype=bool)
    held = np.zeros(len(boxes), dtype=bool)
    chosen: list[int] = []
    area = 0.0
    for i, box_area in enumerate(areas.tolist()):
        if box_area <= 0 or suppressed[i]:
            continue
        if chosen and max_area is not None and area + box_area > max_area:
            continue
        chosen.append(i)
        area += box_area
        if len(chosen) >= k:
            break
        suppressed |= iou[:, i] > nms_iou
        if probs is not None:
            held |= (coverage[i] >= SEEN_COVERAGE) | (iou[i] > nms_iou)
            if sum(p for p, h in zip(probs, held.tolist(), strict=True) if h) >= mass:
                break
    return [boxes[i] for i in chosen]


def _pairwise(boxes: list[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, N] `boxes[i].iou(boxes[j])` and `boxes[i].coverage(boxes[j])`, and [N] `boxes[i].area`, computed
    as `Box` computes them."""
    xy = np.array([(b.x1, b.y1, b.x2, b.y2) for b in boxes], dtype=np.float64)
    x1, y1, x2, y2 = (xy[:, j] for j in range(4))
    w = np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :])
    h = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    inter = np.maximum(0.0, w) * np.maximum(0.0, h)
    area = (x2 - x1) * (y2 - y1)
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        inside = ((x1[:, None] <= cx[None, :]) & (cx[None, :] <= x2[:, None])
                  & (y1[:, None] <= cy[None, :]) & (cy[None, :] <= y2[:, None]))
        coverage = np.where(area[None, :] > 0, inter / area[None, :], inside.astype(np.float64))
    return iou, coverage, area


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
