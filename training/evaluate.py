"""How good a cropper is on labelled items: evidence hits, crop area, the gate, and (with a target) accuracy.

    report = evaluate_cropper(policy, examples, target=load_backend("reader"))
    report["summary"]   # {"evidence_hit_rate": ..., "mean_crop_area": ..., "gate_accuracy": ..., "accuracy": ...}

Any object with `propose(image, question)` can be measured (a `CropPolicy`, `TextRegionCropper`, a grid),
so a trained policy and its baselines are judged by one function, on the same items, with the same reward
the policy was trained on (`training.rewards.total_reward`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cropper.geometry import Box, evidence_hit
from cropper.images import load_image

from .examples import Example
from .judge import score as answer_score
from .rewards import CostWeights, CropCompletion, total_reward


def image_loader(max_cached: int = 64) -> Callable[[str], Any]:
    """`load(path)` with a small bounded cache: several questions usually share one large image.

    Safe to call from several threads (the training prefetch does).
    """
    import threading

    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def load(key: str):
        with lock:
            if key in cache:
                return cache[key]
        image = load_image(key)  # outside the lock: decoding is the slow part
        with lock:
            while len(cache) >= max_cached:
                cache.pop(next(iter(cache)))
            cache[key] = image
        return image

    return load


def evaluate_cropper(cropper, examples: list[Example], target=None, *, full: bool = False, coverage: float = 0.9,
                     weights: CostWeights | None = None, global_side: int = 1024, progress: bool = True,
                     desc: str = "evaluate", load: Callable[[str], Any] | None = None,
                     groups: dict[str, str] | None = None) -> dict[str, Any]:
    """Measure `cropper` on `examples`; with `target` (a backend) also ask it and score the answers.

    Per item: the proposed boxes, whether the gate was right (crops proposed iff the item needs zoom),
    evidence hit (items that need zoom and have evidence), crop area. With `target`: the answer to the
    global view + those crops (the `policy` strategy; `low` when no crop), its score, visual tokens and the
    training reward; with `full=True` also the plain model's answer on the original image, for the ratio.
    `groups` maps item ids to a group name (e.g. the item's `kind`): the summary then also holds
    `by_group`, one summary per group. Returns `{"summary": {...}, "rows": [...]}`.
    """
    from tqdm.auto import tqdm

    load = load or image_loader()
    weights = weights or CostWeights()
    wrapper = None
    if target is not None:
        from cropper.wrapper import ZoomWrapper

        wrapper = ZoomWrapper(target, strategy="policy", global_side=global_side)
    rows = []
    for e in tqdm(examples, desc=desc, unit="item", disable=not progress, leave=False):
        image = load(e.image_key)
        boxes = list(cropper.propose(image, e.question))
        row: dict[str, Any] = {
            "id": e.item_id, "needs_zoom": e.needs_zoom, "crops": [b.to_list() for b in boxes],
            "gate_right": bool(boxes) == e.needs_zoom,
            "area": sum(b.area for b in boxes),
            "hit": evidence_hit(boxes, e.evidence, coverage) if e.needs_zoom and e.evidence else None,
        }
        if groups is not None:
            row["group"] = groups.get(e.item_id)
        if wrapper is not None:
            row.update(_ask(wrapper, image, e, boxes, weights, full))
        rows.append(row)
    summary = summarize(rows)
    if groups is not None:
        names = sorted({str(r["group"]) for r in rows})
        summary["by_group"] = {n: summarize([r for r in rows if str(r["group"]) == n]) for n in names}
    return {"summary": summary, "rows": rows}


def _ask(wrapper, image, e: Example, boxes: list[Box], weights: CostWeights, full: bool) -> dict[str, Any]:
    from cropper.strategies import run_strategy

    from .rollout import FixedCropper

    backend = wrapper.backend
    token_model = wrapper.token_model_for(backend)
    answer = run_strategy("policy" if boxes else "low", backend, token_model, image, e.question, wrapper.config,
                          cropper=FixedCropper(boxes))
    crop_tokens = sum(token_model.count(w, h) for w, h in answer.view_sizes[1:])
    completion = CropCompletion(answer.text, crop_tokens, token_model.count(image.width, image.height), len(boxes))
    out = {"answer": answer.text, "score": answer_score(answer.text, e.answers),
           "visual_tokens": answer.visual_tokens, "crop_cost": crop_tokens / max(1, completion.full_tokens),
           "reward": total_reward([completion], [e.answers], [e.needs_zoom], weights=weights)[0]}
    if full:
        plain = run_strategy("full", backend, token_model, image, e.question, wrapper.config)
        out.update(full_answer=plain.text, full_score=answer_score(plain.text, e.answers),
                   full_visual_tokens=plain.visual_tokens)
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the rows of `evaluate_cropper` (None where no row has the field)."""
    def mean(key: str, where=lambda r: True):
        values = [float(r[key]) for r in rows if where(r) and r.get(key) is not None]
        return sum(values) / len(values) if values else None

    zoom = lambda r: r["needs_zoom"]  # noqa: E731
    summary = {
        "items": len(rows),
        "needs_zoom": sum(1 for r in rows if r["needs_zoom"]),
        "gate_accuracy": mean("gate_right"),
        "evidence_hit_rate": mean("hit"),
        "mean_crop_area": mean("area", zoom),
        "accuracy": mean("score"),
        "mean_reward": mean("reward"),
        "mean_crop_cost": mean("crop_cost"),
        "mean_visual_tokens": mean("visual_tokens"),
        "full_accuracy": mean("full_score"),
        "full_mean_visual_tokens": mean("full_visual_tokens"),
    }
    if summary["mean_visual_tokens"] and summary["full_mean_visual_tokens"]:
        summary["token_ratio_vs_full"] = summary["mean_visual_tokens"] / summary["full_mean_visual_tokens"]
    return summary
