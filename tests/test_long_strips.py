"""Long strips (issue 26, finding 6): 10x40000, 40000x10 and a 800x20000 receipt are answered, not refused.

Qwen-VL's image processor (transformers' smart_resize) refuses an image over 200:1, and the reader counts
visual tokens as Qwen2.5-VL does, so every view the wrapper renders must stay within that ratio; where a
count must still fail (an image given as it is), the message names the size and the real ratio.
"""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw
from scripted import ScriptedModel

from backends.messages import ImagePart, Reply, ToolCall
from backends.reader import ReaderBackend
from cropper import AWARES9, FULL, GridCropper, ZoomWrapper, planning  # planning.within_aspect: new, looked up
from cropper.images import View
from cropper.planning import fit_crop, plan_views
from cropper.tokens import OpenAITileModel, QwenVLModel, token_model_for
from training.scenes import font

QWEN = token_model_for("reader")
LIMIT = 200


def within_limit(size: tuple[int, int]) -> bool:
    w, h = size
    return max(w, h) / min(w, h) <= LIMIT


class RecordingReader:
    """The real reader, recording the pixel size of every image it is sent (to check what really went out)."""

    provider, model, supports_tool_images = "reader", "pp-ocrv4", True

    def __init__(self) -> None:
        self.reader = ReaderBackend(share_reads=True)  # the same views across strategies are read once
        self.sizes: list[tuple[int, int]] = []

    def generate(self, messages, tools=None, **options):
        self.sizes += [p.image.size for m in messages for p in m.content if isinstance(p, ImagePart)]
        return self.reader.generate(messages, tools, **options)


def strip(size: tuple[int, int]) -> Image.Image:
    """A blank strip with dark marks along its length (so it is not one flat colour)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    long = max(size)
    for i in range(0, long, 997):
        draw.rectangle((0, i, size[0], i + 40) if size[1] > size[0] else (i, 0, i + 40, size[1]), fill="black")
    return image


@pytest.fixture(scope="module")
def receipt() -> Image.Image:
    image = Image.new("RGB", (800, 20000), "white")
    draw = ImageDraw.Draw(image)
    for i, y in enumerate(range(300, 19000, 1500)):
        draw.text((40, y), f"Item {i:02d} coffee beans", fill="black", font=font(28))
        draw.text((600, y), f"{i + 1}.50", fill="black", font=font(28))
    draw.text((40, 19600), "Total: K4521", fill="black", font=font(28))
    return image


# --- the token model and the view planner ---------------------------------------------------------------


def test_qwen_refusal_names_the_size_and_the_real_ratio():
    with pytest.raises(ValueError, match=r"10x40000 image has an aspect ratio of 4000\.0:1, over the 200:1"):
        QWEN.count(10, 40000)
    with pytest.raises(ValueError, match=r"40000x10 .* 4000\.0:1"):
        QwenVLModel.qwen3().effective_size(40000, 10)


@pytest.mark.parametrize(("size", "expected"), [((10, 40000), (200, 40000)), ((40000, 10), (40000, 200)),
                                                ((1, 1024), (6, 1024)), ((800, 20000), (800, 20000)),
                                                ((5, 1000), (5, 1000))])
def test_fit_aspect_grows_only_the_short_side_to_the_limit(size, expected):
    assert QWEN.fit_aspect(*size) == expected
    assert QWEN.count(*expected) > 0  # defined once fitted
    assert OpenAITileModel().fit_aspect(*size) == size  # no documented limit: unchanged


def test_within_aspect_stretches_the_view_and_keeps_its_box():
    view = View(AWARES9["top"], Image.new("RGB", (1, 1024), "black"))
    fitted = planning.within_aspect(view, QWEN)
    assert fitted.size == (6, 1024) and fitted.box == AWARES9["top"]
    assert planning.within_aspect(fitted, QWEN) is fitted
    assert planning.within_aspect(view, OpenAITileModel()) is view


@pytest.mark.parametrize("size", [(10, 40000), (40000, 10)])
@pytest.mark.parametrize("budget", [None, 400])
def test_plan_keeps_every_view_of_a_strip_within_the_limit(size, budget):
    image = strip(size)
    boxes = [AWARES9["top"], AWARES9["left"], AWARES9["center"], FULL]
    plan = plan_views(image, boxes, QWEN, global_side=1024, budget=budget)
    assert plan.global_view is not None and plan.crops
    assert all(within_limit(v.size) for v in plan.views), [v.size for v in plan.views]
    assert plan.tokens == sum(QWEN.count(*v.size) for v in plan.views)
    assert budget is None or plan.tokens <= budget


def test_as_used_does_not_round_a_view_past_the_limit():
    # Under max_pixels 1M, Qwen would take 100x20000 (200:1) to 56x14140 (252:1): the view stays as sent.
    small = QwenVLModel.qwen25(max_pixels=28 * 28 * 1280)
    view = fit_crop(strip((100, 20000)), FULL, small, None)
    assert view is not None and within_limit(view.size) and small.count(*view.size) > 0


# --- end to end, the offline reader behind ZoomWrapper.ask ------------------------------------------------


@pytest.mark.parametrize("size", [(10, 40000), (40000, 10)])
@pytest.mark.parametrize("strategy", ["low", "policy", "tool"])
def test_a_strip_is_answered_under_every_zooming_strategy(size, strategy):
    reader = RecordingReader()
    # grid:2 gives the policy crops whatever the strip holds; crop_side keeps the reader's OCR quick.
    wrapper = ZoomWrapper(reader, strategy=strategy, cropper=GridCropper("grid:2"), crop_side=1024)
    answer = wrapper.ask(strip(size), "What is written on the strip?")
    assert isinstance(answer.text, str) and answer.text
    assert answer.view_sizes and all(within_limit(s) for s in answer.view_sizes), answer.view_sizes
    assert reader.sizes and all(within_limit(s) for s in reader.sizes), reader.sizes
    assert answer.visual_tokens == sum(QWEN.count(*s) for s in answer.view_sizes)
    if strategy == "policy":
        assert len(answer.crops) >= 4  # the crops were rendered and sent, not dropped


@pytest.mark.parametrize("size", [(10, 40000), (40000, 10)])
def test_zoom_calls_on_a_strip_get_crops_within_the_limit(size):
    zoom = lambda i, args: Reply(tool_calls=[ToolCall(f"c{i}", "zoom", args)])  # noqa: E731
    model = ScriptedModel([zoom(1, {"crop": "top"}), zoom(2, {"box": [0, 0, 1, 0.9]}), Reply(text="done")])
    answer = ZoomWrapper(model, strategy="tool", max_rounds=2).ask(strip(size), "What is written?")
    assert answer.text == "done" and len(answer.crops) == 2
    sent = [p.image.size for messages, _ in model.calls for m in messages for p in m.content
            if isinstance(p, ImagePart)]
    assert len(sent) >= 3 and all(within_limit(s) for s in sent), sent
    assert max(max(s) for s in sent) >= 20000  # the crops kept their full resolution along the strip


@pytest.mark.parametrize("strategy", ["low", "policy", "tool", "full"])
def test_a_long_receipt_is_answered_under_every_strategy(receipt, strategy):
    reader = RecordingReader()
    answer = ZoomWrapper(reader, strategy=strategy).ask(receipt, "What is the total?")
    assert isinstance(answer.text, str) and answer.text
    assert reader.sizes and all(within_limit(s) for s in reader.sizes), reader.sizes
    if strategy != "low":  # the low view (41x1024) is too small to read; the crops and the original are not
        assert answer.text == "K4521"
    if strategy == "full":
        assert answer.view_sizes == [(800, 20000)]


def test_full_on_a_strip_sends_it_as_it_is_and_counts_it_at_a_size_it_could_be_sent_at():
    # `full` is the plain request: the strip goes as it is. It used to fail counting its tokens, and the
    # reader's OCR took minutes on its thin tiles (RapidOCR scales their short side up to 736 px).
    image = strip((10, 40000))
    backend = RecordingReader()
    answer = ZoomWrapper(backend, strategy="full").ask(image, "What is written on the strip?")
    assert backend.sizes == [(10, 40000)] and answer.text
    assert answer.visual_tokens == QWEN.count(*QWEN.fit_aspect(10, 40000))
