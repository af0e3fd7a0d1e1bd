"""The HTML report renders in headless Chromium: the table is there, one image per figure, nothing broken.

Chromium comes from Debian's packages (`.ci/run` installs it when missing). The page is loaded from a copy
with a probe script appended, which counts what the browser actually decoded and writes it into the DOM
that `--dump-dom` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from compare_data import make_dataset

from cropper.ab import summarize
from cropper.ab.report import render_report, write_report
from training.datasets import read_dataset

PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.setAttribute('data-probe', JSON.stringify({
    images: images.length,
    broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    figures: document.querySelectorAll('figure img').length,
    summary_tables: document.querySelectorAll('table.summary').length,
    summary_rows: [...document.querySelectorAll('table.summary tbody tr')].map(r => r.cells[0].textContent),
    cards: document.querySelectorAll('.card').length,
  }));
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium not found: install Debian's `chromium` package (.ci/run does)")


def _rows(items, images_exist=True):
    rows = []
    for i, item in enumerate(items):
        common = {"id": item.id, "question": item.question, "answers": item.answers,
                  "image": str(item.image_path) if images_exist or i else "/nonexistent/x.png",
                  "evidence": [b.to_list() for b in item.evidence], "fields": dict(item.extra)}
        rows.append({**common, "strategy": "full", "answer": item.answers[0], "correct": True, "score": 1.0,
                     "visual_tokens": 700, "pixels": 540000, "crops": [], "latency_s": 0.5 + i / 10, "error": None,
                     "evidence_hit": True})
        rows.append({**common, "strategy": "policy", "answer": "wrong" if i == 2 else item.answers[0],
                     "correct": i != 2, "score": float(i != 2), "visual_tokens": 200, "pixels": 150000,
                     "crops": [b.pad(absolute=0.05).to_list() for b in item.evidence], "latency_s": 0.2,
                     "error": None, "evidence_hit": True})
        rows.append({**common, "strategy": "low", "answer": None, "correct": None, "score": None,
                     "visual_tokens": None, "pixels": None, "crops": [], "latency_s": None,
                     "error": "BackendError: 503" if i == 1 else None} if i == 1 else
                    {**common, "strategy": "low", "answer": "?", "correct": False, "score": 0.0, "visual_tokens": 60,
                     "pixels": 40000, "crops": [], "latency_s": 0.1, "error": None, "evidence_hit": False})
    return rows


def test_report_renders_in_headless_chromium(tmp_path):
    items = read_dataset(make_dataset(tmp_path / "d", 4))
    rows = _rows(items, images_exist=False)  # item 0's image is gone: the card says so, no broken <img>
    summary = summarize(rows, ["low", "full", "policy"], by="subset")
    report = write_report(tmp_path / "report.html", summary, rows, gallery=10)
    page = report.read_text(encoding="utf-8")
    assert "src=\"http" not in page and "src='http" not in page  # self-contained: nothing fetched
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, "the page did not finish loading in Chromium"
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["summary_tables"] == 1
    assert seen["summary_rows"] == ["low", "full", "policy"]
    assert seen["figures"] == 3  # accuracy vs tokens, latency, accuracy by subset
    assert seen["cards"] == 4
    assert seen["images"] == 3 + 3  # three figures and the three cards whose image exists
    assert seen["broken"] == []


def test_gallery_puts_failures_first_and_escapes_text(tmp_path):
    items = read_dataset(make_dataset(tmp_path / "d", 4))
    rows = _rows(items)
    for row in rows:
        if row["id"] == "q2":
            row["question"] = "<script>alert(1)</script>"
    summary = summarize(rows, ["low", "full", "policy"])
    page = render_report(summary, rows, gallery=2)
    cards = re.findall(r'<div class="card">.*?<b>(q\d)</b>', page, flags=re.S)
    # q2: two strategies wrong; q0, q1 (an error) and q3: one each, then the dataset's order
    assert cards == ["q2", "q0"]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_probe_catches_a_broken_image(tmp_path):
    # The check above would be worthless if a broken image went unnoticed.
    page = tmp_path / "broken.html"
    page.write_text("<html><body><table class='summary'><tbody></tbody></table>"
                    "<img alt='bad' src='data:image/png;base64,AAAA'>" + PROBE + "</body></html>")
    done = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    seen = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', done.stdout).group(1)))
    assert seen["broken"] == ["bad"]
