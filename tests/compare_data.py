"""Small datasets for the compare tests: key/value text on 900x600 pages the reader reads in a fraction of a
second at full resolution, and cannot read from a 160-px low view."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from training.scenes import font

KEYS = ("invoice", "account", "order", "batch", "serial", "route")


def make_dataset(root: Path, n: int, seed: int = 0, extra_lines: list[str] | None = None) -> Path:
    """Write `n` items (ids q0..), alternating `subset` even/odd, to `root/data.jsonl`; returns its path."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        key = KEYS[i % len(KEYS)]
        value = f"{rng.choice('ABCDEFGHKLMN')}{rng.randint(1000, 9999)}"
        image = Image.new("RGB", (900, 600), "white")
        x, y = rng.randint(40, 500), rng.randint(40, 500)
        ImageDraw.Draw(image).text((x, y), f"{key.title()}: {value}", fill="black", font=font(26))
        image.save(root / "images" / f"{i}.png")
        evidence = [x / 900, y / 600, min(1.0, (x + 330) / 900), min(1.0, (y + 34) / 600)]
        lines.append(json.dumps({"id": f"q{i}", "image": f"images/{i}.png", "question": f"What is the {key}?",
                                 "answers": [value], "evidence": [evidence], "subset": "even" if i % 2 == 0 else "odd"}))
    lines.extend(extra_lines or [])
    path = root / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
