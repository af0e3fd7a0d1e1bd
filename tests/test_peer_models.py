"""The peers' models inside cropper: AwaRes's GET_CROPS protocol and CropVLM-style VLM croppers."""

from __future__ import annotations

import json
import random
import re

import pytest
from compare_data import make_dataset
from fake_servers import FakeOpenAIServer
from PIL import Image

from backends.messages import ImagePart, Message, Reply, TextPart
from cropper import ZoomWrapper, make_cropper
from cropper.awares import AWARES_CROP_IDS, AWARES_SYSTEM_PROMPT, parse_get_crops, run_awares
from cropper.geometry import AWARES9, FULL, Box
from cropper.images import render
from cropper.tokens import token_model_for
from cropper.vlm_cropper import CropReplyError, VLMCropper, parse_crop_reply

QWEN = token_model_for("qwen2.5-vl")


class Scripted:
    """A model that says the scripted replies in turn and records every conversation it was sent."""

    provider, model, supports_tool_images = "qwen2.5-vl", "scripted", True

    def __init__(self, *replies: str):
        self.replies, self.seen = list(replies), []

    def generate(self, messages, tools=None, **options):
        self.seen.append(list(messages))
        return Reply(text=self.replies.pop(0))


@pytest.fixture(scope="module")
def image():
    rng = random.Random(0)
    return Image.frombytes("RGB", (1600, 1200), bytes(rng.getrandbits(8) for _ in range(1600 * 1200 * 3)))


@pytest.mark.parametrize("reply,ids", [
    ("GET_CROPS: ['3']", ["3"]),
    ("GET_CROPS:['0', '5']", ["0", "5"]),
    ("I need detail. GET_CROPS : [4, 4, 8]", ["4", "8"]),
    ("GET_CROPS: ['all']", ["all"]),
])
def test_get_crops_replies_parse_to_crop_ids(reply, ids):
    assert parse_get_crops(reply) == (ids, None)


def test_malformed_get_crops_replies_say_what_is_wrong():
    assert parse_get_crops("The sign says STOP.") is None
    ids, problem = parse_get_crops("GET_CROPS: ['9', '12']")
    assert ids == [] and "unknown crop id(s) ['9', '12']" in problem
    ids, problem = parse_get_crops("GET_CROPS please")
    assert ids == [] and "without a [list]" in problem
    ids, problem = parse_get_crops("GET_CROPS: []")
    assert ids == [] and "no crop id" in problem


def test_awares_conversation_has_the_plugin_format(image):
    model = Scripted("GET_CROPS: ['3', '5']", "STOP")
    answer = run_awares(model, QWEN, image, "What does the sign say?")
    first, second = model.seen
    assert first[0].role == "system" and first[0].text == AWARES_SYSTEM_PROMPT
    assert "'4': 'center'" in AWARES_SYSTEM_PROMPT and "'all': 'all'" in AWARES_SYSTEM_PROMPT
    low, question = first[1].content
    assert isinstance(low, ImagePart) and low.image.size == (800, 600) and question.text == "What does the sign say?"
    assert second[2].role == "assistant" and second[2].text == "GET_CROPS: ['3', '5']"
    crops = second[3].content
    assert second[3].role == "user" and all(isinstance(p, ImagePart) and p.label is None for p in crops)
    for part, crop_id in zip(crops, ["3", "5"], strict=True):
        assert part.image.tobytes() == render(image, AWARES_CROP_IDS[crop_id]).image.tobytes()  # full resolution
    assert answer.text == "STOP" and answer.crops == [AWARES9["bottom_right"], AWARES9["top"]] and answer.rounds == 1
    assert answer.visual_tokens == sum(QWEN.count(w, h) for w, h in answer.view_sizes)


def test_awares_fallbacks_and_direct_answers(image):
    bad = Scripted("GET_CROPS: ['9']", "STOP")
    answer = ZoomWrapper(bad, strategy="tool", protocol="awares").ask(image, "What does the sign say?")
    assert answer.crops == [FULL] and "unknown crop id" in answer.notes[0] and "full image" in answer.notes[1]
    direct = Scripted("It says STOP.")
    answer = ZoomWrapper(direct, strategy="tool", protocol="awares").ask(image, "What does the sign say?")
    assert answer.text == "It says STOP." and answer.crops == [] and len(direct.seen) == 1
    with pytest.raises(ValueError, match="unknown protocol"):
        ZoomWrapper(direct, strategy="tool", protocol="getcrops")


def test_awares_conversation_runs_through_a_tiny_qwen25vl(tmp_path, image):
    from tiny_models import VISION_ONLY_TEMPLATE, build_tiny_qwen25vl

    from backends.hf import TransformersBackend

    backend = TransformersBackend(str(build_tiny_qwen25vl(tmp_path / "tiny", chat_template=VISION_ONLY_TEMPLATE)),
                                  max_new_tokens=8)
    answer = ZoomWrapper(backend, strategy="tool", protocol="awares").ask(image, "What does the sign say?")
    assert answer.strategy == "tool" and len(answer.replies) in (1, 2)
    # The second turn of the protocol (crops only, no captions) renders and runs on the real processor.
    small = image.resize((400, 300))
    conversation = [Message("system", [TextPart(AWARES_SYSTEM_PROMPT)]),
                    Message("user", [ImagePart(small.resize((200, 150))), TextPart("What does the sign say?")]),
                    Message("assistant", [TextPart("GET_CROPS: ['3']")]),
                    Message("user", [ImagePart(render(small, AWARES_CROP_IDS["3"]).image)])]
    assert isinstance(backend.generate(conversation).text, str)


@pytest.mark.parametrize("reply", [
    "[25, 50, 75, 100].",                       # CropVLM: integer percent
    "The region is [0.25, 0.5, 0.75, 1.0]",     # unit
    '{"bbox_2d": [250, 500, 750, 1000]}',       # Qwen's 0-1000
    "[128, 192, 384, 384] px",                  # pixels of the 512x384 view
])
def test_crop_replies_in_every_convention_parse_to_the_same_box(reply):
    assert parse_crop_reply(reply, (512, 384)) == [Box(0.25, 0.5, 0.75, 1.0)]


def test_not_needed_and_garbage_replies():
    assert parse_crop_reply("Not needed.", (512, 384)) == []
    assert parse_crop_reply("  not needed ", (512, 384)) == []
    assert parse_crop_reply("the red thing on the left", (512, 384)) == []
    with pytest.raises(CropReplyError, match="neither a box nor 'Not needed.'"):
        parse_crop_reply("the red thing on the left", (512, 384), on_garbage="raise")
    rng = random.Random(1)
    alphabet = "[](){}0123456789.,- abcxyz%px\n"
    for _ in range(300):  # never anything but boxes, [] or CropReplyError
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            boxes = parse_crop_reply(text, (512, 384), on_garbage="raise")
        except CropReplyError:
            continue
        assert all(isinstance(b, Box) and 0 <= b.x1 < b.x2 <= 1 and 0 <= b.y1 < b.y2 <= 1 for b in boxes)


def test_vlm_cropper_sends_cropvlm_prompt_on_a_512_view(image):
    model = Scripted("[10, 20, 31, 41].")
    cropper = VLMCropper(model)
    assert cropper.propose(image, "what is written on the sign?") == [Box(0.10, 0.20, 0.31, 0.41)]
    (message,) = model.seen[0]
    view, text = message.content
    assert max(view.image.size) == 512
    assert text.text == "What is written on the sign?\nOutline the region in the image that would help answer this question."
    assert isinstance(make_cropper("vlm:reader"), VLMCropper)


def test_compare_runs_a_vlm_cropper_beside_other_croppers_offline(tmp_path):
    from cropper.ab import read_results
    from cropper.cli import main

    data = make_dataset(tmp_path / "d", 4)
    boxes = {row["question"]: row["evidence"][0] for row in map(json.loads, data.read_text().splitlines())}
    questions = {row["question"] for row in map(json.loads, data.read_text().splitlines())}
    assert len(questions) == 4

    def cropvlm(body):  # a CropVLM-style cropper served on 127.0.0.1: the evidence with a margin, integer percent
        text = json.dumps(body["messages"])
        question = next(q for q in boxes if q.lower() in text.lower())
        x1, y1, x2, y2 = boxes[question]
        box = [max(0, int(x1 * 100) - 3), max(0, int(y1 * 100) - 3), min(100, int(x2 * 100) + 4), min(100, int(y2 * 100) + 4)]
        return {"text": f"[{box[0]}, {box[1]}, {box[2]}, {box[3]}]."}

    with FakeOpenAIServer(responder=cropvlm) as server:
        spec = f"vlm:openai-compatible:{server.url}#cropvlm"
        assert main(["compare", "--data", str(data), "--out", str(tmp_path / "run"), "--global-side", "160",
                     "--strategies", "low,full,policy,grid=policy:grid:2", "--cropper", spec, "--no-report"]) == 0
        assert len(server.requests) == 4
    rows = read_results(tmp_path / "run" / "results.jsonl")
    by = {}
    for row in rows:
        by.setdefault(row["strategy"], []).append(row)
    assert set(by) == {"low", "full", "policy", "grid"}
    assert all(r["correct"] for r in by["policy"])  # the VLM cropper's crops hold the text: the reader reads it
    assert sum(r["correct"] for r in by["low"]) == 0
    assert all(len(r["crops"]) == 1 and r["evidence_hit"] for r in by["policy"])
    assert all(len(r["crops"]) == 4 for r in by["grid"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["strategies"]["policy"]["token_ratio_vs_full"] < summary["strategies"]["grid"]["token_ratio_vs_full"]
    assert re.search(r"vlm:openai-compatible", json.loads((tmp_path / "run" / "run.json").read_text())["cropper"])
