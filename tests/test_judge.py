"""The judge: metrics on hand-computed examples, MiniLM similarity offline, "needs zoom" labels from the reader."""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image, ImageDraw

from backends.reader import PALETTE, ReaderBackend
from cropper.scoring import anls, exact_match, levenshtein, relaxed_match, to_number, vqa_accuracy
from cropper.wrapper import ZoomWrapper
from training.judge import (
    THRESHOLDS,
    ZoomLabel,
    encoder,
    is_correct,
    judge_answers,
    label_items,
    needs_zoom,
    resolve_metric,
    score,
    semantic_similarity,
)
from training.scenes import font, sign_scene

# --- string metrics -------------------------------------------------------------------------------------


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("same", "same") == 0


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("hello", ["hello"], 1.0),
        ("helo", ["hello"], 1 - 1 / 5),  # one deletion over max length 5
        ("1.9", ["1.96"], 1 - 1 / 4),
        ("kitten", ["sitting"], 1 - 3 / 7),  # NL = 0.43 < 0.5: partial credit
        ("ab", ["ac"], 0.0),  # NL = 0.5 is not below the threshold
        ("abc", ["xyz"], 0.0),
        ("  Hello   World ", ["hello world"], 1.0),  # case and whitespace, as the official script
        ("2.38", ["2.38 million", "2.38"], 1.0),  # max over the references
        ("$12", ["12"], 1 - 1 / 3),  # punctuation counts in ANLS (it does not in exact match)
        ("", ["12"], 0.0),
    ],
)
def test_anls_matches_the_docvqa_definition(prediction, answers, expected):
    assert anls(prediction, answers) == pytest.approx(expected)
    assert score(prediction, answers, "anls") == pytest.approx(expected)


def test_anls_averaged_over_questions_like_the_benchmark():
    # Three questions: exact, two OCR slips in 7 characters, wrong.
    pairs = [("invoice", ["Invoice"]), ("2O19-O4", ["2019-04"]), ("blue", ["March"])]
    per_question = [anls(p, a) for p, a in pairs]
    assert per_question[1] == pytest.approx(1 - 2 / 7)
    assert sum(per_question) / 3 == pytest.approx((1 + (1 - 2 / 7) + 0) / 3)


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("10.4", ["10"], 1.0),  # 4% off
        ("10.6", ["10"], 0.0),  # 6% off
        ("1,050", ["1000"], 1.0),  # exactly 5%, thousands separator
        ("-52", ["-50"], 1.0),
        ("0.45", ["45%"], 1.0),  # a percent reads as a fraction, as in ChartQA's evaluation
        ("0", ["0"], 1.0),
        ("0.1", ["0"], 0.0),  # zero reference: zero only
        ("Yes", ["yes"], 1.0),  # not numbers: exact
        ("No", ["yes"], 0.0),
        ("17.", ["17"], 1.0),
        ("seventeen", ["17"], 0.0),
    ],
)
def test_relaxed_accuracy(prediction, answers, expected):
    assert relaxed_match(prediction, answers) == expected
    assert score(prediction, answers, "relaxed") == expected


def test_to_number():
    assert to_number("1,234.5") == 1234.5
    assert to_number("$12") == 12
    assert to_number("45%") == pytest.approx(0.45)
    assert to_number("B7-4421") is None
    assert to_number("1e3") == 1000


@pytest.mark.parametrize(("agree", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_leave_one_out(agree, expected):
    answers = ["stop"] * agree + [f"other{i}" for i in range(10 - agree)]
    assert vqa_accuracy("STOP", answers) == pytest.approx(expected)


def test_exact_and_auto():
    assert score("B7 - 4421", ["b7-4421"], "exact") == exact_match("B7 - 4421", ["b7-4421"]) == 1.0
    assert resolve_metric("auto", ["12", "12.0"]) == "relaxed"
    assert resolve_metric("auto", ["B7-4421"]) == "exact"
    assert score("10.3", ["10"]) == 1.0  # auto -> relaxed for numeric references
    assert score("Paris.", ["paris"]) == 1.0
    assert score(None, ["x"]) == score("  ", ["x"]) == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        score("a", ["a"], "bleu")


def test_is_correct_uses_the_metric_threshold():
    assert is_correct("helo", ["hello"], "anls")  # 0.8 >= 0.5
    assert not is_correct("kitten", ["sitting"], "anls", threshold=0.9)
    assert is_correct("B7-4421", ["b7 4421"])
    assert not is_correct("B7-4427", ["B7-4421"])
    assert THRESHOLDS["exact"] == 1.0


# --- MiniLM ---------------------------------------------------------------------------------------------


def test_semantic_similarity_orders_paraphrase_above_unrelated():
    answers = ["a cat was sitting on a mat"]
    paraphrase = semantic_similarity("the cat sat on the mat", answers)
    unrelated = semantic_similarity("quarterly revenue grew five percent", answers)
    assert paraphrase > 0.8 > 0.3 > unrelated
    # The value sentence-transformers gives for this pair with the same weights: the numpy forward is faithful.
    assert paraphrase == pytest.approx(0.94175, abs=1e-3)
    assert score("the cat sat on the mat", answers, "semantic") == pytest.approx(paraphrase)
    assert is_correct("the cat sat on the mat", answers, "semantic")
    assert semantic_similarity("A cat was sitting on a mat!", answers) == 1.0  # exact match, no encoder


def test_embeddings_are_unit_length_and_cached():
    enc = encoder()
    vectors = enc.encode(["red sign", "green sign"])
    assert vectors.shape == (2, 384)
    assert vectors[0] @ vectors[0] == pytest.approx(1.0, abs=1e-5)
    assert "red sign" in enc._cache
    assert enc.encode("red sign") == pytest.approx(vectors[0])


# --- needs zoom -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader_wrapper():
    return ZoomWrapper("reader")


def test_small_sign_needs_zoom(reader_wrapper):
    # Seeded through sign_scene itself: make_scene's styled variants may change as the generator grows.
    image, items = sign_scene(random.Random(2))  # 3115 px wide: the smallest full-resolution read we can pin
    item = items[0]
    label = needs_zoom(reader_wrapper, image, item["question"], item["answers"])
    assert label.needs_zoom and label.status == "zoom"
    assert (label.low_score, label.full_score) == (0.0, 1.0)
    assert label.low_answer == "unknown" and exact_match(label.full_answer, item["answers"])


def test_large_sign_is_answerable_at_low(reader_wrapper):
    image, items = sign_scene(random.Random(2), easy=True)
    label = needs_zoom(reader_wrapper, image, items[0]["question"], items[0]["answers"])
    assert not label.needs_zoom and label.answerable_at_low and label.status == "low"
    assert label.low_score == 1.0
    assert label.full_answer is None and label.full_score is None  # not asked: the label cannot change


def test_judge_answers_statuses():
    assert judge_answers("x", "B7", ["B7"]).status == "zoom"
    assert judge_answers("B7", None, ["B7"]).status == "low"
    both_wrong = judge_answers("x", "y", ["B7"])
    assert both_wrong.status == "unanswerable" and not both_wrong.needs_zoom
    assert judge_answers("helo wrld", "hello world", ["hello world"], metric="anls").status == "low"


class CountingBackend:
    """Forwards to a real backend and counts `generate` calls."""

    def __init__(self, inner, fail_on: str | None = None):
        self.inner = inner
        self.calls = 0
        self.fail_on = fail_on

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, messages, tools=None, **options):
        self.calls += 1
        text = " ".join(p.text for m in messages for p in m.content if hasattr(p, "text") and isinstance(p.text, str))
        if self.fail_on and self.fail_on in text:
            raise TimeoutError("provider timed out")
        return self.inner.generate(messages, tools=tools, **options)


def _sign_image(text: str) -> Image.Image:
    image = Image.new("RGB", (480, 320), (150, 160, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle([80, 110, 400, 200], fill=PALETTE["green"])
    draw.text((110, 130), text, font=font(44), fill=(250, 250, 250))
    return image


def test_label_items_writes_as_it_goes_and_resumes_without_new_calls(tmp_path):
    image = _sign_image("KX 318")
    items = [
        {"id": "a", "image": image, "question": "What is written on the green sign?", "answers": ["KX 318"]},
        {"id": "b", "image": image, "question": "What is written on the purple sign?", "answers": ["ZZ 1"]},
    ]
    cache = tmp_path / "labels.jsonl"
    backend = CountingBackend(ReaderBackend())
    first = label_items(items, backend, cache_path=cache)
    assert [lab.status for lab in first] == ["low", "unanswerable"]
    assert backend.calls == 3  # a: low only; b: low and full
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["needs_zoom"] is False

    again = CountingBackend(ReaderBackend())
    second = label_items(items, again, cache_path=cache)
    assert again.calls == 0
    assert [lab.to_dict() for lab in second] == [lab.to_dict() for lab in first]
    assert len(cache.read_text().splitlines()) == 2  # nothing new appended


def test_label_items_records_errors_and_retries_them(tmp_path):
    image = _sign_image("KX 318")
    items = [
        {"id": "ok", "image": image, "question": "What is written on the green sign?", "answers": ["KX 318"]},
        {"id": "bad", "image": image, "question": "What does the green sign say?", "answers": ["KX 318"]},
    ]
    cache = tmp_path / "labels.jsonl"
    cache.write_text('{"id": "ok", "question": "What is written on the green sign?", "low_answer": "KX 318", '
                     '"full_answer": null}\n{"id": "cut sh')  # an interrupted write: the partial line is ignored
    failing = CountingBackend(ReaderBackend(), fail_on="say?")
    labels = label_items(items, failing, cache_path=cache)
    assert failing.calls == 1 and labels[0].status == "low" and labels[1].low_score == 0.0
    rows = [json.loads(line) for line in cache.read_text().splitlines()[2:]]
    assert rows[-1]["id"] == "bad" and "TimeoutError" in rows[-1]["error"]

    fixed = CountingBackend(ReaderBackend())
    labels = label_items(items, fixed, cache_path=cache)
    assert fixed.calls == 1 and labels[1].status == "low"  # only the failed item is asked again


def test_zoom_label_round_trips_to_dict():
    label = ZoomLabel(True, 0.0, 1.0, "unknown", "B7", low_correct=False, full_correct=True, id="q1")
    d = label.to_dict()
    assert d["status"] == "zoom" and d["id"] == "q1" and d["needs_zoom"] is True
