"""Where to look without reading: sign blobs, text zones, word splitting, the reader's search, TextRegionCropper."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from backends.messages import ImagePart, Message, TextPart
from backends.reader import ReaderBackend
from backends.reader.ocr import split_words
from backends.reader.zones import covers, sign_blobs, text_zones
from cropper.croppers import TextRegionCropper
from cropper.images import global_view
from cropper.zoom_tool import global_caption, zoom_tool
from training.scenes import font, form_scene


def _scene(background, sign_colour, sign_box, size=(3000, 2000), disc=None):
    """A plain scene with one small sign (dark text on `sign_colour`), optionally on a disc of another colour."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    if disc is not None:
        colour, box = disc
        draw.ellipse(box, fill=colour)
    draw.rectangle(sign_box, fill=sign_colour)
    x1, y1, x2, y2 = sign_box
    draw.text((x1 + 10, y1 + 8), "P5-7641", font=font(15), fill=(30, 30, 30))
    # A post under the sign, as the synthetic scenes draw them: it must not change the sign's shape.
    draw.rectangle((x1 + (x2 - x1) // 2 - 3, y2, x1 + (x2 - x1) // 2 + 3, y2 + 40), fill=(60, 60, 60))
    return image


def _normalized(box, size):
    return (box[0] / size[0], box[1] / size[1], box[2] / size[0], box[3] / size[1])


def test_a_yellow_sign_on_olive_ground_is_found_though_the_ground_is_also_called_yellow():
    # Olive (128, 128, 80) is named "yellow" too, so the named-pixel mask is one huge blob; the sign
    # still stands out from its surroundings.
    sign = (1400, 1300, 1520, 1340)
    image = _scene((128, 128, 80), (240, 220, 30), sign)
    view = global_view(image, 1024).image
    blobs = sign_blobs(view, "yellow")
    assert blobs, "no yellow sign found"
    assert covers(blobs[0], _normalized(sign, image.size)) >= 0.9


def test_a_gray_label_on_a_green_disc_is_found():
    sign = (1500, 900, 1620, 940)
    image = _scene((90, 110, 80), (128, 128, 128), sign, disc=((170, 190, 150), (1300, 700, 1900, 1300)))
    blobs = sign_blobs(global_view(image, 1024).image, "grey")  # aliases work
    assert any(covers(b, _normalized(sign, image.size)) >= 0.9 for b in blobs)


def test_no_blob_of_a_colour_that_is_not_there():
    image = _scene((128, 128, 80), (240, 220, 30), (1400, 1300, 1520, 1340))
    assert sign_blobs(global_view(image, 1024).image, "blue") == []
    assert sign_blobs(global_view(image, 1024).image, "chartreuse") == []


def test_text_zones_cover_every_field_of_a_form_and_little_else():
    image, items = form_scene(random.Random(3))
    zones = text_zones(global_view(image, 1024).image)
    evidence = [tuple(e) for item in items for e in item["evidence"]]
    assert evidence
    for e in evidence:
        assert any(covers(z, e) >= 0.9 for z in zones), f"no zone covers {e}"
    assert sum((z[2] - z[0]) * (z[3] - z[1]) for z in zones) < 0.35


def test_split_words_never_hands_a_word_a_sliver_of_its_neighbour():
    h = 20
    crop = np.full((h, 200, 3), 255, np.uint8)
    words = [(0, 40), (48, 100), (108, 200)]  # gaps of 8 px = 0.4 line heights: just wide enough to cut
    for a, b in words:
        crop[7:13, a:b] = 0  # strokes: most of the line image stays background
    pieces = split_words(crop)
    assert len(pieces) == 3
    for piece, (a, b) in zip(pieces, words, strict=True):
        inked = np.where((piece < 128).any(axis=(0, 2)))[0]
        # One run of ink per piece, exactly the word's width: no neighbour's edge at either side.
        assert inked.max() - inked.min() + 1 == b - a
        assert len(inked) == b - a


def test_reader_search_asks_for_several_small_zones_in_one_turn_within_its_area_share():
    reader = ReaderBackend(scan_calls_per_turn=5, scan_area_per_turn=0.25)
    small = [(0.1 * i, 0.1, 0.1 * i + 0.05, 0.15) for i in range(8)]
    assert reader._scan(small) == small[:5]
    big = [(0.0, 0.0, 0.4, 0.4), (0.5, 0.5, 0.9, 0.9), (0.0, 0.5, 0.1, 0.6)]
    assert reader._scan(big) == [big[0]]  # the first always goes, the next would pass the share


def test_reader_zooms_into_several_form_zones_at_once():
    image, items = form_scene(random.Random(5))
    item = items[0]
    view = global_view(image, 1024)
    part = ImagePart(view.image, label=global_caption(image.width, image.height, *view.size))
    reply = ReaderBackend().generate([Message("user", [part, TextPart(item["question"])])], tools=[zoom_tool()])
    assert 1 < len(reply.tool_calls) <= 5


def test_text_region_cropper_covers_the_evidence_of_each_kind_cheaply():
    cropper = TextRegionCropper()
    image, items = form_scene(random.Random(7))
    for item in items:
        boxes = cropper.propose(image, item["question"])
        assert any(covers(tuple(b), tuple(item["evidence"][0])) >= 0.9 for b in boxes), item["question"]
        assert sum(b.area for b in boxes) <= cropper.max_area + 0.05


def test_text_region_cropper_puts_the_named_colour_first_and_respects_quadrants_and_k():
    sign = (2200, 300, 2320, 340)  # top right
    image = _scene((128, 128, 80), (240, 220, 30), sign)
    draw = ImageDraw.Draw(image)
    draw.text((200, 1600), "unrelated words in the bottom left", font=font(15), fill=(20, 20, 20))
    cropper = TextRegionCropper()
    target = _normalized(sign, image.size)
    boxes = cropper.propose(image, "What does the yellow plate say?")
    assert covers(tuple(boxes[0]), target) >= 0.9
    in_quadrant = cropper.propose(image, "What is written on the yellow plate in the bottom left?")
    assert all(b.x1 + b.x2 <= 1.0 and b.y1 + b.y2 >= 1.0 for b in in_quadrant)  # centres in the quadrant
    assert len(cropper.propose(image, "What is the order number?", k=1)) == 1


def test_name_pixels_names_each_pixel_as_name_rgb_names_its_colour_bin():
    from backends.reader.colours import name_pixels, name_rgb

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    names = name_pixels(arr)
    for (y, x), name in np.ndenumerate(names):
        centre = tuple(int(c) // 16 * 16 + 8 for c in arr[y, x])
        assert name == name_rgb(centre)
    assert len(np.unique(names)) > 3  # random colours get many names, not one default


def test_a_line_at_a_crop_edge_inside_the_image_counts_as_cut_and_loses_to_a_whole_reading():
    from backends.reader.answering import Seen, ViewInput, _colour_object
    from backends.reader.ocr import TextLine
    from backends.reader.questions import parse_question

    sign = Image.new("RGB", (200, 100), (240, 220, 30))
    inner = ViewInput(sign, region=(0.2, 0.2, 0.4, 0.3), scale=1.0, order=1)
    at_image_edge = ViewInput(sign, region=(0.0, 0.0, 0.2, 0.1), scale=1.0, order=2)
    cut = Seen(TextLine("HV 3", 0.99, (150.0, 40.0, 200.0, 60.0)), inner, (0.35, 0.28, 0.4, 0.29))
    whole = Seen(TextLine("HV 342", 0.95, (60.0, 40.0, 140.0, 58.0)), inner, (0.26, 0.28, 0.34, 0.29))
    at_border = Seen(TextLine("EDGE", 0.95, (0.0, 40.0, 50.0, 60.0)), at_image_edge, (0.0, 0.04, 0.05, 0.06))
    assert cut.cut and not whole.cut
    assert not at_border.cut  # the view's left edge is the image's own edge: nothing was cut off there
    # The cut reading has taller text and a higher score, yet the whole one is the answer.
    outcome = _colour_object(parse_question("What does the yellow plate say?"), [inner], [cut, whole])
    assert outcome.answer == "HV 342"


def test_the_reader_runs_each_finder_once_per_view_across_tool_rounds(monkeypatch):
    from backends.reader import answering

    calls = []

    def counting(name, finder):
        def spy(*args, **kwargs):
            calls.append(name)
            return finder(*args, **kwargs)
        return spy

    from collections import OrderedDict

    monkeypatch.setattr(answering, "_FOUND", OrderedDict())  # nothing found by earlier tests
    monkeypatch.setattr(answering, "sign_blobs", counting("signs", answering.sign_blobs))
    monkeypatch.setattr(answering, "text_zones", counting("text", answering.text_zones))
    sign = (1400, 1300, 1520, 1340)
    image = _scene((128, 128, 80), (240, 220, 30), sign)
    view = answering.ViewInput(global_view(image, 1024).image, scale=1024 / 3000)
    rounds = [(answering._colour_blobs([view], "yellow"), answering._text_regions([view], [])) for _ in range(3)]
    assert calls == ["signs", "text"]  # rounds 2 and 3 reuse the first round's finds
    assert rounds[0] == rounds[1] == rounds[2] and any(covers(b, _normalized(sign, image.size)) >= 0.9
                                                         for b in rounds[0][0])
    answering._colour_blobs([view], "blue")  # another colour is another search
    other = answering.ViewInput(global_view(_scene((128, 128, 80), (240, 220, 30), (200, 200, 320, 240)), 1024).image)
    answering._colour_blobs([other], "yellow")  # another image too
    assert calls == ["signs", "text", "signs", "signs"]
