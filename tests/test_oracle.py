"""The oracle: OCR grounding of answers, grounding replies in every box convention, evidence -> crops."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from backends.messages import Reply
from cropper.geometry import AWARES9, Box, crop_set
from training.oracle import (
    ask_grounding,
    best_crop,
    crop_labels,
    evidence_coverage,
    fill_evidence,
    ground_answer,
    parse_boxes,
    target_crops,
)
from training.scenes import font


def _page(lines: list[tuple[int, int, str]], size=(1400, 900)) -> tuple[Image.Image, dict[str, Box]]:
    """A white page with black text lines at pixel positions; returns it and each line's pixel box."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    where = {}
    for x, y, text in lines:
        draw.text((x, y), text, font=font(26), fill="black")
        x1, y1, x2, y2 = draw.textbbox((x, y), text, font=font(26))
        where[text] = Box.from_pixels(x1, y1, x2, y2, *size)
    return image, where


@pytest.fixture(scope="module")
def form():
    return _page([(90, 120, "Invoice number: 4417"), (760, 640, "Total due: 4417"), (420, 380, "Customer: ORCHID LTD")])


def test_grounds_the_answer_where_it_is_written(form):
    image, where = form
    boxes = ground_answer(image, ["orchid ltd"])
    assert len(boxes) == 1
    # Narrowed to the value inside its line, padded, and covering the written answer.
    line = where["Customer: ORCHID LTD"]
    assert boxes[0].coverage(Box(line.x1 + line.width * 0.5, line.y1, line.x2, line.y2)) > 0.9
    assert boxes[0].x1 > line.x1 + line.width * 0.2


def test_the_question_picks_the_right_copy_of_a_repeated_answer(form):
    image, where = form
    both = ground_answer(image, "4417")
    assert len(both) == 2
    [total] = ground_answer(image, "4417", question="What is the Total due?")
    assert total.coverage(where["Total due: 4417"]) > 0.8 and total.intersection(where["Invoice number: 4417"]) == 0
    [invoice] = ground_answer(image, "4417", question="What is the Invoice number?")
    assert invoice.coverage(where["Invoice number: 4417"]) > 0.8 and invoice.intersection(where["Total due: 4417"]) == 0


def test_absent_answers_and_empty_answers_give_no_box(form):
    image, _ = form
    assert ground_answer(image, "ZEBRA CROSSING") == []
    assert ground_answer(image, ["", "  "]) == []


@pytest.mark.parametrize("reply, convention", [
    ("[0.25, 0.1, 0.5, 0.4]", "auto"),
    ("The region is [25%, 10%, 50%, 40%].", "auto"),
    ('{"bbox_2d": [250, 100, 500, 400]}', "auto"),
    ("(250,100),(500,400)", "auto"),
    ("[500, 80, 1000, 320] px", "auto"),
    ("500 80 1000 320", "pixels"),
    ("[25, 10, 50, 40]", "percent"),
])
def test_every_box_convention_parses_to_the_same_box(reply, convention):
    [box] = parse_boxes(reply, 2000, 800, convention=convention)
    assert box.to_list(4) == [0.25, 0.1, 0.5, 0.4]


def test_replies_without_a_box_or_with_a_bad_convention():
    assert parse_boxes("I cannot tell.", 100, 100) == []
    assert parse_boxes("[3, 3, 3, 9]", 100, 100) == []  # zero width
    with pytest.raises(ValueError, match="convention"):
        parse_boxes("[1, 2, 3, 4]", 100, 100, convention="inches")


class ScriptedGrounder:
    """A backend that answers every request with one fixed reply and records what it was sent."""

    def __init__(self, text: str):
        self.text, self.calls = text, []

    def generate(self, messages, **options):
        self.calls.append(messages)
        return Reply(text=self.text)


def test_ask_grounding_sends_the_question_and_the_original_image(form):
    image, _ = form
    backend = ScriptedGrounder("[100, 200, 300, 400]")
    assert ask_grounding(backend, image, "Where is the total?") == [Box(0.1, 0.2, 0.3, 0.4)]
    [message] = backend.calls[0]
    assert message.content[0].image.size == image.size
    assert "Where is the total?" in message.content[1].text


def test_evidence_maps_to_the_smallest_covering_crops():
    crops = crop_set("awares9")
    top_left = [Box(0.1, 0.1, 0.2, 0.2)]
    names = target_crops(top_left, crops)
    assert names[0] == best_crop(top_left, crops)
    assert crops[names[0]] == AWARES9["top_left"]
    assert all(evidence_coverage(crops[n], top_left) >= 0.9 for n in names)
    assert [crops[n].area for n in names] == sorted(crops[n].area for n in names)
    labels = crop_labels(top_left, crops)
    assert labels[names[0]] == 1.0 and all(labels[n] == 0 for n in crops if n not in names)
    assert 0 < labels[names[-1]] < 1


def test_evidence_that_no_crop_covers_falls_back_to_the_most_covering_one():
    crops = {"left": Box(0, 0, 0.5, 1), "right": Box(0.5, 0, 1, 1)}
    straddling = [Box(0.3, 0.4, 0.6, 0.5)]  # two thirds left, one third right
    assert target_crops(straddling, crops) == []
    assert best_crop(straddling, crops) is None
    assert best_crop(straddling, crops, fallback=True) == "left"
    labels = crop_labels(straddling, crops)
    assert labels["left"] == pytest.approx(2 / 3, abs=1e-6) and labels["right"] == 0
    assert target_crops([], crops) == [] and set(crop_labels([], crops).values()) == {0.0}


class CountingEngine:
    """The reader's OCR engine, counting how often it is asked to read."""

    def __init__(self):
        from backends.reader.ocr import shared_engine

        self.inner, self.reads = shared_engine(), 0

    def read(self, image):
        self.reads += 1
        return self.inner.read(image)


def test_fill_evidence_grounds_missing_boxes_and_resumes_from_its_cache(form, tmp_path):
    image, where = form
    image.save(tmp_path / "form.png")
    items = [
        {"id": "a", "image": "form.png", "question": "Who is the customer?", "answers": ["ORCHID LTD"]},
        {"id": "b", "image": "form.png", "question": "What is the colour?", "answers": ["mauve"]},
        {"id": "c", "image": "form.png", "question": "Total?", "answers": ["4417"], "evidence": [[0, 0, 1, 1]]},
    ]
    backend = ScriptedGrounder("[0, 0, 500, 500]")
    engine = CountingEngine()
    cache = tmp_path / "evidence.jsonl"
    out = fill_evidence(items, tmp_path, backend=backend, cache=cache, progress=False, engine=engine)
    assert [o["evidence_source"] for o in out] == ["ocr", "grounding", "given"]
    assert Box.from_list(out[0]["evidence"][0]).coverage(where["Customer: ORCHID LTD"]) > 0.3
    assert out[1]["evidence"] == [[0.0, 0.0, 0.5, 0.5]]
    assert out[2]["evidence"] == [[0, 0, 1, 1]]
    assert len(cache.read_text().splitlines()) == 2 and all(json.loads(x)["key"] for x in cache.read_text().splitlines())
    reads, asks = engine.reads, len(backend.calls)
    again = fill_evidence(items, tmp_path, backend=backend, cache=cache, progress=False, engine=engine)
    assert again == out
    assert (engine.reads, len(backend.calls)) == (reads, asks)  # everything came from the cache
