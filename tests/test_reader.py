"""The embedded reader on rendered images: resolution-sensitive, each question form, the zoom protocol."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageDraw

from backends.messages import ImagePart, Message, TextPart
from backends.reader import PALETTE, ReaderBackend, parse_question
from backends.reader.colours import name_rgb
from cropper.geometry import Box
from cropper.images import global_view, render
from cropper.scoring import exact_match
from cropper.zoom_tool import crop_caption, global_caption, zoom_tool
from training.scenes import font, form_scene, page_scene, sign_scene


@pytest.fixture(scope="module")
def reader():
    return ReaderBackend()


def ask(reader, parts, question, tools=None):
    return reader.generate([Message("user", [*parts, TextPart(question)])], tools=tools)


def low_view(image):
    view = global_view(image, 1024)
    return ImagePart(view.image, label=global_caption(image.width, image.height, *view.size))


def crop_view(image, box):
    view = render(image, box)
    return ImagePart(view.image, label=crop_caption(box, image.width, image.height, *view.size))


def around(evidence, pad=0.03):
    return Box.from_list(evidence).pad(absolute=pad)


@pytest.mark.parametrize("name", sorted(PALETTE))
def test_palette_colours_are_named_as_themselves(name):
    assert name_rgb(PALETTE[name]) == name


def test_question_forms_are_recognised():
    q = parse_question("What is written on the green sign in the top right of the image?")
    assert (q.kind, q.colour, q.object, q.position) == ("colour_object", "green", "sign", (0.5, 0.0, 1.0, 0.5))
    assert parse_question("What does the grey plate say?").colour == "gray"
    assert parse_question("What is the invoice number?").key == "invoice number"
    q = parse_question('Which word follows "amber harbor" in the text?')
    assert (q.kind, q.anchor) == ("anchor", "amber harbor")
    assert parse_question('What word comes right after "quartz"?').anchor == "quartz"
    assert parse_question("Describe the scene").kind == "generic"


def test_sign_low_res_fails_and_the_right_crop_reads_it(reader):
    image, items = sign_scene(random.Random(11))
    item = items[0]
    assert ask(reader, [low_view(image)], item["question"]).text == "unknown"
    reply = ask(reader, [low_view(image), crop_view(image, around(item["evidence"][0]))], item["question"])
    assert exact_match(reply.text, item["answers"])


def test_sign_crop_of_the_wrong_place_does_not_answer(reader):
    image, items = sign_scene(random.Random(11))
    target = Box.from_list(items[0]["evidence"][0])
    # The AwaRes quadrant farthest from the sign.
    far = Box(0.5, 0.5, 1, 1) if target.center[0] < 0.5 and target.center[1] < 0.5 else Box(0, 0, 0.5, 0.5)
    if far.coverage(target) > 0:
        far = Box(0, 0.5, 0.5, 1) if target.center[1] < 0.5 else Box(0.5, 0, 1, 0.5)
    reply = ask(reader, [low_view(image), crop_view(image, far)], items[0]["question"])
    assert reply.text.replace(" ", "") != items[0]["answers"][0].replace(" ", "")


def test_colour_question_with_position_picks_the_sign_in_that_quadrant(reader):
    image = Image.new("RGB", (1600, 1200), (120, 125, 120))
    draw = ImageDraw.Draw(image)
    for (x, y), text in (((150, 150), "LEFT 11"), ((1150, 900), "RIGHT 22")):
        draw.rectangle([x, y, x + 220, y + 60], fill=PALETTE["green"])
        draw.text((x + 20, y + 12), text, font=font(30), fill=(250, 250, 250))
    top_left = ask(reader, [ImagePart(image)], "What is written on the green sign in the top left of the image?")
    bottom_right = ask(reader, [ImagePart(image)], "What does the green sign in the bottom right of the image say?")
    assert top_left.text == "LEFT 11"
    assert bottom_right.text == "RIGHT 22"


def test_form_key_value(reader):
    image, items = form_scene(random.Random(5))
    for item in items:
        reply = ask(reader, [low_view(image), crop_view(image, around(item["evidence"][0], 0.02))], item["question"])
        assert exact_match(reply.text, item["answers"]), (reply.text, item)


def test_anchor_next_word(reader):
    image, items = page_scene(random.Random(2))
    assert items
    item = items[0]
    assert ask(reader, [low_view(image)], item["question"]).text == "unknown"
    reply = ask(reader, [low_view(image), crop_view(image, around(item["evidence"][0], 0.05))], item["question"])
    assert reply.text == item["answers"][0]


def test_generic_question_reads_the_most_prominent_line_of_the_latest_crop(reader):
    image = Image.new("RGB", (1200, 800), "white")
    draw = ImageDraw.Draw(image)
    draw.text((100, 100), "small print here", font=font(24), fill="black")
    draw.text((100, 400), "BIG TITLE", font=font(80), fill="black")
    assert exact_match(ask(reader, [ImagePart(image)], "Describe this").text, "BIG TITLE")


def test_reader_requests_a_zoom_where_the_sign_is_and_says_unknown_without_tools(reader):
    image, items = sign_scene(random.Random(11))
    item = items[0]
    tool = zoom_tool({"top_left": Box(0, 0, 0.5, 0.5)}, allow_boxes=True)
    reply = ask(reader, [low_view(image)], item["question"], tools=[tool])
    assert reply.tool_calls and reply.tool_calls[0].name == "zoom"
    box = Box.from_list(reply.tool_calls[0].arguments["box"])
    assert box.coverage(Box.from_list(item["evidence"][0])) > 0.9
    assert box.area < 0.05  # a targeted look, not the whole image
    assert ask(reader, [low_view(image)], item["question"]).text == "unknown"


def test_reader_maps_a_box_to_the_smallest_named_crop_when_only_names_are_offered(reader):
    image, items = sign_scene(random.Random(11))
    item = items[0]
    crops = {"top_left": Box(0, 0, 0.5, 0.5), "top_right": Box(0.5, 0, 1, 0.5),
             "bottom_left": Box(0, 0.5, 0.5, 1), "bottom_right": Box(0.5, 0.5, 1, 1), "top": Box(0, 0, 1, 0.5)}
    reply = ask(reader, [low_view(image)], item["question"], tools=[zoom_tool(crops, allow_boxes=False)])
    name = reply.tool_calls[0].arguments["crop"]
    assert name in {"top_left", "top_right", "bottom_left", "bottom_right"}
    assert crops[name].coverage(Box.from_list(item["evidence"][0])) > 0.99


def sharp_line(text, words=None, box=(0.0, 0.0, 0.5, 0.02)):
    """A line read at full resolution; `words` are (piece, confidence) pairs joining to `text`."""
    from backends.reader.answering import Seen, ViewInput
    from backends.reader.ocr import TextLine

    words = tuple(words) if words else ((text, 0.95),)
    assert " ".join(w for w, _ in words) == text
    view = ViewInput(Image.new("RGB", (1000, 40), "white"), region=(0.0, 0.0, 1.0, 1.0), scale=1.0)
    return Seen(TextLine(text, min(c for _, c in words), (10.0, 10.0, 990.0, 30.0), words), view, box)


def test_anchor_with_an_ocr_slip_still_finds_the_next_word():
    from backends.reader.answering import _fuzzy_after

    lines = [sharp_line("mosaic ridge vertex"), sharp_line("kelpp pillar goblet satchel compass")]
    assert _fuzzy_after("kelp pillar", lines, key_value=False) == "goblet"
    assert _fuzzy_after("basalt meadow", lines, key_value=False) is None  # nothing close: no guess
    assert _fuzzy_after("pillar goblet", [sharp_line("kelp pillar goblet")], key_value=False) is None  # at the end
    form = [sharp_line("Vouchr code: RAVEN 81"), sharp_line("Order date: TC 179")]
    assert _fuzzy_after("voucher code", form, key_value=True) == "RAVEN 81"
    # The slipped anchor may be read with low confidence; the answer itself may not.
    slipped = sharp_line("kelpp pillar goblet", [("kelpp", 0.6), ("pillar", 0.9), ("goblet", 0.95)])
    assert _fuzzy_after("kelp pillar", [slipped], key_value=False) == "goblet"
    unsure = sharp_line("kelpp pillar goblet", [("kelpp", 0.9), ("pillar", 0.9), ("goblet", 0.5)])
    assert _fuzzy_after("kelp pillar", [unsure], key_value=False) is None


def test_a_garbled_word_elsewhere_on_a_line_does_not_hide_the_answer():
    from backends.reader.answering import _after_anchor

    # The crop's edge cut the line's last word: the recognizer gives it 0.31, the line's score.
    line = sharp_line("tundra ember rivermural canyon C",
                      [("tundra", 0.97), ("ember", 0.95), ("rivermural", 0.92), ("canyon", 0.96), ("C", 0.31)])
    assert not line.readable
    assert _after_anchor("tundra ember", [line.view], [line], key_value=False).answer == "rivermural"
    # The answer word itself garbled: no answer from this line.
    bad = sharp_line("tundra ember rivermural", [("tundra", 0.97), ("ember", 0.95), ("rivermural", 0.4)])
    assert _after_anchor("tundra ember", [bad.view], [bad], key_value=False).answer is None



def test_a_view_that_reads_on_after_the_anchor_beats_the_next_line_of_another():
    """A crop's edge in the gap after the anchor leaves a whole-looking line that ends at it ("ridge granite
    satchel"); the line to its right is then a later word of the text (heldout11 item s11-000022-0 answered
    "engine"). Another view that reads the anchor's own next word ("fjord") wins."""
    from backends.reader.answering import _after_anchor

    ends = sharp_line("ridge granite satchel", box=(0.17, 0.35, 0.43, 0.37))
    right = sharp_line("engine", box=(0.58, 0.35, 0.66, 0.37))
    reads_on = sharp_line("granite satchel fjord py", [("granite", 0.95), ("satchel", 0.95), ("fjord", 0.95),
                                                       ("py", 0.3)], box=(0.27, 0.35, 0.52, 0.37))
    views = [ends.view]
    assert _after_anchor("granite satchel", views, [ends, right, reads_on], key_value=False).answer == "fjord"
    # With no view reading on, the line to the right still gives the word that continues the text.
    assert _after_anchor("granite satchel", views, [ends, right], key_value=False).answer == "engine"


def test_a_crop_that_splits_a_sign_between_letters_does_not_beat_the_whole_reading(reader):
    from training.synth import make_scene

    # Real scene: the first crop ends in the gap after "MEA" of "MEADOW 22", so its reading does not touch
    # the crop's edge and looks whole (and sharper than the reading of the wider crop).
    image, items = make_scene("sign", 11000028, True)
    item = next(i for i in items if "violet tag" in i["question"])
    assert item["answers"] == ["MEADOW 22"]
    parts = [low_view(image), crop_view(image, Box(0.1057, 0.8732, 0.1657, 0.9332)),
             crop_view(image, Box(0.0997, 0.8561, 0.2558, 0.947))]
    assert exact_match(ask(reader, parts, item["question"]).text, item["answers"])
    # The premise: shown alone, the split crop reads only the part, with nothing to say it is a part.
    alone = ask(reader, [crop_view(image, Box(0.1057, 0.8732, 0.1657, 0.9332))], item["question"])
    assert alone.text == "MEA"


def test_sharing_reads_reads_each_view_once_across_questions_with_the_same_answers(monkeypatch):
    """Training's reader (`sharing_reads`) reuses what it read for the same pixels in another conversation;
    the default reader pays again for each question, as a VLM would."""
    image, items = sign_scene(random.Random(11))
    item = items[0]
    plain = ReaderBackend()
    shared = plain.sharing_reads()
    assert shared.share_reads and not plain.share_reads and shared.engine is plain.engine
    reads = []
    real = plain.engine._read_tiled
    monkeypatch.setattr(plain.engine, "_read_tiled", lambda bgr: reads.append(bgr.shape) or real(bgr))

    def ask_fresh(backend):  # new view objects each time, as a new conversation builds them
        return ask(backend, [low_view(image), crop_view(image, around(item["evidence"][0]))], item["question"])

    answers = [ask_fresh(plain).text for _ in range(2)]
    assert len(reads) == 4  # two views, read again for the second question
    answers += [ask_fresh(shared).text for _ in range(3)]
    assert len(reads) == 6  # read once more under the shared scope, then never again
    assert len(set(answers)) == 1 and exact_match(answers[0], item["answers"])


def test_training_rollouts_ask_a_reader_that_shares_reads():
    from training.rollout import BackendRollout

    rollout = BackendRollout(ReaderBackend(), None, lambda key: None)
    assert rollout.wrapper.backend.share_reads


def test_a_new_conversation_never_inherits_a_dead_conversations_cache_scope():
    """CPython reuses a freed object's id; the reader's conversation key must not, or a new question whose
    views land at the old addresses would skip its reads (and report flattering latency)."""
    from PIL import Image

    from backends.messages import ImagePart, Message, TextPart
    from backends.reader.backend import _conversation_key

    def conversation(image):
        return [Message(role="user", content=[TextPart("What is written?"), ImagePart(image)])]

    olds = [Image.new("RGB", (8, 8)) for _ in range(500)]
    old_keys = {id(image): _conversation_key(conversation(image)) for image in olds}
    assert all(_conversation_key(conversation(image)) == old_keys[id(image)] for image in olds)  # stable
    del olds
    news = [Image.new("RGB", (8, 8)) for _ in range(500)]  # CPython gives freed slots to new objects
    reused = [image for image in news if id(image) in old_keys]
    assert reused, "the interpreter reused no id; the test cannot check the key"
    assert all(_conversation_key(conversation(image)) != old_keys[id(image)] for image in reused)
