"""`cropper ask --json` and `cropper demo` end to end on the offline reader (the issue's Done-when)."""

from __future__ import annotations

import json
import random

import pytest

from cropper.cli import main
from cropper.scoring import exact_match
from training.scenes import page_scene, sign_scene


def run_ask(capsys, *args):
    assert main(["ask", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def sign_image(tmp_path_factory):
    image, items = sign_scene(random.Random(21))
    path = tmp_path_factory.mktemp("sign") / "scene.png"
    image.save(path)
    return path, image, items[0]


def test_ask_json_tool_reads_a_small_sign_that_low_cannot(capsys, sign_image):
    path, image, item = sign_image
    assert 3000 <= image.width <= 4200
    tool = run_ask(capsys, str(path), item["question"], "--strategy", "tool")
    low = run_ask(capsys, str(path), item["question"], "--strategy", "low")
    full = run_ask(capsys, str(path), item["question"], "--strategy", "full")
    assert set(tool) >= {"answer", "strategy", "crops", "visual_tokens", "latency_s"}
    assert exact_match(tool["answer"], item["answers"])
    assert not exact_match(low["answer"], item["answers"])
    assert tool["visual_tokens"] < full["visual_tokens"]
    assert tool["crops"] and all(len(c) == 4 for c in tool["crops"])


def test_ask_json_tool_answers_an_anchored_question_on_a_dense_page(capsys, tmp_path):
    image, items = page_scene(random.Random(4))
    path = tmp_path / "page.png"
    image.save(path)
    item = items[0]
    tool = run_ask(capsys, str(path), item["question"], "--strategy", "tool")
    low = run_ask(capsys, str(path), item["question"], "--strategy", "low")
    assert exact_match(tool["answer"], item["answers"]), (tool, item)
    assert not exact_match(low["answer"], item["answers"])
    # full costs the Qwen2.5-VL count of every pixel; computed, not run (reading it all takes a while).
    from cropper.tokens import token_model_for

    assert tool["visual_tokens"] < token_model_for("reader").count(image.width, image.height)


def test_ask_reports_bad_input_clearly(capsys, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    assert main(["ask", str(bad), "What?"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "not an image" in err


def test_demo_shows_low_failing_and_a_zoom_strategy_answering_cheaply(tmp_path, capsys):
    from cropper.demo import run_demo

    rows, picture = run_demo(tmp_path, strategies=("low", "full", "tool"), progress=lambda _: None)
    assert picture.exists()
    by = {(r["question"], r["strategy"]): r for r in rows}
    questions = {r["question"] for r in rows}
    assert all(not by[(q, "low")]["correct"] for q in questions)
    assert all(by[(q, "tool")]["correct"] for q in questions)
    for q in questions:
        assert by[(q, "tool")]["visual_tokens"] < 0.5 * by[(q, "full")]["visual_tokens"]
