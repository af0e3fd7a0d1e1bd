"""Tool-use training data: oracle zoom calls, trajectories identical to what the tool strategy sends, the
TRL zoom environment, and the rewards on hand-built completions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from transformers.utils import get_json_schema

from backends.hf_wire import to_chat
from backends.messages import Message, Reply, ToolCall
from cropper.geometry import Box, crop_set
from cropper.images import render
from cropper.strategies import run_strategy
from cropper.tokens import token_model_for
from cropper.zoom_tool import TOOL_PROMPT, zoom_tool
from training.tool_env import (
    ToolCostWeights,
    completion_answer,
    completion_calls,
    make_environment_factory,
    tool_answer_reward,
    tool_cost_reward,
)
from training.trajectories import build_trajectory, default_config, oracle_zoom_calls, to_chat_example

AWARES = crop_set("awares9")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
    ImageDraw.Draw(img).rectangle([1000, 900, 1100, 950], fill="white")
    return img


def test_oracle_calls_pick_the_smallest_crop_that_holds_the_evidence():
    assert oracle_zoom_calls([Box(0.1, 0.1, 0.2, 0.2)], AWARES) == [{"crop": "top_left"}]
    assert oracle_zoom_calls([Box(0.45, 0.1, 0.55, 0.2)], AWARES) == [{"crop": "top"}]  # straddles two quadrants
    assert oracle_zoom_calls([Box(0.1, 0.1, 0.2, 0.2), Box(0.8, 0.8, 0.9, 0.9)], AWARES) == [
        {"crop": "top_left"}, {"crop": "bottom_right"}]
    assert oracle_zoom_calls([Box(0.05, 0.3, 0.95, 0.7)], AWARES) == [{"box": [0.03, 0.28, 0.97, 0.72]}]
    assert oracle_zoom_calls([Box(0.05, 0.3, 0.95, 0.7)], AWARES, allow_boxes=False) == [{"crop": "center"}]
    assert oracle_zoom_calls([], AWARES) == []


def test_zoom_trajectory_has_the_inference_prompt_tool_and_full_resolution_crop(image):
    traj = build_trajectory(image, "What is written on the white sign?", "HELLO", needs_zoom=True,
                            evidence=[Box(0.62, 0.74, 0.7, 0.8)], item_id="q1")
    roles = [m.role for m in traj.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert traj.messages[0].text == TOOL_PROMPT
    assert traj.tools == [zoom_tool(AWARES, allow_boxes=True)]
    assert traj.messages[2].tool_calls == [ToolCall(id="call_1", name="zoom", arguments={"crop": "bottom_right"})]
    crop = traj.messages[3].images[0].image
    expected = render(image, AWARES["bottom_right"]).image
    assert crop.size == expected.size and crop.tobytes() == expected.tobytes()
    assert traj.answer == "HELLO"
    direct = build_trajectory(image, "What colour is the sign?", "white", needs_zoom=False)
    assert [m.role for m in direct.messages] == ["system", "user", "assistant"] and direct.calls == []


class _Replay:
    """A model that says what the trajectory says, and records what it was sent."""

    provider, model, supports_tool_images = "qwen2.5-vl", "replay", True

    def __init__(self, turns):
        self.turns, self.seen = list(turns), []

    def generate(self, messages, tools=None, **options):
        self.seen.append((list(messages), tools))
        turn = self.turns.pop(0)
        return Reply(text=turn.text, tool_calls=list(turn.tool_calls))


def _same_chat(a: list[Message], b: list[Message], tools):
    chat_a, images_a = to_chat(a, tools)
    chat_b, images_b = to_chat(b, tools)
    assert chat_a == chat_b
    assert [im.tobytes() for im in images_a] == [im.tobytes() for im in images_b]


@pytest.mark.parametrize("evidence", [[Box(0.62, 0.74, 0.7, 0.8)], [Box(0.05, 0.3, 0.95, 0.7)]])
def test_trajectory_is_exactly_what_the_tool_strategy_sends(image, evidence):
    config = default_config()
    traj = build_trajectory(image, "What is written on the white sign?", "HELLO", needs_zoom=True, evidence=evidence,
                            config=config)
    model = _Replay([m for m in traj.messages if m.role == "assistant"])
    answer = run_strategy("tool", model, token_model_for("qwen2.5-vl"), image, "What is written on the white sign?",
                          config)
    assert answer.text == "HELLO"
    (first, tools_first), (second, _) = model.seen
    assert tools_first == traj.tools
    _same_chat(first, traj.messages[:2], traj.tools)
    _same_chat(second, traj.messages[:-1], traj.tools)
    example = to_chat_example(traj)
    assert example["tools"][0]["function"]["name"] == "zoom"
    assert len(example["images"]) == 2 and example["messages"][-1]["content"] == [{"type": "text", "text": "HELLO"}]


def test_environment_zooms_like_inference_and_offers_the_same_schema(image, tmp_path):
    path = tmp_path / "scene.png"
    image.save(path)
    env = make_environment_factory()()
    env.reset(image=str(path), answers=["x"])
    blocks = env.zoom(crop="top_right")
    assert [b["type"] for b in blocks] == ["text", "image"]
    assert "region [0.500, 0.000, 1.000, 0.500]" in blocks[0]["text"]
    assert blocks[1]["image"].tobytes() == render(image, AWARES["top_right"]).image.tobytes()
    boxed = env.zoom(box=[0.1, 0.2, 0.3, 0.4])
    assert boxed[1]["image"].tobytes() == render(image, Box(0.1, 0.2, 0.3, 0.4)).image.tobytes()
    assert env.crops == [AWARES["top_right"], Box(0.1, 0.2, 0.3, 0.4)]
    with pytest.raises(ValueError, match="unknown crop 'nowhere'"):
        env.zoom(crop="nowhere")
    env.reset(image=str(path))
    assert env.crops == []
    schema = get_json_schema(env.zoom)["function"]
    spec = zoom_tool(AWARES, allow_boxes=True)
    assert schema["name"] == "zoom" and schema["description"] == spec.description
    assert schema["parameters"]["properties"]["crop"]["enum"] == list(AWARES)
    assert schema["parameters"]["properties"]["crop"]["description"] == spec.parameters["properties"]["crop"]["description"]
    assert schema["parameters"]["properties"]["box"]["type"] == "array"


def _completion(answer, calls=0, hermes=False):
    messages = []
    for i in range(calls):
        if hermes:
            messages.append({"role": "assistant", "content": '<tool_call>\n{"name": "zoom", "arguments": {"crop": "top"}}\n</tool_call>'})
        else:
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "zoom", "arguments": {"crop": "top"}}}]})
        messages.append({"role": "tool", "name": "zoom", "content": [{"type": "text", "text": f"crop {i}"}]})
    messages.append({"role": "assistant", "content": answer})
    return messages


def test_rewards_on_hand_built_completions():
    completions = [_completion("HELLO", 1), _completion("HELLO", 0), _completion("nope", 2, hermes=True),
                   _completion("nope", 0), _completion("HELLO", 0)]
    answers = [["hello"]] * 5
    needs = [True, True, True, True, False]
    assert tool_answer_reward(completions, answers) == [1.0, 1.0, 0.0, 0.0, 1.0]
    w = ToolCostWeights(alpha_use=0.05, lam=0.05, alpha_miss=0.1)
    cost = tool_cost_reward(completions, needs, weights=w)
    assert cost == pytest.approx([-(0.05 + 0.05), -0.1, -(0.05 + 0.1), -0.1, 0.0])
    assert [len(completion_calls(c)) for c in completions] == [1, 0, 2, 0, 0]
    assert completion_answer(completions[2]) == "nope"

    class Env:
        crops = [Box(0, 0, 0.5, 0.5)]

    area = tool_cost_reward([completions[0]], [True], environments=[Env()], weights=ToolCostWeights(lam=1.0, per="area"))
    assert area == pytest.approx([-(0.05 + 0.25)])
