"""The `policy` strategy's retry: when the model abstains, it is shown the cropper's next-best crops.

On the real reader (which answers "unknown" when its views do not hold the answer), on a scripted model
for the conversation's shape, and on the selection functions and a tiny `CropPolicy`.
"""

from __future__ import annotations

import random

import pytest
import torch
from scripted import ScriptedModel

from backends.messages import ImagePart, Reply, ToolCall
from cropper import AWARES9, Box, GridCropper, ZoomWrapper
from cropper.abstain import is_abstention
from cropper.crop_selection import Decision, more_crops
from cropper.planning import plan_views
from cropper.policy import CropPolicy, PolicyConfig
from cropper.scoring import exact_match
from cropper.tokens import token_model_for
from training.scenes import sign_scene

QWEN = token_model_for("qwen2.5-vl")


@pytest.mark.parametrize("text", ["unknown", "Unknown.", "", "  N/A ", "I cannot read the text on the sign.",
                                  "I'm unable to determine the policy number from this image.",
                                  "The label is too small to be legible.", "Sorry, I can't make out the text.",
                                  "The text is not legible at this resolution.", "I'm unable to identify the code.",
                                  "I\u2019m unable to read it", "I can\u2019t make out the text", "Cannot determine",
                                  "I'm not able to read the label", "It's not possible to determine the number."])
def test_refusals_are_abstentions(text):
    assert is_abstention(text)


@pytest.mark.parametrize("text", ["S9-3675", "Unknown Pleasures", "It is not a cat", "None", "no",
                                  "The tracking code is 27/11/2025", "The answer is not 5", "Na", "Not visible",
                                  "No, the logo is not visible", "The water is not clear",
                                  "Yes, it is possible to see the sign"])
def test_answers_are_not_abstentions(text):
    assert not is_abstention(text)


def test_a_long_answer_with_a_caveat_is_not_an_abstention():
    text = "The sign reads 56-DD4. " + "Some of the smaller print around it is not legible, " * 4
    assert not is_abstention(text)


@pytest.fixture(scope="module")
def scene():
    image, items = sign_scene(random.Random(31))
    return image, items[0]


class MissThenHit:
    """A cropper whose first crop misses the sign and whose next crop holds it."""

    def __init__(self, miss: Box, hit: Box):
        self.miss, self.hit = miss, hit
        self.shown: list[list[Box]] = []

    def propose(self, image, question, k=None, budget=None):
        return [self.miss]

    def propose_more(self, image, question, shown, k=None, budget=None):
        self.shown.append(list(shown))
        return [] if self.hit in shown else [self.hit]


def _around(box: Box, margin: float = 0.03) -> Box:
    return Box(max(0.0, box.x1 - margin), max(0.0, box.y1 - margin), min(1.0, box.x2 + margin),
               min(1.0, box.y2 + margin))


def _far_from(box: Box) -> Box:
    return Box(0.0, 0.0, 0.2, 0.2) if box.center[0] > 0.5 or box.center[1] > 0.5 else Box(0.8, 0.8, 1.0, 1.0)


def test_the_reader_abstains_on_a_miss_and_answers_from_the_next_crops(scene):
    image, item = scene
    evidence = Box.from_list(item["evidence"][0])
    miss, hit = _far_from(evidence), _around(evidence)
    assert miss.coverage(evidence) == 0

    plain = ZoomWrapper("reader", strategy="policy", cropper=MissThenHit(miss, hit), abstain_retries=0)
    first = plain.ask(image, item["question"])
    assert is_abstention(first.text) and first.rounds == 0 and first.crops == [miss]

    cropper = MissThenHit(miss, hit)
    answer = ZoomWrapper("reader", strategy="policy", cropper=cropper).ask(image, item["question"])
    assert exact_match(answer.text, item["answers"])
    assert answer.rounds == 1 and answer.crops == [miss, hit]
    assert cropper.shown == [[miss]]  # asked once, told what it had already shown
    # Global view + two crops, each counted once; the retry adds only the new crop's tokens.
    assert len(answer.view_sizes) == 3
    assert answer.visual_tokens == sum(QWEN.count(w, h) for w, h in answer.view_sizes)
    assert answer.visual_tokens - first.visual_tokens == QWEN.count(*answer.view_sizes[-1])
    assert any("retried with 1 more crop" in note for note in answer.notes)


def test_the_retry_continues_the_conversation_with_only_the_new_crops(scene):
    image, _ = scene
    model = ScriptedModel(["I can't read it.", "unknown", "42"])
    answer = ZoomWrapper(model, strategy="policy", cropper=GridCropper("awares9", k=2)).ask(image, "What is it?")
    assert answer.text == "42" and answer.rounds == 2
    assert answer.crops == list(AWARES9.values())[:6]
    first, _, third = (messages for messages, _tools in model.calls)
    assert len(first) == 1 and sum(isinstance(p, ImagePart) for p in first[0].content) == 3  # global + 2 crops
    assert [m.role for m in third] == ["user", "assistant", "user", "assistant", "user"]
    assert third[1].text == "I can't read it."
    new_images = [p for p in third[-1].content if isinstance(p, ImagePart)]
    assert len(new_images) == 2 and new_images[0].label.startswith("Crop 5:")
    assert third[-1].text.strip().endswith("What is it?")


def test_no_retry_after_an_answer_or_beyond_the_limit_or_the_budget(scene):
    image, _ = scene
    answered = ScriptedModel(["42"])
    ZoomWrapper(answered, strategy="policy", cropper=GridCropper("awares9", k=2)).ask(image, "What?")
    assert len(answered.calls) == 1

    stubborn = ScriptedModel(["unknown"] * 3)
    answer = ZoomWrapper(stubborn, strategy="policy", cropper=GridCropper("awares9", k=2),
                         abstain_retries=1).ask(image, "What?")
    assert len(stubborn.calls) == 2 and answer.rounds == 1 and answer.text == "unknown"

    # A budget that the global view and the first crop use up exactly leaves nothing for a retry...
    first_cost = plan_views(image, [AWARES9["top_left"]], QWEN, global_side=640).tokens
    tight = ScriptedModel(["unknown"])
    answer = ZoomWrapper(tight, strategy="policy", cropper=GridCropper("awares9", k=1), budget=first_cost,
                         global_side=640).ask(image, "What?")
    assert len(tight.calls) == 1 and answer.visual_tokens == first_cost
    assert any("no visual-token budget left" in n for n in answer.notes)
    # ...and what a larger budget leaves goes to the retry, whose crop is shrunk to fit it.
    roomier = ScriptedModel(["unknown", "42"])
    answer = ZoomWrapper(roomier, strategy="policy", cropper=GridCropper("awares9", k=1), budget=first_cost + 300,
                         global_side=640).ask(image, "What?")
    assert len(roomier.calls) == 2 and first_cost < answer.visual_tokens <= first_cost + 300


def test_a_reply_that_calls_a_tool_is_not_retried(scene):
    image, _ = scene
    model = ScriptedModel([Reply(tool_calls=[ToolCall("c1", "zoom", {"crop": "center"})])])
    answer = ZoomWrapper(model, strategy="policy", cropper=GridCropper("awares9", k=1)).ask(image, "What?")
    assert len(model.calls) == 1 and answer.rounds == 0


def test_compare_times_propose_more_like_propose():
    import time

    from cropper.ab.metering import TimedCropper

    class Slow:
        def propose(self, image, question, k=None, budget=None):
            return []

        def propose_more(self, image, question, shown, k=None, budget=None):
            time.sleep(0.05)
            return [Box(0, 0, 1, 1)]

    timed = TimedCropper(Slow())
    assert timed.propose_more(None, "q", []) == [Box(0, 0, 1, 1)]
    assert timed.seconds >= 0.05 and timed.thread_seconds() >= 0.05
    assert hasattr(TimedCropper(GridCropper("awares9")), "propose_more")  # passed through
    assert not hasattr(TimedCropper(object()), "propose_more")  # absent stays absent: no retry


def test_croppers_without_propose_more_are_not_retried(scene):
    image, _ = scene

    class OneCrop:
        def propose(self, image, question, k=None, budget=None):
            return [Box(0, 0, 0.5, 0.5)]

    model = ScriptedModel(["unknown"])
    answer = ZoomWrapper(model, strategy="policy", cropper=OneCrop()).ask(image, "What?")
    assert len(model.calls) == 1 and answer.text == "unknown"


def test_negative_abstain_retries_is_a_clear_error():
    with pytest.raises(ValueError, match="abstain_retries"):
        ZoomWrapper("reader", strategy="policy", abstain_retries=-1)


def test_more_crops_skips_what_was_shown_and_ignores_the_gate():
    boxes = [Box(0, 0, .5, .5), Box(.1, .1, .2, .2), Box(.5, 0, 1, .5), Box(.52, .02, .98, .5), Box(.5, .5, 1, 1)]
    decision = Decision(gate=0.0, names=list("abcde"), scores=[5, 4, 3, 2, 1], boxes=boxes)
    shown = [Box(0, 0, .5, .5)]
    # b lies inside the shown crop; d overlaps c heavily (NMS); a was shown.
    assert more_crops(decision, shown, k=3, nms_iou=0.5) == [boxes[2], boxes[4]]
    assert more_crops(decision, shown, k=1, nms_iou=0.5) == [boxes[2]]
    assert more_crops(decision, boxes, k=3, nms_iou=0.5) == []


def test_the_policy_proposes_more_after_its_gate_said_none():
    torch.manual_seed(0)
    config = PolicyConfig(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash",
                          gate_threshold=1.01, k=3, mass=None, max_area=None)
    policy = CropPolicy(config)
    image, items = sign_scene(random.Random(5))
    question = items[0]["question"]
    assert policy.propose(image, question) == []  # a threshold no probability reaches: the gate always says no
    first = policy.propose_more(image, question, shown=[])
    assert len(first) == 3
    second = policy.propose_more(image, question, shown=first)
    assert second and not any(s.coverage(b) >= 0.9 or s.iou(b) > config.nms_iou for s in first for b in second)


def test_text_regions_offer_the_zones_they_left_out(scene):
    from cropper import TextRegionCropper

    image, item = scene
    cropper = TextRegionCropper(max_area=0.05)
    first = cropper.propose(image, "What is the total?")
    more = cropper.propose_more(image, "What is the total?", shown=first)
    assert first and more
    assert not any(s.coverage(b) >= 0.9 for s in first for b in more)
    assert sum(b.area for b in more[1:]) <= 0.05
    # A question naming a colour: past its signs, the first call adds zones only within the colour's tight
    # area; the retry widens to `max_area` for zones of any kind.
    cropper = TextRegionCropper(max_area=0.25, colour_area=0.001)
    question = item["question"]
    first = cropper.propose(image, question)
    more = cropper.propose_more(image, question, shown=first)
    assert sum(b.area for b in more[1:]) > 0.01  # past the first crop, more than the colour cap allows
    assert not any(s.coverage(b) >= 0.9 for s in first for b in more)
