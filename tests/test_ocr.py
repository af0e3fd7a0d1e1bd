"""How the OCR wrapper assembles lines: word pieces and their confidences, spaces, slivers, rows."""

from __future__ import annotations

import numpy as np
import pytest

from backends.reader.ocr import OcrEngine, TextLine, _drop_slivers, merge_rows
from cropper.geometry import Box
from cropper.images import render
from training.synth import make_scene


@pytest.fixture(scope="module")
def engine():
    return OcrEngine()


def test_word_confidences_survive_joining_a_row():
    left = TextLine("alpha beta", 0.9, (0.0, 0.0, 100.0, 20.0), (("alpha", 0.99), ("beta", 0.9)))
    right = TextLine("gamma", 0.4, (110.0, 0.0, 160.0, 20.0), (("gamma", 0.4),))
    (row,) = merge_rows([right, left])
    assert row.text == "alpha beta gamma" and row.score == 0.4
    assert row.span_score(0, len("alpha beta")) == 0.9  # the garbled "gamma" does not taint "alpha beta"
    assert row.span_score(len("alpha beta "), len(row.text)) == 0.4
    assert row.span_score(0, 3) == 0.99


def test_a_row_joins_a_box_on_its_left_even_when_the_boxes_overlap():
    # The detector's boxes overlap by 10 px (over half the height); the left one sits a pixel lower, so
    # the right one starts the row and the left one must join in front of it.
    first = TextLine("kelp", 0.99, (63.0, 211.0, 120.0, 229.0), (("kelp", 0.99),))
    rest = TextLine("pillar goblet", 0.98, (110.0, 210.0, 446.0, 228.0), (("pillar", 0.98), ("goblet", 0.99)))
    below = TextLine("orbit", 0.99, (64.0, 290.0, 130.0, 311.0), (("orbit", 0.99),))
    rows = merge_rows([rest, below, first])
    assert [r.text for r in rows] == ["kelp pillar goblet", "orbit"]
    assert rows[0].box == (63.0, 210.0, 446.0, 229.0)
    assert rows[0].span_score(0, 4) == 0.99


def test_a_middle_box_that_joins_the_right_part_first_still_ends_in_one_row():
    # "pylon prism" sits highest, so it starts a row; "kelp" is too far from it and starts another; then
    # "pillar goblet" joins "pylon prism" on its left. A second pass must join "kelp" to the result.
    tail = TextLine("pylon prism", 0.99, (455.0, 209.0, 600.0, 228.0), (("pylon", 0.99), ("prism", 0.99)))
    first = TextLine("kelp", 0.9, (63.0, 210.0, 119.0, 228.0), (("kelp", 0.9),))
    middle = TextLine("pillar goblet", 0.97, (111.0, 210.0, 447.0, 229.0), (("pillar", 0.97), ("goblet", 0.98)))
    (row,) = merge_rows([first, middle, tail])
    assert row.text == "kelp pillar goblet pylon prism"
    assert row.box == (63.0, 209.0, 600.0, 229.0)


def test_a_narrow_unsure_piece_at_either_end_is_a_sliver_and_goes():
    h = 13
    pieces = [np.zeros((h, 4, 3)), np.zeros((h, 40, 3)), np.zeros((h, 30, 3)), np.zeros((h, 6, 3))]
    parts = [("1", 0.7), ("gravel", 0.99), ("voyage", 0.99), ("C", 0.31)]
    assert _drop_slivers(pieces, parts) == [("gravel", 0.99), ("voyage", 0.99)]
    # Narrow but read with confidence (a real short word), or unsure but wide: kept.
    assert _drop_slivers(pieces, [("I", 0.95), *parts[1:3], ("a", 0.9)]) == [("I", 0.95), *parts[1:3], ("a", 0.9)]
    wide = [np.zeros((h, 40, 3))] * 2
    assert _drop_slivers(wide, [("gravel", 0.5), ("voyage", 0.99)]) == [("gravel", 0.5), ("voyage", 0.99)]
    # A box that is nothing but a sliver keeps nothing.
    assert _drop_slivers([np.zeros((h, 5, 3))], [("1", 0.6)]) == []


def test_a_short_line_keeps_its_word_space(engine):
    # A real case: a crop of a synthetic page where the detector boxes "river mural" alone, a line too
    # short to be cut word by word, and the recognizer reads it as one word.
    image, _ = make_scene("page", 11000027, False)
    view = render(image, Box(0.6817, 0.4868, 0.9238, 0.5784)).image  # as the policy strategy crops it
    bgr = np.asarray(view)[:, :, ::-1].copy()
    boxes, _ = engine._engine.text_det(bgr)
    crops = engine._engine.get_crop_img_list(bgr, engine._engine.sorted_boxes(boxes))
    whole = [str(r[0]) for r in engine._engine.text_rec(crops, False)[0]]
    assert "rivermural" in whole  # the premise: without help the space is lost
    lines = [line.text for line in engine.read(view)]
    assert any("river mural" in text for text in lines), lines
    assert not any("rivermural" in text for text in lines)


def test_a_split_short_line_loses_its_neighbours_last_letter(engine):
    # Another real case: the detector's box "t marble" holds the "t" of "cobalt" from the box before it.
    # Split at its word space, the "t" is a narrow, unsure piece: it must not come between anchor and answer.
    image, _ = make_scene("page", 11000023, False)
    view = render(image, Box(0.6899, 0.7766, 0.8661, 0.9183)).image
    rows = [line.text for line in engine.read(view) if "beacon cobalt" in line.text]
    assert rows and all("beacon cobalt marble" in text for text in rows), rows
