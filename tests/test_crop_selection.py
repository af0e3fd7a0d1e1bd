"""The vectorized crop selection and box building choose exactly what the plain loops over `Box` chose."""

from __future__ import annotations

import random

import pytest
import torch

from cropper.crop_selection import SEEN_COVERAGE, Decision, select_crops
from cropper.geometry import Box


def reference_select(decision: Decision, k: int, nms_iou: float, mass=None, max_area=None) -> list[Box]:
    """The selection written as the obvious loop over `Box.iou` / `Box.coverage` (the definition)."""
    probs = torch.softmax(torch.tensor(decision.scores), dim=0).tolist() if mass else []
    chosen, area = [], 0.0
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


def random_decision(rng: random.Random, n: int) -> Decision:
    boxes = []
    for _ in range(n):
        if rng.random() < 0.1:  # a degenerate (zero-area) box, or one repeated exactly
            x, y = rng.random(), rng.random()
            boxes.append(Box(x, y, x, min(1.0, y + 0.1)) if rng.random() < 0.5 or not boxes else boxes[-1])
            continue
        x1, y1 = rng.random() * 0.9, rng.random() * 0.9
        boxes.append(Box(x1, y1, min(1.0, x1 + rng.uniform(0.01, 0.6)), min(1.0, y1 + rng.uniform(0.01, 0.6))))
    return Decision(gate=0.5, names=[f"c{i}" for i in range(n)], scores=[rng.gauss(0, 2) for _ in range(n)],
                    boxes=boxes)


@pytest.mark.parametrize("seed", range(40))
def test_select_crops_matches_the_box_by_box_loop(seed):
    rng = random.Random(seed)
    decision = random_decision(rng, rng.choice([1, 5, 40, 120]))
    for k, nms, mass, max_area in [(16, 0.5, None, 0.25), (4, 0.3, 0.6, None), (1, 0.5, None, None),
                                   (30, 0.7, 0.9, 0.5), (8, 0.0, 0.3, 0.1)]:
        assert select_crops(decision, k, nms, mass, max_area) == reference_select(decision, k, nms, mass, max_area)


def test_select_crops_handles_nothing_to_choose():
    assert select_crops(Decision(gate=1.0, names=[], scores=[], boxes=[]), 4, 0.5) == []
    one = Decision(gate=1.0, names=["a"], scores=[0.0], boxes=[Box(0, 0, 0.5, 0.5)])
    assert select_crops(one, 0, 0.5) == []


def test_many_from_lists_matches_from_list():
    rng = random.Random(0)
    rows = [[rng.uniform(-0.3, 1.3) for _ in range(4)] for _ in range(500)] + [[0, 0, 1, 1], [0.2, 0.2, 0.2, 0.2]]
    fast = Box.many_from_lists(rows)
    assert fast == [Box.from_list(r) for r in rows]
    assert all(0.0 <= b.x1 <= b.x2 <= 1.0 and 0.0 <= b.y1 <= b.y2 <= 1.0 for b in fast)
    with pytest.raises(ValueError, match="finite"):
        Box.many_from_lists([[0.1, 0.1, 0.5, 0.5], [0.1, float("nan"), 0.5, 0.5]])


def test_the_split_roi_max_equals_one_roi_pool_call_and_its_gradient():
    from torchvision.ops import roi_pool

    from cropper.policy_heads import _SPLIT_ROIS, _roi_max

    gen = torch.Generator().manual_seed(0)
    fmap = torch.randn(4, 8, 20, 20, generator=gen, requires_grad=True)
    n = _SPLIT_ROIS + 31  # enough to split, and an odd count
    corner = torch.rand(n, 2, generator=gen) * 15
    size = torch.rand(n, 2, generator=gen) * 10
    rois = torch.cat([torch.randint(0, 4, (n, 1), generator=gen).float(), corner, (corner + size).clamp(max=19.9)], 1)
    want = roi_pool(fmap, rois, output_size=1, spatial_scale=1.0)
    got = _roi_max(fmap, rois)
    assert torch.equal(got, want)
    weights = torch.randn(want.shape, generator=gen)
    (grad_want,) = torch.autograd.grad((want * weights).sum(), fmap)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), fmap)
    # The halves' gradients reach the map as two sums instead of one: equal up to float rounding.
    assert torch.allclose(grad_got, grad_want, rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # the helper thread follows the caller's grad mode
        assert not _roi_max(fmap, rois).requires_grad
    with torch.inference_mode():
        assert torch.equal(_roi_max(fmap.detach(), rois), want.detach())
