"""`cropper demo`: one built-in high-resolution scene, asked with every strategy on the offline reader."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from .answer import Answer
from .geometry import Box
from .images import global_view
from .scoring import exact_match
from .wrapper import ZoomWrapper

DEMO_SEED = 7
STRATEGY_COLOURS = {"policy": (255, 140, 0), "tool": (220, 0, 220)}


def demo_scene() -> tuple[Image.Image, list[dict]]:
    """The built-in example: a 4000-px cluttered street-like scene with small coloured signs."""
    from training.scenes import sign_scene  # lazy: cropper does not import training at import time

    image, items = sign_scene(random.Random(f"demo:{DEMO_SEED}"), n_signs=4)
    return image, items[:2]


def run_demo(out_dir: str | Path = "cropper-demo", strategies=("low", "full", "policy", "tool"), progress=print):
    """Ask the demo questions with each strategy; return (rows, image path). Rows are plain dicts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image, items = demo_scene()
    image_path = out / "scene.png"
    image.save(image_path)
    wrapper = ZoomWrapper("reader")
    rows, drawn = [], []
    for item in items:
        for strategy in strategies:
            answer = wrapper.ask(image, item["question"], strategy=strategy)
            rows.append(_row(item, answer))
            progress(f"  {strategy:<6} {item['question']} -> {answer.text!r}")
            if answer.crops:
                drawn.append((strategy, answer.crops))
    crops_path = out / "crops.png"
    draw_crops(image, drawn, [Box.from_list(e) for item in items for e in item["evidence"]]).save(crops_path)
    return rows, crops_path


def _row(item: dict, answer: Answer) -> dict:
    return {
        "question": item["question"], "strategy": answer.strategy, "answer": answer.text,
        "expected": item["answers"][0], "correct": bool(exact_match(answer.text, item["answers"])),
        "visual_tokens": answer.visual_tokens, "latency_s": round(answer.latency_s, 2),
        "crops": [b.to_list() for b in answer.crops],
    }


def draw_crops(image: Image.Image, crops: list[tuple[str, list[Box]]], evidence: list[Box] = (), side: int = 1400) -> Image.Image:
    """The global view with each strategy's crops outlined (evidence boxes in green)."""
    view = global_view(image, side).image.copy()
    draw = ImageDraw.Draw(view)
    w, h = view.size
    for box in evidence:
        draw.rectangle(_px(box.pad(absolute=0.004), w, h), outline=(0, 200, 0), width=3)
    for strategy, boxes in crops:
        for box in boxes:
            draw.rectangle(_px(box, w, h), outline=STRATEGY_COLOURS.get(strategy, (255, 0, 0)), width=3)
            draw.text((box.x1 * w + 4, box.y1 * h + 2), strategy, fill=STRATEGY_COLOURS.get(strategy, (255, 0, 0)))
    return view


def _px(box: Box, w: int, h: int) -> tuple[int, int, int, int]:
    return int(box.x1 * w), int(box.y1 * h), int(box.x2 * w), int(box.y2 * h)


def format_table(rows: list[dict]) -> str:
    """A plain-text side-by-side table (no terminal dependencies)."""
    header = ("question", "strategy", "answer", "correct", "visual tokens", "seconds")
    body = [(r["question"][:44], r["strategy"], r["answer"][:20], "yes" if r["correct"] else "no",
             str(r["visual_tokens"]), f"{r['latency_s']:.1f}") for r in rows]
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*b) for b in body]
    return "\n".join(out)
