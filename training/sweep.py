"""How many crops should a policy send? Evidence hits against crop area over selection settings.

    decisions = decide_all(policy, examples)           # the network, once per item
    rows = selection_sweep(policy, examples, decisions=decisions)   # one row per (k, mass, max_area)
    ranking_report(decisions)                          # candidates or ranking: which limits the hits?
    best = pareto_front(rows)                          # settings no other beats on both hits and area
    plot_sweep(rows, "sweep.png")

The network runs once per item (`CropPolicy.decide`); every setting then re-selects crops from the same
ranked candidates with `select_crops`, so the default 112 settings cost about what one evaluation costs. The
settings never enter training, so the sweep picks them for a trained policy after the fact
(`PolicyConfig.k`, `mass`, `max_area`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cropper.geometry import evidence_hit

from .evaluate import image_loader, summarize
from .examples import Example

DEFAULT_KS = (1, 2, 4, 8, 12, 16, 24)
DEFAULT_MASSES = (None, 0.8, 0.9, 0.95)
DEFAULT_MAX_AREAS = (0.1, 0.15, 0.25, None)


def selection_sweep(policy, examples: list[Example], ks: Iterable[int] = DEFAULT_KS,
                    masses: Iterable[float | None] = DEFAULT_MASSES,
                    max_areas: Iterable[float | None] = DEFAULT_MAX_AREAS,
                    load: Callable[[str], Any] | None = None, coverage: float = 0.9,
                    progress: bool = True, decisions: list | None = None) -> list[dict[str, Any]]:
    """One summary row per (k, mass, max_area): evidence hit rate, mean crop area, gate accuracy, crops.

    `decisions`: the output of `decide_all` for these examples, when the caller already has it."""
    from cropper.policy import select_crops

    if decisions is None:
        decisions = decide_all(policy, examples, load, progress)
    config = policy.config
    rows = []
    for k, mass, max_area in itertools.product(ks, masses, max_areas):
        per_item = []
        for e, decision in decisions:
            crop = decision.gate >= config.gate_threshold
            boxes = select_crops(decision, k, config.nms_iou, mass, max_area) if crop else []
            per_item.append({
                "needs_zoom": e.needs_zoom, "gate_right": bool(boxes) == e.needs_zoom,
                "area": sum(b.area for b in boxes), "crops": len(boxes),
                "hit": evidence_hit(boxes, e.evidence, coverage) if e.needs_zoom and e.evidence else None,
            })
        summary = summarize(per_item)
        crops = [r["crops"] for r in per_item if r["needs_zoom"]]
        rows.append({"k": k, "mass": mass, "max_area": max_area,
                     "evidence_hit_rate": summary["evidence_hit_rate"], "mean_crop_area": summary["mean_crop_area"],
                     "gate_accuracy": summary["gate_accuracy"],
                     "mean_crops": sum(crops) / len(crops) if crops else None})
    return rows


def decide_all(policy, examples: list[Example], load: Callable[[str], Any] | None = None,
               progress: bool = True) -> list[tuple[Example, Any]]:
    """`(example, policy.decide(image, question))` for each example: the network's one pass per item."""
    from tqdm.auto import tqdm

    if not examples:
        raise ValueError("the sweep needs at least one example")
    load = load or image_loader()
    return [(e, policy.decide(load(e.image_key), e.question))
            for e in tqdm(examples, desc="decide", unit="item", disable=not progress, leave=False)]


def ranking_report(decisions: list[tuple[Example, Any]], coverage: float = 0.9,
                   tops: Iterable[int] = (1, 4, 16)) -> dict[str, Any]:
    """Is a policy limited by its candidates or by its ranking of them? (Items that need zoom and have evidence.)

    `candidate_recall`: the share of items for which some candidate holds the evidence on its own (every
    evidence box at least `coverage` inside it); `first_covering_within[n]`: the share for which the
    best-ranked such candidate is among the policy's top `n` (the gate is not applied). A high recall with a
    low top-n share says: train the ranking (more data, GRPO), not the proposals. `median_first_covering_rank`
    is 1-based, over the items that have one.
    """
    tops = list(tops)
    ranks: list[int | None] = []
    for e, decision in decisions:
        if not (e.needs_zoom and e.evidence):
            continue
        ranks.append(next((i + 1 for i, box in enumerate(decision.boxes)
                           if evidence_hit([box], e.evidence, coverage)), None))
    found = sorted(r for r in ranks if r is not None)
    n = len(ranks)
    return {
        "items": n,
        "candidate_recall": len(found) / n if n else None,
        "first_covering_within": {t: (sum(r <= t for r in found) / n if n else None) for t in tops},
        "median_first_covering_rank": found[len(found) // 2] if found else None,
    }


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no other row beats on both counts (at least the hits for no more area), by area."""
    usable = [r for r in rows if r["evidence_hit_rate"] is not None and r["mean_crop_area"] is not None]
    front = []
    for r in sorted(usable, key=lambda r: (r["mean_crop_area"], -r["evidence_hit_rate"])):
        if not front or r["evidence_hit_rate"] > front[-1]["evidence_hit_rate"]:
            front.append(r)
    return front


def plot_sweep(rows: list[dict[str, Any]], png: str | Path, title: str = "crop selection sweep") -> Path:
    """Evidence hit rate against mean crop area, one point per setting, the Pareto front joined."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    usable = [r for r in rows if r["evidence_hit_rate"] is not None and r["mean_crop_area"] is not None]
    # Overlapping crops can add up to more than the image; past that no one would send them.
    hidden = sum(r["mean_crop_area"] > 1 for r in usable)
    usable = [r for r in usable if r["mean_crop_area"] <= 1]
    masses = sorted({r["mass"] for r in usable}, key=lambda m: -1 if m is None else m)
    for mass in masses:
        pts = [r for r in usable if r["mass"] == mass]
        ax.scatter([r["mean_crop_area"] for r in pts], [r["evidence_hit_rate"] for r in pts], s=18,
                   label=f"mass {mass}" if mass is not None else "exactly k (no mass)")
    front = pareto_front(usable)
    ax.plot([r["mean_crop_area"] for r in front], [r["evidence_hit_rate"] for r in front], color="black", lw=1,
            label="best hits for the area")
    last = None
    for r in front:
        if last is not None and r["evidence_hit_rate"] - last < 0.03:
            continue  # labels closer than that overlap
        last = r["evidence_hit_rate"]
        ax.annotate(f"k={r['k']}" + (f", ≤{r['max_area']}" if r["max_area"] is not None else ""),
                    (r["mean_crop_area"], r["evidence_hit_rate"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    ax.set_xlabel("mean crop area (share of the image, items that need zoom)"
                  + (f"; {hidden} settings over 1.0 not shown" if hidden else ""))
    ax.set_ylabel("evidence hit rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    return Path(png)
