"""`report.html`: one self-contained page (every image inline as a data URI) that reads offline.

Sections: the summary table, the pairwise tests, accuracy vs visual tokens with the Pareto front, the
latency distribution, accuracy by group (when the run had `by`), and a gallery of items (failures
first) with each strategy's crops drawn on the image and each strategy's answer.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from .plots import accuracy_by_group, accuracy_vs_tokens, colour, latency_distribution
from .table import COLUMNS, summary_rows

__all__ = ["write_report", "render_report", "summary_table_html"]


@cache
def _templates():
    """The report's jinja2 templates (`cropper/ab/templates/`), HTML-escaping every value put in them."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(loader=PackageLoader("cropper.ab", "templates"), autoescape=select_autoescape(["j2"]),
                       undefined=StrictUndefined, trim_blocks=False)


def _data_uri(png_or_jpeg: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png_or_jpeg).decode('ascii')}"


def summary_table_html(summary: dict[str, Any]) -> str:
    """The per-strategy table as an HTML `<table>` (the report's first table; also the notebook repr)."""
    return _templates().get_template("summary_table.html.j2").render(
        columns=[c[0] for c in COLUMNS], rows=summary_rows(summary["strategies"]))


def _gallery_order(rows: Sequence[dict[str, Any]], strategies: Sequence[str]) -> list[tuple[str, list[dict]]]:
    by_item: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_item.setdefault(str(row["id"]), []).append(row)
    def failures(item_rows):
        return sum(1 for r in item_rows if r.get("error") or not r.get("correct"))
    # Failures first (most strategies wrong first), then the dataset's order.
    order = sorted(enumerate(by_item.items()), key=lambda t: (-failures(t[1][1]), t[0]))
    rank = {s: i for i, s in enumerate(strategies)}
    return [(item_id, sorted(item_rows, key=lambda r: rank.get(r["strategy"], 99))) for _, (item_id, item_rows) in order]


def _thumbnail(item_rows: list[dict[str, Any]], side: int = 560) -> str | None:
    from PIL import ImageDraw

    from ..images import load_image

    path = next((r.get("image") for r in item_rows if r.get("image")), None)
    if not path or not os.path.exists(path):
        return None
    try:
        image = load_image(path)
    except Exception:  # the item's own error line already says why
        return None
    image = image.copy()
    image.thumbnail((side, side))
    draw = ImageDraw.Draw(image)
    w, h = image.size
    evidence = next((r.get("evidence") for r in item_rows if r.get("evidence")), None) or []
    for box in evidence:
        x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
        draw.rectangle([x1 - 2, y1 - 2, x2 + 2, y2 + 2], outline="black", width=1)
        draw.rectangle([x1 - 1, y1 - 1, x2 + 1, y2 + 1], outline="white", width=1)
    for row in item_rows:
        if row["strategy"] == "full":
            continue
        for box in row.get("crops") or []:
            draw.rectangle([box[0] * w, box[1] * h, box[2] * w, box[3] * h], outline=colour(row["strategy"]), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82)
    return _data_uri(buffer.getvalue(), "image/jpeg")


def _card(item_id: str, item_rows: list[dict[str, Any]]) -> dict[str, Any]:
    first = item_rows[0]
    lines = []
    for r in item_rows:
        verdict = "error" if r.get("error") else ("right" if r.get("correct") else "wrong")
        lines.append({"strategy": r["strategy"], "colour": colour(r["strategy"]), "verdict": verdict,
                      "answer": str(r["error"] if r.get("error") else r.get("answer")),
                      "tokens": "-" if r.get("visual_tokens") is None else f"{r['visual_tokens']:,}",
                      "crops": len(r.get("crops") or [])})
    return {"id": item_id, "question": str(first.get("question") or ""),
            "answers": " | ".join(first.get("answers") or []), "picture": _thumbnail(item_rows), "lines": lines}


def render_report(summary: dict[str, Any], rows: Sequence[dict[str, Any]], gallery: int = 24,
                  title: str = "cropper compare") -> str:
    """The report page as a string (`templates/report.html.j2`)."""
    strategies = list(summary["strategies"])
    figures = [("Accuracy vs mean visual tokens per question", accuracy_vs_tokens(summary)),
               ("Latency per question", latency_distribution(rows, strategies))]
    if summary.get("by_group"):
        figures.append((f"Accuracy by {summary['by']}", accuracy_by_group(summary)))
    cost_basis = next((s.get("cost_basis") for s in summary["strategies"].values() if s.get("cost_basis")), "-")
    return _templates().get_template("report.html.j2").render(
        title=title, items=summary["items"], model=str(summary.get("model")),
        when=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        settings=[(k, str(v)) for k, v in (summary.get("settings") or {}).items() if v is not None],
        columns=[c[0] for c in COLUMNS], rows=summary_rows(summary["strategies"]), cost_basis=str(cost_basis),
        pairs=[p for p in summary.get("pairs", {}).values() if p.get("n")],
        figures=[{"title": t, "src": _data_uri(png)} for t, png in figures],
        cards=[_card(item_id, item_rows) for item_id, item_rows in _gallery_order(rows, strategies)[:max(0, gallery)]],
        legend=[{"name": s, "colour": colour(s)} for s in strategies if s != "full"])


def write_report(path: str | os.PathLike, summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                 gallery: int = 24) -> Path:
    """Write `render_report(...)` to `path` (atomically) and return the path."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render_report(summary, rows, gallery=gallery), encoding="utf-8")
    os.replace(tmp, path)
    return path
