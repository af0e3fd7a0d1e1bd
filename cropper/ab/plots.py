"""The report's figures, drawn with matplotlib's object API (no pyplot: the user's backend is left alone).

Each function returns PNG bytes, ready to inline in the HTML report or to save.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

__all__ = ["accuracy_vs_tokens", "latency_distribution", "accuracy_by_group", "pareto_front", "STRATEGY_COLOURS"]

STRATEGY_COLOURS = {"low": "#8c8c8c", "full": "#1f77b4", "policy": "#2ca02c", "tool": "#d62728"}


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def colour(strategy: str) -> str:
    return STRATEGY_COLOURS.get(strategy, "#9467bd")


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats on both cost (x, lower is better) and accuracy (y)."""
    front = []
    for name, x, y in points:
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for _, x2, y2 in points)
        if not dominated:
            front.append(name)
    return front


def accuracy_vs_tokens(summary: dict[str, Any]) -> bytes:
    """Accuracy (95% Wilson interval) against mean visual tokens, one point per strategy, Pareto front drawn."""
    figure = _figure()
    ax = figure.add_subplot()
    points = [(name, s["mean_visual_tokens"], s["accuracy"]) for name, s in summary["strategies"].items()
              if s.get("accuracy") is not None and s.get("mean_visual_tokens") is not None]
    for name, x, y in points:
        low, high = summary["strategies"][name]["accuracy_ci95"]
        ax.errorbar([x], [y], yerr=[[max(0.0, y - low)], [max(0.0, high - y)]], fmt="o", ms=9, capsize=4, color=colour(name), label=name)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(8, 6), fontsize=10)
    front = sorted((p for p in points if p[0] in pareto_front(points)), key=lambda p: p[1])
    if len(front) > 1:
        ax.step([p[1] for p in front], [p[2] for p in front], where="post", color="black", alpha=0.35, lw=1.5,
                ls="--", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("mean visual tokens per question (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy vs visual tokens (up and left is better)")
    if points:
        ax.legend(loc="lower right", fontsize=9)
    return _png(figure)


def latency_distribution(rows: Sequence[dict[str, Any]], strategies: Sequence[str]) -> bytes:
    """Per-strategy latency per question: box plots with the individual answers jittered over them."""
    import numpy as np

    figure = _figure()
    ax = figure.add_subplot()
    data = [[r["latency_s"] for r in rows if r["strategy"] == s and r.get("latency_s") is not None] for s in strategies]
    shown = [(s, d) for s, d in zip(strategies, data, strict=True) if d]
    if shown:
        ax.boxplot([d for _, d in shown], showfliers=False, widths=0.5)
        ax.set_xticks(range(1, len(shown) + 1), [s for s, _ in shown])
        rng = np.random.default_rng(0)
        for i, (name, values) in enumerate(shown, 1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=10, alpha=0.5, color=colour(name))
    ax.set_ylabel("seconds per question")
    ax.set_title("Latency per question")
    ax.grid(axis="y", alpha=0.3)
    return _png(figure)


def accuracy_by_group(summary: dict[str, Any]) -> bytes:
    """Grouped bars: accuracy per group (the `by` field) and strategy."""
    groups = summary.get("by_group") or {}
    names = list(summary["strategies"])
    figure = _figure(max(6.4, 1.2 * len(groups) + 2), 4.0)
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        values = [groups[g].get(name, {}).get("accuracy") or 0.0 for g in groups]
        ax.bar([i + j * width for i in range(len(groups))], values, width, label=name, color=colour(name))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], list(groups))
    ax.set_ylim(0, 1.25)  # headroom so the legend row never covers a bar
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy by {summary.get('by')}")
    ax.legend(fontsize=9, loc="upper center", ncol=max(1, len(names)), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(figure)
