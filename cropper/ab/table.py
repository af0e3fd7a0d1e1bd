"""The summary as a plain-text table for the terminal (no dependency; aligns in any monospace font)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_summary", "summary_rows", "COLUMNS"]

#: (header, summary key, format) of each column, shared by the terminal table and the HTML report.
COLUMNS = (
    ("strategy", None, None),
    ("n", "n", "{:d}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("visual tokens", "mean_visual_tokens", "{:,.0f}"),
    ("vs full", "token_ratio_vs_full", "{:.0%}"),
    ("p50 s", "p50_latency_s", "{:.2f}"),
    ("p90 s", "p90_latency_s", "{:.2f}"),
    ("crops", "mean_crops", "{:.1f}"),
    ("evidence hit", "evidence_hit_rate", "{:.0%}"),
    ("$ / 1k q", "cost_per_1000_usd", "{:.2f}"),
    ("errors", "errors", "{:d}"),
)


def _cell(value: Any, fmt: str | None) -> str:
    if value is None:
        return "-"
    return fmt.format(value) if fmt else str(value)


def summary_rows(per_strategy: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One row of formatted cells per strategy, in `COLUMNS` order."""
    return [[name] + [_cell(stats.get(key), fmt) for _, key, fmt in COLUMNS[1:]]
            for name, stats in per_strategy.items()]


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_summary(summary: dict[str, Any]) -> str:
    """The per-strategy table, then the pairwise tests, then the breakdown by group if any."""
    header = [c[0] for c in COLUMNS]
    parts = [_grid(header, summary_rows(summary["strategies"]))]
    pairs = [p for p in summary.get("pairs", {}).values() if p.get("n")]
    if pairs:
        rows = [[f"{p['a']} - {p['b']}", str(p["n"]), f"{p['accuracy_diff']:+.1%}",
                 f"[{p['ci95'][0]:+.1%}, {p['ci95'][1]:+.1%}]", f"{p['mcnemar_p']:.3g}"] for p in pairs]
        parts.append(_grid(["accuracy difference", "n", "diff", "95% CI (bootstrap)", "McNemar p"], rows))
    for group, per_strategy in (summary.get("by_group") or {}).items():
        rows = [[name, _cell(s.get("n"), "{:d}"), _cell(s.get("accuracy"), "{:.1%}"),
                 _cell(s.get("token_ratio_vs_full"), "{:.0%}")] for name, s in per_strategy.items()]
        parts.append(_grid([f"{summary['by']} = {group}", "n", "accuracy", "vs full"], rows))
    return "\n\n".join(parts)
