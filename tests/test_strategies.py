"""Strategies, budgets and the zoom tool, on the real reader and on a scripted model for edge cases."""

from __future__ import annotations

import random

import pytest
from PIL import Image
from scripted import ScriptedModel

from backends.messages import Reply, ToolCall
from cropper import AWARES9, Box, GridCropper, ZoomWrapper
from cropper.planning import plan_views
from cropper.scoring import exact_match
from cropper.tokens import token_model_for
from cropper.zoom_tool import parse_zoom_arguments, zoom_tool
from training.scenes import sign_scene

QWEN = token_model_for("qwen2.5-vl")


def test_zoom_tool_schema_lists_named_crops_and_boxes():
    tool = zoom_tool(AWARES9)
    props = tool.parameters["properties"]
    assert tool.name == "zoom"
    assert props["crop"]["enum"] == list(AWARES9)
    assert "top_left=[0.0, 0.0, 0.5, 0.5]" in props["crop"]["description"]
    assert props["box"]["minItems"] == props["box"]["maxItems"] == 4
    assert "crop" not in zoom_tool(None).parameters["properties"]
    with pytest.raises(ValueError):
        zoom_tool(None, allow_boxes=False)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"crop": "top_right"}, Box(0.5, 0.0, 1.0, 0.5)),
        ({"crop": "CENTER"}, Box(0.25, 0.25, 0.75, 0.75)),
        ({"box": [0.1, 0.2, 0.3, 0.4]}, Box(0.1, 0.2, 0.3, 0.4)),
        ({"box": "[0.1, 0.2, 0.3, 0.4]"}, Box(0.1, 0.2, 0.3, 0.4)),
        ({"box": [10, 20, 30, 40]}, Box(0.1, 0.2, 0.3, 0.4)),  # percentages
        ({"box": [0.3, 0.4, 0.1, 0.2]}, Box(0.1, 0.2, 0.3, 0.4)),  # corners swapped
    ],
)
def test_zoom_arguments_parse(arguments, expected):
    got = parse_zoom_arguments(arguments, AWARES9)
    assert got.to_list() == pytest.approx(expected.to_list())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"crop": "middle"}, "unknown crop"), ({"box": [1, 2]}, "4 numbers"), ({"box": ["a", 1, 2, 3]}, "4 numbers"),
     ({}, "needs"), ({"box": [0.2, 0.2, 0.2, 0.5]}, "empty")],
)
def test_bad_zoom_arguments_explain_themselves(arguments, message):
    with pytest.raises(ValueError, match=message):
        parse_zoom_arguments(arguments, AWARES9)


def test_plan_cuts_crops_from_the_original_and_respects_the_budget():
    image = Image.new("RGB", (4000, 3000), "white")
    boxes = [AWARES9["top_left"], AWARES9["bottom_right"]]
    free = plan_views(image, boxes, QWEN, global_side=1024)
    assert free.global_view.size == (1024, 768)
    assert [c.size for c in free.crops] == [(2000, 1500), (2000, 1500)]  # full resolution
    budget = 3000
    tight = plan_views(image, boxes, QWEN, global_side=1024, budget=budget)
    counted = sum(QWEN.count(*v.size) for v in tight.views)
    assert counted == tight.tokens <= budget
    assert len(tight.crops) == 2 and all(max(c.size) < 2000 for c in tight.crops)


def test_plan_shrinks_the_global_view_when_the_budget_is_below_it():
    image = Image.new("RGB", (4000, 3000), "white")
    plan = plan_views(image, [], QWEN, global_side=1024, budget=300)
    assert plan.tokens <= 300
    assert max(plan.global_view.size) < 1024


@pytest.fixture(scope="module")
def scene():
    image, items = sign_scene(random.Random(31))
    return image, items[0]


def test_policy_with_a_grid_cropper_sends_global_view_and_crops(scene):
    image, item = scene
    wrapper = ZoomWrapper("reader", strategy="policy", cropper=GridCropper("awares9", k=4))
    answer = wrapper.ask(image, item["question"])
    assert answer.crops == list(AWARES9.values())[:4]
    assert len(answer.view_sizes) == 5
    assert answer.visual_tokens == sum(QWEN.count(w, h) for w, h in answer.view_sizes)
    assert exact_match(answer.text, item["answers"])  # the quadrants hold every sign at full resolution


def test_tool_strategy_on_the_reader_zooms_where_the_evidence_is(scene):
    image, item = scene
    answer = ZoomWrapper("reader", strategy="tool").ask(image, item["question"])
    assert exact_match(answer.text, item["answers"])
    assert 1 <= answer.rounds <= 3
    evidence = Box.from_list(item["evidence"][0])
    assert any(c.coverage(evidence) > 0.9 for c in answer.crops)


def test_tool_strategy_respects_the_budget(scene):
    image, item = scene
    answer = ZoomWrapper("reader", strategy="tool", budget=1200).ask(image, item["question"])
    assert answer.visual_tokens <= 1200


def test_tool_loop_returns_errors_to_the_model_and_stops_after_max_rounds(scene):
    image, _ = scene
    zoom = lambda args, i: Reply(tool_calls=[ToolCall(f"c{i}", "zoom", args)])  # noqa: E731
    model = ScriptedModel([zoom({"crop": "nowhere"}, 1), zoom({"box": [0, 0, 0.5, 0.5]}, 2), Reply(text="done")])
    answer = ZoomWrapper(model, strategy="tool", max_rounds=2).ask(image, "What?")
    assert answer.text == "done" and answer.rounds == 2
    assert answer.crops == [Box(0, 0, 0.5, 0.5)]
    first_result = model.calls[1][0][-1]
    assert first_result.role == "tool" and "unknown crop" in first_result.text
    # The last call keeps the tool defined (the history holds calls to it) and forbids calling it.
    assert [t.name for t in model.calls[-1][1]] == ["zoom"] and model.options[-1]["tool_choice"] == "none"
    assert all("tool_choice" not in o for o in model.options[:-1])


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy"):
        ZoomWrapper("reader", strategy="zoomy")
