"""ZoomWrapper over a local transformers VLM (a tiny random Qwen2.5-VL built offline)."""

from __future__ import annotations

import pytest
from PIL import Image
from tiny_models import build_tiny_qwen25vl

from backends import user
from cropper import AWARES9, GridCropper, ZoomWrapper
from cropper.tokens import QwenVLModel
from cropper.zoom_tool import zoom_tool


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen")))


def test_policy_runs_through_the_real_processor_and_counts_with_the_models_pixel_bounds(tiny):
    wrapper = ZoomWrapper("hf:" + tiny, strategy="policy", cropper=GridCropper("grid:2", k=2), global_side=224,
                          crop_side=112, max_new_tokens=4)
    backend = wrapper.backend
    answer = wrapper.ask(Image.new("RGB", (900, 600), "gray"), "What is written on the sign?")
    bounds = QwenVLModel.qwen25(min_pixels=backend.min_pixels, max_pixels=backend.max_pixels)
    assert answer.visual_tokens == sum(bounds.count(w, h) for w, h in answer.view_sizes)
    # The processor really produced that many image tokens for the three views.
    assert answer.replies[0].usage.image_tokens == answer.visual_tokens
    assert len(answer.crops) == 2


def test_tool_strategy_offers_zoom_to_a_local_model(tiny):
    wrapper = ZoomWrapper("hf:" + tiny, strategy="tool", global_side=224, max_rounds=1, max_new_tokens=4)
    answer = wrapper.ask(Image.new("RGB", (900, 600), "white"), "What does the red tag say?")
    assert answer.strategy == "tool" and answer.replies
    # The zoom tool the strategy offers is rendered into the local model's prompt.
    prompt, _ = wrapper.backend.render([user("q")], tools=[zoom_tool(AWARES9)])
    assert '"zoom"' in prompt and "top_left" in prompt
