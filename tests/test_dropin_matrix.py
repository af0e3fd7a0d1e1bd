"""Issue 25, "Done when": `ZoomWrapper(openai.OpenAI())` and `ZoomWrapper(anthropic.Anthropic())` keep their SDK's
behaviour across the calls users make, and never send what the provider would refuse or bill more.

Each case runs twice against the same fake provider (real SDK, fake only at the wire): once on the plain client,
once wrapped, with the `policy` and the `tool` strategy. For every case:
- the wrapped call returns what the plain one does (the SDK's own response type, or its stream items);
- every body the wrapped call sent passes the official schema (the `oai`/`ant` fixtures check it) and the
  provider's documented limits (`fake_wire_checks`, each rule with its source; the fake refuses a body that
  breaks one, so the call would raise);
- no body of the wrapped call holds more visual tokens, counted with the provider's token model, than the
  plain call's body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anthropic
import fake_wire_checks as checks
import openai
import pytest
from dropin_support import anthropic_client, anthropic_image, encoded, openai_client, openai_image, photo, zoom_call
from PIL import Image

from cropper import GridCropper, ZoomWrapper
from cropper.tokens import token_model_for

OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o", "claude-sonnet-4-5"


@dataclass
class Case:
    """One call as a user writes it: the SDK method's keyword arguments and what the model replies."""

    kwargs: dict[str, Any]
    #: Extra replies the model gives in the wrapped `tool` run before its answer (a zoom call by default).
    zooms: list[dict] = field(default_factory=lambda: [{"crop": "top_left"}])
    model: str = OPENAI_MODEL
    #: True where zooming cannot be cheaper than the plain call, so the request must go out unchanged.
    passthrough: bool = False
    #: True where the provider refuses the plain call for one of its documented limits.
    refused_plain: bool = False


def _scene(width: int = 2400, height: int = 1600, seed: int = 1) -> Image.Image:
    return photo(width, height, seed=seed)


def oimg(image: Image.Image) -> dict:
    """An OpenAI image part as users send photos: JPEG."""
    return openai_image(image, "JPEG", quality=80)


def aimg(image: Image.Image) -> dict:
    """An Anthropic image block as users send photos: JPEG."""
    return anthropic_image(image, "JPEG", quality=80)


def _photo_12mp() -> Image.Image:
    return photo(4000, 3000, seed=12)


WEATHER_OPENAI = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                                   "parameters": {"type": "object",
                                                                  "properties": {"city": {"type": "string"}},
                                                                  "required": ["city"]}}}
WEATHER_ANTHROPIC = {"name": "get_weather", "description": "Weather in a city.",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]}}


def openai_case(name: str) -> Case:
    ask = {"type": "text", "text": "What is written on the sign?"}
    if name == "multi_turn":
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Here is a photo."}, oimg(_scene())]},
                    {"role": "assistant", "content": "I see a street with a sign."},
                    {"role": "user", "content": "What is written on the sign?"}]
        return Case({"messages": messages})
    if name == "two_images":
        return Case({"messages": [{"role": "user", "content": [ask, oimg(_scene()),
                                                               oimg(_scene(2000, 1500, seed=2))]}]},
                    zooms=[{"crop": "top_left", "image": 2}])
    if name == "user_tools":
        return Case({"tools": [WEATHER_OPENAI], "parallel_tool_calls": False,
                     "messages": [{"role": "user", "content": [ask, oimg(_scene())]}]})
    if name == "streaming":
        return Case({"stream": True, "stream_options": {"include_usage": True},
                     "messages": [{"role": "user", "content": [ask, oimg(_scene())]}]})
    if name.startswith("jpeg_12mp"):
        # gpt-4o bills any 4:3 photo over 1024x768 at its 1024x768 cost (765 tokens), the price of the 1024-px
        # global view alone: zooming cannot be cheaper, so the call goes out as it came. gpt-4.1-mini's
        # 32-px patches bill the photo at 2353 tokens: there it is zoomed.
        messages = [{"role": "user", "content": [ask, oimg(_photo_12mp())]}]
        if name == "jpeg_12mp":
            return Case({"messages": messages}, passthrough=True)
        return Case({"messages": messages}, model="gpt-4.1-mini")
    if name == "wide_12000x2000":
        return Case({"messages": [{"role": "user", "content": [ask, oimg(photo(12000, 2000, seed=3))]}]},
                    zooms=[{"crop": "top"}])
    if name == "responses":
        media, data = encoded(_scene(), "JPEG", quality=80)
        return Case({"input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is written on the sign?"},
            {"type": "input_image", "image_url": f"data:{media};base64,{data}", "detail": "auto"}]}]})
    raise KeyError(name)


def anthropic_case(name: str) -> Case:
    ask = {"type": "text", "text": "What is written on the sign?"}
    base = {"max_tokens": 256}
    if name == "multi_turn":
        messages = [{"role": "user", "content": [aimg(_scene()), {"type": "text", "text": "A photo."}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "I see a street with a sign."}]},
                    {"role": "user", "content": "What is written on the sign?"}]
        return Case({**base, "system": "Be brief.", "messages": messages})
    if name == "two_images":
        return Case({**base, "messages": [{"role": "user", "content": [
            aimg(_scene()), aimg(_scene(2000, 1500, seed=2)), ask]}]},
            zooms=[{"crop": "top_left", "image": 2}])
    if name == "user_tools":
        return Case({**base, "tools": [WEATHER_ANTHROPIC],
                     "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
                     "messages": [{"role": "user", "content": [aimg(_scene()), ask]}]})
    if name == "streaming":
        return Case({**base, "stream": True, "messages": [{"role": "user", "content": [aimg(_scene()), ask]}]})
    if name == "thinking":
        return Case({"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
                     "messages": [{"role": "user", "content": [aimg(_scene()), ask]}]})
    if name == "jpeg_12mp":
        return Case({**base, "messages": [{"role": "user", "content": [aimg(_photo_12mp()), ask]}]},
                    refused_plain=True)
    if name == "wide_12000x2000":
        return Case({**base, "messages": [{"role": "user", "content": [aimg(photo(12000, 2000, seed=3)), ask]}]},
                    zooms=[{"crop": "top"}], refused_plain=True)
    raise KeyError(name)


# --- visual tokens in a captured body, with the provider's own token model ---------------------------------


def openai_visual_tokens(body: dict) -> int:
    model = token_model_for("openai", body["model"])
    total = 0
    for item in body.get("messages") or body.get("input") or []:
        parts = item.get("output") if item.get("type") == "function_call_output" else item.get("content")
        for part in parts if isinstance(parts, list) else []:
            if part.get("type") == "image_url":
                url, detail = part["image_url"]["url"], part["image_url"].get("detail")
            elif part.get("type") == "input_image":
                url, detail = part["image_url"], part.get("detail")
            else:
                continue
            total += model.count(*checks.decode_data_url(url).size, detail)
    return total


def anthropic_visual_tokens(body: dict) -> int:
    model = token_model_for("anthropic", body["model"])
    total = 0

    def walk(blocks: Any) -> None:
        nonlocal total
        for block in blocks if isinstance(blocks, list) else []:
            if block.get("type") == "image":
                total += model.count(*checks.decode_b64_image(block["source"]["data"]).size)
            elif block.get("type") == "tool_result":
                walk(block.get("content"))

    for message in body["messages"]:
        walk(message["content"])
    return total


def replies_for(strategy: str, case: Case, final: dict) -> list[dict]:
    if strategy != "tool":
        return [final]
    return [zoom_call(args, f"call_{i}") for i, args in enumerate(case.zooms)] + [final]


def kinds_of(result: Any) -> list[str]:
    """What the caller gets: the response's type, or each stream item's type (its `type` field where it has one)."""
    if isinstance(result, (openai.Stream, anthropic.Stream)) or type(result).__name__ == "ReplayedStream":
        return sorted({type(item).__name__ for item in result})
    return [type(result).__name__]


OPENAI_CASES = ["multi_turn", "two_images", "user_tools", "streaming", "responses", "jpeg_12mp", "jpeg_12mp_patch_model",
                "wide_12000x2000"]
ANTHROPIC_CASES = ["multi_turn", "two_images", "user_tools", "streaming", "thinking", "jpeg_12mp", "wide_12000x2000"]


@pytest.mark.parametrize("strategy", ["policy", "tool"])
@pytest.mark.parametrize("name", OPENAI_CASES)
def test_openai_calls_keep_the_sdks_behaviour_within_the_rules_and_the_plain_cost(oai, name, strategy):
    case = openai_case(name)
    plain_client = openai_client(oai.url)
    method = "responses" if name == "responses" else "chat"

    def call(client):
        if method == "responses":
            return client.responses.create(model="gpt-4.1", **case.kwargs)
        return client.chat.completions.create(model=case.model, **case.kwargs)

    oai.enqueue({"text": "B7-4421"})
    plain_kinds = kinds_of(call(plain_client))
    (plain_body,) = oai.bodies
    plain_tokens = openai_visual_tokens(plain_body)
    oai.reset()

    oai.enqueue(*replies_for(strategy, case, {"text": "B7-4421"}))
    wrapped = ZoomWrapper(plain_client, strategy=strategy, cropper=GridCropper("grid:2", k=1))
    assert kinds_of(call(wrapped)) == plain_kinds
    bodies = oai.bodies
    if case.passthrough:
        assert bodies == [plain_body] and wrapped.last_answer is None
        return
    assert len(bodies) == (1 + len(case.zooms) if strategy == "tool" else 1)
    assert wrapped.last_answer is not None and wrapped.last_answer.text == "B7-4421"
    problem = checks.openai_responses_problem if method == "responses" else checks.openai_problem
    for body in bodies:
        assert problem(body) is None
        assert openai_visual_tokens(body) <= plain_tokens
    if name == "user_tools":
        assert all(WEATHER_OPENAI in body["tools"] for body in bodies)


@pytest.mark.parametrize("strategy", ["policy", "tool"])
@pytest.mark.parametrize("name", ANTHROPIC_CASES)
def test_anthropic_calls_keep_the_sdks_behaviour_within_the_rules_and_the_plain_cost(ant, name, strategy):
    case = anthropic_case(name)
    plain_client = anthropic_client(ant.url)
    thinking = {"type": "thinking", "thinking": "Small sign; zoom.", "signature": "sig-matrix"}

    def final() -> dict:
        if name != "thinking":
            return {"text": "B7-4421"}
        return {"raw": {"id": "msg_m", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
                        "content": [thinking, {"type": "text", "text": "B7-4421"}], "stop_reason": "end_turn",
                        "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}}

    def zoom_with_thinking(args: dict, call_id: str) -> dict:
        return {"raw": {"id": "msg_z", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
                        "content": [thinking, {"type": "tool_use", "id": call_id, "name": "zoom", "input": args}],
                        "stop_reason": "tool_use", "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 5}}}

    ant.enqueue(final())
    try:
        plain_kinds = kinds_of(plain_client.messages.create(model=ANTHROPIC_MODEL, **case.kwargs))
    except anthropic.APIStatusError as refused:
        # The plain call breaks a documented limit (a 12 MP JPEG is over 5 MB of base64; 12000 px is over 8000 px
        # a side): the provider refuses it. Wrapped, the views are sent within the limits, so it is answered,
        # at no more than the provider would bill for the images if it took them (its own resize rule).
        assert case.refused_plain and refused.status_code in (400, 413), f"the plain call was refused: {refused}"
        plain_kinds = None
    (plain_body,) = ant.bodies
    plain_tokens = anthropic_visual_tokens(plain_body)
    ant.reset()

    if strategy == "tool" and name == "thinking":
        ant.enqueue(*[zoom_with_thinking(a, f"toolu_{i}") for i, a in enumerate(case.zooms)], final())
    elif strategy == "tool":
        ant.enqueue(*[zoom_call(a, f"toolu_{i}") for i, a in enumerate(case.zooms)], final())
    else:
        ant.enqueue(final())
    wrapped = ZoomWrapper(plain_client, strategy=strategy, cropper=GridCropper("grid:2", k=1))
    kinds = kinds_of(wrapped.messages.create(model=ANTHROPIC_MODEL, **case.kwargs))
    assert kinds == (plain_kinds or ["Message"])
    bodies = ant.bodies
    assert len(bodies) == (1 + len(case.zooms) if strategy == "tool" else 1)
    assert wrapped.last_answer is not None and wrapped.last_answer.text == "B7-4421"
    for body in bodies:
        assert checks.anthropic_problem(body) is None
        assert anthropic_visual_tokens(body) <= plain_tokens
    if name == "user_tools":
        assert all(WEATHER_ANTHROPIC in body["tools"] for body in bodies)
    if name == "thinking" and strategy == "tool":
        turn = next(m for m in bodies[-1]["messages"] if m["role"] == "assistant")
        assert turn["content"][0] == thinking  # the thinking block goes back first, unchanged
