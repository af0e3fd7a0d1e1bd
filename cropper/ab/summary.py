"""`summary.json` from result rows: per strategy, per pair of strategies, and per group.

Per strategy (over the rows without an error): `n, errors, accuracy, accuracy_ci95 (Wilson),
mean_score, mean_visual_tokens, mean_pixels, token_ratio_vs_full, p50_latency_s, p90_latency_s,
mean_crops, evidence_hit_rate, mean_input_tokens, mean_output_tokens, cost_per_1000_usd, cost_basis`.

`token_ratio_vs_full` is paired: total visual tokens over the items both this strategy and `full`
answered, divided by `full`'s total on the same items. Pairs (`"policy vs full"`: the first minus the
second; a pair with `full` always puts `full` second) give the accuracy difference on the items both
answered, a paired bootstrap 95% interval of it, and McNemar's exact p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from .pricing import Price, cost_per_1000, price_for
from .stats import mcnemar, paired_bootstrap, percentile, wilson_interval

__all__ = ["summarize", "REFERENCE"]

REFERENCE = "full"


def summarize(rows: Sequence[dict[str, Any]], strategies: Sequence[str] | None = None, *, by: str | None = None,
              prices: dict[str, Price] | None = None, model: str | None = None, n_boot: int = 10_000,
              seed: int = 0) -> dict[str, Any]:
    """The summary of a run's result rows (see the module docstring for the fields)."""
    if strategies is None:
        strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    price = price_for(model, prices) if prices else None
    summary: dict[str, Any] = {
        "items": len({str(r["id"]) for r in rows}),
        "model": model,
        "price_usd_per_1m": None if price is None else {"input": price.input, "output": price.output},
        "strategies": _per_strategy(rows, strategies, price),
        "pairs": _pairs(rows, strategies, n_boot, seed),
    }
    if by:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            value = (row.get("fields") or {}).get(by)
            groups.setdefault("(none)" if value is None else str(value), []).append(row)
        summary["by"] = by
        summary["by_group"] = {name: _per_strategy(groups[name], strategies, price) for name in sorted(groups)}
    return summary


def _per_strategy(rows: Sequence[dict[str, Any]], strategies: Sequence[str], price: Price | None) -> dict[str, Any]:
    answered = {s: {str(r["id"]): r for r in rows if r["strategy"] == s and not r.get("error")} for s in strategies}
    out: dict[str, Any] = {}
    for s in strategies:
        mine = list(answered[s].values())
        n = len(mine)
        correct = sum(1 for r in mine if r.get("correct"))
        low, high = wilson_interval(correct, n)
        latencies = [r["latency_s"] for r in mine if r.get("latency_s") is not None]
        hits = [bool(r["evidence_hit"]) for r in mine if r.get("evidence_hit") is not None]
        mean_in, basis = _mean_input_tokens(mine)
        mean_out = _mean([r.get("output_tokens") for r in mine])
        out[s] = {
            "n": n,
            "errors": sum(1 for r in rows if r["strategy"] == s and r.get("error")),
            "accuracy": correct / n if n else None,
            "accuracy_ci95": [low, high] if n else None,
            "mean_score": _mean([r.get("score") for r in mine]),
            "mean_visual_tokens": _mean([r.get("visual_tokens") for r in mine]),
            "mean_pixels": _mean([r.get("pixels") for r in mine]),
            "token_ratio_vs_full": _token_ratio(answered, s),
            "p50_latency_s": percentile(latencies, 50),
            "p90_latency_s": percentile(latencies, 90),
            "mean_crops": _mean([len(r.get("crops") or []) for r in mine]),
            "evidence_hit_rate": sum(hits) / len(hits) if hits else None,
            "mean_input_tokens": mean_in,
            "mean_output_tokens": mean_out,
            "cost_per_1000_usd": cost_per_1000(mean_in, mean_out, price),
            "cost_basis": basis,
        }
    return out


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _mean_input_tokens(rows: Sequence[dict[str, Any]]) -> tuple[float | None, str | None]:
    # Provider usage when every row has it; otherwise the visual tokens, a lower bound on what is billed.
    if rows and all(r.get("input_tokens") is not None for r in rows):
        return _mean([r["input_tokens"] for r in rows]), "usage"
    if rows:
        return _mean([r.get("visual_tokens") for r in rows]), "visual_tokens"
    return None, None


def _token_ratio(answered: dict[str, dict[str, dict]], strategy: str) -> float | None:
    if REFERENCE not in answered:
        return None
    common = answered[strategy].keys() & answered[REFERENCE].keys()
    reference = sum(answered[REFERENCE][i].get("visual_tokens") or 0 for i in common)
    if not common or reference <= 0:
        return None
    return sum(answered[strategy][i].get("visual_tokens") or 0 for i in common) / reference


def _pairs(rows: Sequence[dict[str, Any]], strategies: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    answered = {s: {str(r["id"]): bool(r.get("correct")) for r in rows if r["strategy"] == s and not r.get("error")}
                for s in strategies}
    pairs: dict[str, Any] = {}
    for a, b in combinations(strategies, 2):
        if a == REFERENCE:
            a, b = b, a
        common = sorted(answered[a].keys() & answered[b].keys())
        if not common:
            pairs[f"{a} vs {b}"] = {"a": a, "b": b, "n": 0}
            continue
        xs = [answered[a][i] for i in common]
        ys = [answered[b][i] for i in common]
        diff, low, high = paired_bootstrap(xs, ys, n_boot=n_boot, seed=seed)
        test = mcnemar(xs, ys)
        pairs[f"{a} vs {b}"] = {
            "a": a, "b": b, "n": len(common),
            "accuracy_a": sum(xs) / len(xs), "accuracy_b": sum(ys) / len(ys),
            "accuracy_diff": diff, "ci95": [low, high],
            "mcnemar_p": test["p"], "a_only": test["a_only"], "b_only": test["b_only"],
        }
    return pairs
