"""`report.html`: one self-contained page (every image inline as a data URI) that reads offline.

Sections: the summary table, the pairwise tests, accuracy vs visual tokens with the Pareto front, the
latency distribution, accuracy by group (when the run had `by`), and a gallery of items (failures
first) with each strategy's crops drawn on the image and each strategy's answer.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .plots import accuracy_by_group, accuracy_vs_tokens, colour, latency_distribution
from .table import COLUMNS, summary_rows

__all__ = ["write_report", "render_report", "summary_table_html"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} th,td{padding:.3em .7em;border-bottom:1px solid #e5e5e5;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f5f5f5}
figure{display:inline-block;margin:.5em 1em .5em 0} figure img{max-width:100%;border:1px solid #eee}
.meta{color:#666;font-size:.9em} .card{border:1px solid #ddd;border-radius:6px;padding:.8em;margin:1em 0;display:flex;gap:1em;flex-wrap:wrap}
.card img{max-width:560px;height:auto} .ok{color:#1a7f37;font-weight:bold} .bad{color:#cf222e;font-weight:bold}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:.3em;vertical-align:middle}
code{background:#f5f5f5;padding:0 .2em}
"""


def _data_uri(png_or_jpeg: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png_or_jpeg).decode('ascii')}"


def _figure(title: str, png: bytes) -> str:
    return (f'<figure><img alt="{html.escape(title)}" src="{_data_uri(png)}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


def summary_table_html(summary: dict[str, Any]) -> str:
    """The per-strategy table as an HTML `<table>` (the report's first table; also the notebook repr)."""
    head = "".join(f"<th>{html.escape(c[0])}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in summary_rows(summary["strategies"])
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pairs_html(summary: dict[str, Any]) -> str:
    pairs = [p for p in summary.get("pairs", {}).values() if p.get("n")]
    if not pairs:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(p['a'])} &minus; {html.escape(p['b'])}</td><td>{p['n']}</td>"
        f"<td>{p['accuracy_diff']:+.1%}</td><td>[{p['ci95'][0]:+.1%}, {p['ci95'][1]:+.1%}]</td>"
        f"<td>{p['a_only']} / {p['b_only']}</td><td>{p['mcnemar_p']:.3g}</td></tr>"
        for p in pairs
    )
    return ("<h2>Is the difference real?</h2><p class=meta>Paired over the items both strategies answered: "
            "bootstrap 95% interval of the accuracy difference (10,000 resamples of items), and McNemar's exact "
            "test on the items only one of the two got right.</p>"
            "<table><thead><tr><th>pair</th><th>n</th><th>accuracy difference</th><th>95% CI</th>"
            "<th>right only in first / second</th><th>McNemar p</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


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


def _card(item_id: str, item_rows: list[dict[str, Any]]) -> str:
    first = item_rows[0]
    question = html.escape(str(first.get("question") or ""))
    answers = html.escape(" | ".join(first.get("answers") or []))
    lines = []
    for r in item_rows:
        swatch = f'<span class="swatch" style="background:{colour(r["strategy"])}"></span>'
        if r.get("error"):
            verdict, answer = '<span class="bad">error</span>', html.escape(str(r["error"]))
        else:
            verdict = '<span class="ok">right</span>' if r.get("correct") else '<span class="bad">wrong</span>'
            answer = html.escape(str(r.get("answer")))
        tokens = "-" if r.get("visual_tokens") is None else f"{r['visual_tokens']:,}"
        lines.append(f"<tr><td>{swatch}{html.escape(r['strategy'])}</td><td style='text-align:left'>{answer}</td>"
                     f"<td>{verdict}</td><td>{tokens}</td><td>{len(r.get('crops') or [])}</td></tr>")
    picture = _thumbnail(item_rows)
    image_html = (f'<img alt="item {html.escape(item_id)} with crops" src="{picture}">' if picture
                  else "<p class=meta>(image unavailable)</p>")
    return (f'<div class="card">{image_html}<div><p><b>{html.escape(item_id)}</b>: {question}<br>'
            f"<span class=meta>expected: {answers}</span></p><table><thead><tr><th>strategy</th><th>answer</th>"
            f"<th></th><th>visual tokens</th><th>crops</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
            "</div></div>")


def render_report(summary: dict[str, Any], rows: Sequence[dict[str, Any]], gallery: int = 24,
                  title: str = "cropper compare") -> str:
    """The report page as a string."""
    strategies = list(summary["strategies"])
    settings = summary.get("settings") or {}
    meta = ", ".join(f"{k}: <code>{html.escape(str(v))}</code>" for k, v in settings.items() if v is not None)
    figures = [_figure("Accuracy vs mean visual tokens per question", accuracy_vs_tokens(summary)),
               _figure("Latency per question", latency_distribution(rows, strategies))]
    if summary.get("by_group"):
        figures.append(_figure(f"Accuracy by {summary['by']}", accuracy_by_group(summary)))
    cards = [_card(item_id, item_rows) for item_id, item_rows in _gallery_order(rows, strategies)[:max(0, gallery)]]
    legend = " ".join(f'<span class="swatch" style="background:{colour(s)}"></span>{html.escape(s)}'
                      for s in strategies if s != "full")
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class=meta>{summary['items']} items, model <code>{html.escape(str(summary.get('model')))}</code>, written {when}.<br>{meta}</p>
<h2>Summary</h2>
{summary_table_html(summary)}
<p class=meta>accuracy over the answers without an error; "vs full": visual tokens relative to the plain model on the
same items; evidence hit: every evidence box at least 90% inside one crop; $ / 1k q from the price table
({html.escape(str(next((s.get('cost_basis') for s in summary['strategies'].values() if s.get('cost_basis')), '-')))} basis).</p>
{_pairs_html(summary)}
<h2>Plots</h2>
{''.join(figures)}
<h2>Items</h2>
<p class=meta>{len(cards)} of {summary['items']} items, failures first. Crops: {legend}; evidence: black and white outline.</p>
{''.join(cards)}
</body></html>
"""


def write_report(path: str | os.PathLike, summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                 gallery: int = 24) -> Path:
    """Write `render_report(...)` to `path` (atomically) and return the path."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render_report(summary, rows, gallery=gallery), encoding="utf-8")
    os.replace(tmp, path)
    return path
