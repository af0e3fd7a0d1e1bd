"""The drop-in against the providers' own rules (issue 25): real SDKs, fakes at the wire, official schemas.

Each test names the finding it covers. Every captured body is also checked against the official request
schema (OpenAI's OpenAPI spec, the Anthropic SDK's `MessageCreateParams`), so a body the real service would
refuse for its shape fails here too.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging

import anthropic
import openai
import pytest
from dropin_support import (
    ANTHROPIC_KEY,
    ANTHROPIC_MAX_IMAGE_B64,
    OPENAI_KEY,
    anthropic_client,
    anthropic_image,
    centre,
    encoded,
    openai_client,
    openai_image,
    photo,
    quadrants,
    zoom_call,
)
from fake_servers import images_in_anthropic_request, images_in_openai_request
from PIL import Image

from cropper import AWARES9, GridCropper, ZoomWrapper, awares
from cropper.tokens import token_model_for
from cropper.zoom_tool import zoom_tool

# --- 1. the last zoom round --------------------------------------------------------------------------------


def test_the_last_round_keeps_the_tools_and_forbids_calling_them_openai(oai):
    oai.enqueue(zoom_call({"crop": "top_left"}), zoom_call({"crop": "top_right"}, "call_2"))
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", max_rounds=1)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is written?"}, openai_image(quadrants())]}], parallel_tool_calls=False)
    first, last = oai.bodies
    assert "tool_choice" not in first and first["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in last["tools"]] == ["zoom"]  # the history holds a zoom call
    assert last["tool_choice"] == "none"


def test_the_last_round_keeps_the_tools_and_forbids_calling_them_anthropic(ant):
    ant.enqueue(zoom_call({"crop": "top_left"}, "toolu_1"), {"text": "done"})
    client = ZoomWrapper(anthropic_client(ant.url), strategy="tool", max_rounds=1)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": [
        anthropic_image(quadrants()), {"type": "text", "text": "What is written?"}]}])
    last = ant.bodies[-1]
    assert [t["name"] for t in last["tools"]] == ["zoom"] and last["tool_choice"] == {"type": "none"}


def test_tool_only_options_are_dropped_when_no_tools_are_sent(oai):
    client = ZoomWrapper(openai_client(oai.url), strategy="low")
    client.chat.completions.create(model="gpt-4o", parallel_tool_calls=True, tool_choice="auto", messages=[
        {"role": "user", "content": [{"type": "text", "text": "What?"}, openai_image(quadrants())]}])
    (body,) = oai.bodies
    assert "parallel_tool_calls" not in body and "tool_choice" not in body and "tools" not in body


# --- 2. extended thinking ----------------------------------------------------------------------------------


def anthropic_raw(content: list[dict], stop_reason: str) -> dict:
    return {"raw": {"id": "msg_t", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                    "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 5}}}


def test_thinking_blocks_go_back_unchanged_and_first_in_the_turn(ant):
    thinking = {"type": "thinking", "thinking": "The sign is small; zoom top left.", "signature": "sig-Zx81"}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    ant.enqueue(anthropic_raw([thinking, redacted, {"type": "tool_use", "id": "toolu_t1", "name": "zoom",
                                                    "input": {"crop": "top_left"}}], "tool_use"),
                anthropic_raw([{"type": "text", "text": "B7"}], "end_turn"))
    client = ZoomWrapper(anthropic_client(ant.url), strategy="tool")
    response = client.messages.create(model="claude-sonnet-4-5", max_tokens=2048,
                                      thinking={"type": "enabled", "budget_tokens": 1024},
                                      messages=[{"role": "user", "content": [anthropic_image(quadrants()),
                                                                              {"type": "text", "text": "Sign?"}]}])
    assert response.content[0].text == "B7"
    second = ant.bodies[1]
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    turn = next(m for m in second["messages"] if m["role"] == "assistant")
    assert turn["content"][:2] == [thinking, redacted]
    assert turn["content"][2]["type"] == "tool_use" and turn["content"][2]["id"] == "toolu_t1"
    assert client.last_answer.replies[0].thinking[0].value == thinking


# --- 3. per-provider image limits --------------------------------------------------------------------------


def test_a_crop_too_large_for_anthropic_is_sent_within_its_limits(ant):
    original = photo(3000, 2000)
    ant.enqueue(zoom_call({"crop": "center"}, "toolu_c"), {"text": "ok"})
    client = ZoomWrapper(anthropic_client(ant.url), strategy="tool", budget=100_000)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": [
        anthropic_image(original), {"type": "text", "text": "What is in the middle?"}]}])
    result = ant.bodies[1]["messages"][-1]["content"][0]
    (crop_block,) = [b for b in result["content"] if b["type"] == "image"]
    assert len(crop_block["source"]["data"]) <= ANTHROPIC_MAX_IMAGE_B64
    (crop,) = images_in_anthropic_request({"messages": [{"role": "user", "content": [crop_block]}]})
    # Claude processes at most 1568 px a side and ~1.23 MP: the crop is sent at that size, no larger.
    assert max(crop.size) <= 1568 and crop.width * crop.height <= 784 * 1568


def test_a_12000x2000_image_never_gives_a_crop_over_the_side_limits(ant, oai):
    wide = photo(12000, 2000, seed=3)
    ant.enqueue(zoom_call({"crop": "top"}, "toolu_w"), {"text": "ok"})
    ZoomWrapper(anthropic_client(ant.url), strategy="tool", budget=100_000).messages.create(
        model="claude-sonnet-4-5", max_tokens=50,
        messages=[{"role": "user", "content": [anthropic_image(wide, "JPEG", quality=85),
                                               {"type": "text", "text": "Read the top."}]}])
    crops = images_in_anthropic_request({"messages": ant.bodies[1]["messages"][-1:]})
    assert crops and all(max(c.size) <= 8000 for c in crops)
    oai.enqueue(zoom_call({"crop": "top"}), {"text": "ok"})
    ZoomWrapper(openai_client(oai.url), strategy="tool", budget=100_000).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": [
            {"type": "text", "text": "Read the top."}, openai_image(wide, "JPEG", quality=85)]}])
    *_, crop = images_in_openai_request(oai.bodies[1])
    # gpt-4o fits 2048 px then 768 on the short side: a 12000x1000 crop is used at 2048x170.
    assert crop.size == (2048, 170)


def test_encoding_falls_back_to_lossy_formats_to_fit_a_byte_cap():
    from backends.image_codec import encode_within  # new in issue 25: imported here so the module loads on f07399e

    noisy = photo(1400, 1000, seed=5)
    media, data = encode_within(noisy, "png", max_bytes=None)
    assert media == "image/png" and len(data) > 1_500_000
    media, data = encode_within(noisy, "png", max_bytes=1_000_000)
    assert media in ("image/jpeg", "image/webp") and len(data) <= 1_000_000
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (1400, 1000)  # quality first, size kept
    media, data = encode_within(noisy, "png", max_bytes=20_000)
    assert len(data) <= 20_000 and max(Image.open(io.BytesIO(base64.b64decode(data))).size) < 1400


# --- 4. the caller's own images ----------------------------------------------------------------------------


def test_images_the_wrapper_does_not_zoom_go_out_as_they_came(oai):
    earlier = openai_image(photo(1600, 1200, seed=7), "JPEG", quality=90)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Here is my receipt."}, earlier]},
        {"role": "assistant", "content": "Thanks, I see a receipt."},
        {"role": "user", "content": [{"type": "text", "text": "And what does this sign say?"},
                                     openai_image(quadrants())]},
    ]
    ZoomWrapper(openai_client(oai.url), strategy="low").chat.completions.create(model="gpt-4o", messages=messages)
    (body,) = oai.bodies
    assert body["messages"][0] == messages[0]  # byte for byte: the JPEG is not re-encoded as PNG
    assert body["messages"][1] == messages[1]


# --- 5. the caller's own tools -----------------------------------------------------------------------------

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


@pytest.mark.parametrize("strategy", ["low", "policy", "tool"])
def test_the_callers_tools_reach_the_model_unchanged(oai, strategy):
    client = ZoomWrapper(openai_client(oai.url), strategy=strategy, cropper=GridCropper("grid:2", k=1))
    client.chat.completions.create(model="gpt-4o", tools=[WEATHER], messages=[{"role": "user", "content": [
        {"type": "text", "text": "What city is on the sign?"}, openai_image(quadrants())]}])
    body = oai.bodies[0]
    assert body["tools"][0] == WEATHER
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == (["get_weather", "zoom"] if strategy == "tool" else ["get_weather"])


def test_a_call_to_the_callers_tool_is_returned_to_the_caller(ant):
    ant.enqueue({"tool_calls": [{"id": "toolu_w", "name": "get_weather", "arguments": {"city": "Oslo"}}]})
    weather = {"name": "get_weather", "description": "Weather.", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}
    response = ZoomWrapper(anthropic_client(ant.url), strategy="tool").messages.create(
        model="claude-sonnet-4-5", max_tokens=50, tools=[weather],
        messages=[{"role": "user", "content": [anthropic_image(quadrants()), {"type": "text", "text": "Weather?"}]}])
    assert len(ant.bodies) == 1 and ant.bodies[0]["tools"][0] == weather
    assert response.content[0].type == "tool_use" and response.content[0].name == "get_weather"


# --- 6. conversations, 7. blocks we do not model -----------------------------------------------------------


def test_a_multi_turn_anthropic_chat_keeps_its_turns_roles_and_blocks(ant):
    tool_image = anthropic_image(photo(300, 200, seed=9))
    messages = [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Manual, p. 3"}},
            {"type": "text", "text": "Read the manual.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look it up."},
                                          {"type": "tool_use", "id": "toolu_s", "name": "search", "input": {"q": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_s", "is_error": True,
             "content": [{"type": "text", "text": "timeout"}, tool_image]},
            anthropic_image(quadrants()), {"type": "text", "text": "Then read this sign."}]},
    ]
    search = {"name": "search", "description": "Search.", "input_schema": {"type": "object", "properties": {}}}
    ZoomWrapper(anthropic_client(ant.url), strategy="low").messages.create(
        model="claude-sonnet-4-5", max_tokens=50, tools=[search], system="Be brief.", messages=messages)
    (body,) = ant.bodies
    sent = body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0] == messages[0] and sent[1] == messages[1]  # document, cache_control: kept as written
    assert sent[2]["content"][0] == messages[2]["content"][0]  # the tool_result: is_error and its image kept
    assert sent[2]["content"][-1] == {"type": "text", "text": "Then read this sign."}
    assert body["system"] == "Be brief."
    (view,) = images_in_anthropic_request({"messages": [{"role": "user", "content": sent[2]["content"][1:]}]})
    assert max(view.size) == 1024  # the sign's image was replaced by its global view


def test_a_multi_turn_openai_chat_keeps_the_assistant_turn_as_the_assistants(oai):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What sign is this?"}, openai_image(quadrants())]},
        {"role": "assistant", "content": "A four-colour sign."},
        {"role": "user", "content": "Which colour is top left?"},
    ]
    ZoomWrapper(openai_client(oai.url), strategy="low").chat.completions.create(model="gpt-4o", messages=messages)
    (body,) = oai.bodies
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][0] == messages[0] and body["messages"][2:] == messages[2:]


# --- 8. the other SDK methods ------------------------------------------------------------------------------


def test_chat_completions_parse_is_zoomed_and_parsed(oai):
    pydantic = pytest.importorskip("pydantic")

    class Sign(pydantic.BaseModel):
        text: str

    oai.enqueue({"text": json.dumps({"text": "B7-4421"})})
    client = ZoomWrapper(openai_client(oai.url), strategy="low")
    response = client.chat.completions.parse(model="gpt-4o", response_format=Sign, messages=[
        {"role": "user", "content": [{"type": "text", "text": "Sign?"}, openai_image(quadrants())]}])
    assert response.choices[0].message.parsed == Sign(text="B7-4421")
    (body,) = oai.bodies
    assert body["response_format"]["type"] == "json_schema"
    assert [im.size for im in images_in_openai_request(body)] == [(1024, 683)]


def test_parse_with_the_tool_strategy_offers_a_strict_zoom_tool(oai):
    oai.enqueue(zoom_call({"crop": "top_left", "box": None}), {"text": "B7"})
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", budget=100_000)
    response = client.chat.completions.parse(model="gpt-4o", messages=[
        {"role": "user", "content": [{"type": "text", "text": "Sign?"}, openai_image(quadrants())]}])
    assert response.choices[0].message.content == "B7"
    function = oai.bodies[0]["tools"][0]["function"]
    assert function["strict"] is True and function["parameters"]["additionalProperties"] is False
    assert set(function["parameters"]["required"]) == set(function["parameters"]["properties"])
    assert client.last_answer.crops == [AWARES9["top_left"]]


def test_anthropic_beta_messages_create_is_zoomed(ant):
    client = ZoomWrapper(anthropic_client(ant.url), strategy="low")
    client.beta.messages.create(model="claude-sonnet-4-5", max_tokens=50, betas=["files-api-2025-04-14"],
                                messages=[{"role": "user", "content": [anthropic_image(quadrants()),
                                                                       {"type": "text", "text": "Sign?"}]}])
    (request,) = ant.requests
    assert "files-api-2025-04-14" in request.headers["anthropic-beta"]
    assert [im.size for im in images_in_anthropic_request(request.body)] == [(1024, 683)]


def test_a_method_passed_through_unzoomed_is_said_once_at_info(oai, caplog):
    client = ZoomWrapper(openai_client(oai.url), strategy="low")
    with caplog.at_level(logging.INFO, logger="cropper"):
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    said = [r.getMessage() for r in caplog.records if "unzoomed" in r.getMessage()]
    assert len(said) == 1 and "chat.completions.create" in said[0]


# --- 10. several images, 11. detail ------------------------------------------------------------------------


def test_each_of_two_images_gets_its_own_view_and_the_zoom_tool_names_the_image(oai):
    first, second = quadrants(), quadrants(2400, 1600).transpose(Image.Transpose.ROTATE_180)
    oai.enqueue(zoom_call({"crop": "top_left", "image": 2}), {"text": "both read"})
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", budget=100_000)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare the two signs."}, openai_image(first), openai_image(second)]}])
    opening = oai.bodies[0]
    assert [im.size for im in images_in_openai_request(opening)] == [(1024, 683), (1024, 683)]
    texts = [p["text"] for p in opening["messages"][-1]["content"] if p["type"] == "text"]
    assert any(t.startswith("Image 1, global view") for t in texts)
    assert any(t.startswith("Image 2, global view") for t in texts)
    image_param = opening["tools"][0]["function"]["parameters"]["properties"]["image"]
    assert image_param["maximum"] == 2
    *_, crop = images_in_openai_request(oai.bodies[1])
    assert centre(crop) == (255, 255, 0)  # the top left of the rotated second image is its yellow quadrant
    assert client.last_answer.crop_images == [1]


def test_policy_proposes_crops_for_every_image(ant):
    client = ZoomWrapper(anthropic_client(ant.url), strategy="policy", cropper=GridCropper("grid:2", k=1),
                         budget=100_000)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": [
        anthropic_image(quadrants()), anthropic_image(quadrants(2000, 3000)), {"type": "text", "text": "Compare."}]}])
    assert client.last_answer.crop_images == [0, 1]
    assert len(images_in_anthropic_request(ant.bodies[0])) == 4  # two global views, one crop each


@pytest.mark.parametrize("detail", ["low", "high", None])
def test_a_zoomed_request_never_costs_more_visual_tokens_than_the_plain_one(oai, detail):
    original = quadrants()
    oai.enqueue(zoom_call({"crop": "top_left"}), zoom_call({"crop": "center"}, "call_2"), {"text": "ok"})
    client = ZoomWrapper(openai_client(oai.url), strategy="tool")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Sign?"}, openai_image(original, detail=detail)]}])
    model = token_model_for("openai", "gpt-4o")
    plain = model.count(*original.size, detail)
    if detail == "low":  # 85 tokens: nothing can be cheaper, so the request goes out as it came
        (body,) = oai.bodies
        assert body["messages"][0]["content"][1]["image_url"]["detail"] == "low"
        assert [im.size for im in images_in_openai_request(body)] == [original.size]
        return
    answer = client.last_answer
    assert answer.visual_tokens <= plain
    sent = [im.size for im in images_in_openai_request(oai.bodies[-1])]
    assert sum(model.count(w, h, detail) for w, h in sent) <= plain


# --- 13. AwaRes, 14. captions and the tool description ----------------------------------------------------

#: lmms_eval/qwen2_5_vl_awares.py at NimrodShabtay/AwaRes@2121cde, as Python renders its f-string
#: (INDS_NOT_WORDS = True, CROPS_MAP with 'all'); typos are the source's.
PLUGIN_PROMPT = (
    "You are a vision-language model that analyzes images and answers questions about them. If the image resolution "
    "is too low for accurate analysis, respond with GET_CROPS [<crop_number>] to get a higher resolution version, "
    "the avalible <crop_numbers> and their corresponding area of the high resolution image are {'0': 'top-left', "
    "'1': 'top-right', '2': 'bottom-left', '3': 'bottom-right', '4': 'center', '5': 'top', '6': 'bottom', "
    "'7': 'left', '8': 'right', 'all': 'all'} ,otherwise provide your answer."
)
#: The same repository's README.md, its `SYSTEM_PROMPT` (CROPS_MAP without 'all').
README_PROMPT = (
    "You are a vision-language model that analyzes images and answers questions about them. If the image resolution "
    "is too low for accurate analysis, respond with GET_CROPS: followed by a list of crop numbers in square brackets "
    "(e.g., GET_CROPS: ['3'] or GET_CROPS: ['0', '5']), where the available crop numbers and their corresponding "
    "areas are {'0': 'top-left', '1': 'top-right', '2': 'bottom-left', '3': 'bottom-right', '4': 'center', "
    "'5': 'top', '6': 'bottom', '7': 'left', '8': 'right'}, otherwise provide your answer."
)


def test_the_awares_prompts_are_the_sources_verbatim(oai):
    assert awares.AWARES_SYSTEM_PROMPT == PLUGIN_PROMPT
    assert awares.AWARES_README_PROMPT == README_PROMPT
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", protocol="awares")
    client.chat.completions.create(model="qwen2.5-vl-awares", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Sign?"}, openai_image(quadrants())]}])
    assert oai.bodies[0]["messages"][0] == {"role": "system", "content": PLUGIN_PROMPT}
    client.config.awares_prompt = "readme"
    client.chat.completions.create(model="qwen2.5-vl-awares", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Sign?"}, openai_image(quadrants())]}])
    assert oai.bodies[1]["messages"][0] == {"role": "system", "content": README_PROMPT}


def test_a_crops_caption_is_sent_once_and_the_tool_description_reads_cleanly(ant):
    assert "  " not in zoom_tool(AWARES9).description
    ant.enqueue(zoom_call({"crop": "top_left"}, "toolu_q"), {"text": "ok"})
    ZoomWrapper(anthropic_client(ant.url), strategy="tool", budget=100_000).messages.create(
        model="claude-sonnet-4-5", max_tokens=50,
        messages=[{"role": "user", "content": [anthropic_image(quadrants()), {"type": "text", "text": "Sign?"}]}])
    result = ant.bodies[1]["messages"][-1]["content"][0]
    captions = [b["text"] for b in result["content"] if b["type"] == "text"]
    assert len(captions) == 1 and captions[0].startswith("Crop: region")


# --- 9. streaming ------------------------------------------------------------------------------------------


def test_a_streamed_openai_request_is_zoomed_and_streams_the_final_answer(oai):
    oai.enqueue(zoom_call({"crop": "top_left"}), {"text": "B7-4421"})
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", budget=100_000)
    stream = client.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": [
                                                {"type": "text", "text": "Sign?"}, openai_image(quadrants())]}])
    with stream as chunks:
        received = list(chunks)
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in received)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "B7-4421"
    assert received[-1].usage is not None  # include_usage: the last chunk holds the usage, as the API's does
    assert len(oai.bodies) == 2 and all("stream" not in b for b in oai.bodies)  # the rounds ran, zoomed
    assert [im.size for im in images_in_openai_request(oai.bodies[0])] == [(1024, 683)]
    assert stream.cropper["crops"] == [AWARES9["top_left"].to_list()]


def test_a_streamed_anthropic_request_is_zoomed_and_yields_the_sdks_events(ant):
    ant.enqueue({"text": "B7"})
    stream = ZoomWrapper(anthropic_client(ant.url), strategy="low").messages.create(
        model="claude-sonnet-4-5", max_tokens=50, stream=True,
        messages=[{"role": "user", "content": [anthropic_image(quadrants()), {"type": "text", "text": "Sign?"}]}])
    events = list(stream)
    assert [e.type for e in events] == ["message_start", "content_block_start", "content_block_delta",
                                        "content_block_stop", "message_delta", "message_stop"]
    assert events[2].delta.text == "B7" and events[4].delta.stop_reason == "end_turn"
    assert [im.size for im in images_in_anthropic_request(ant.bodies[0])] == [(1024, 683)]


def test_responses_create_is_zoomed_and_the_crop_returns_in_the_function_call_output(oai):
    oai.enqueue(zoom_call({"crop": "top_left"}), {"text": "B7-4421"})
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", budget=100_000)
    media, data = encoded(quadrants())
    response = client.responses.create(model="gpt-4.1", instructions="Be brief.", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is written on the sign?"},
        {"type": "input_image", "image_url": f"data:{media};base64,{data}", "detail": "auto"}]}])
    assert isinstance(response, openai.types.responses.Response) and response.output_text == "B7-4421"
    first, second = oai.bodies
    assert first["instructions"] == "Be brief." and first["tools"][0]["name"] == "zoom"
    output = next(i for i in second["input"] if i.get("type") == "function_call_output")
    call = next(i for i in second["input"] if i.get("type") == "function_call")
    assert output["call_id"] == call["call_id"] == "call_1"
    (crop_part,) = [p for p in output["output"] if p["type"] == "input_image"]
    crop = Image.open(io.BytesIO(base64.b64decode(crop_part["image_url"].split(",", 1)[1])))
    assert centre(crop) == (255, 0, 0) and client.last_answer.crops == [AWARES9["top_left"]]


def test_responses_create_without_images_goes_to_the_client_unchanged(oai):
    client = ZoomWrapper(openai_client(oai.url), strategy="tool")
    client.responses.create(model="gpt-4.1", input="hello")
    (body,) = oai.bodies
    assert body["input"] == "hello" and "tools" not in body


def test_a_streamed_responses_request_is_zoomed_and_yields_the_sdks_events(oai):
    oai.enqueue(zoom_call({"crop": "top_left"}), {"text": "B7-4421"})
    client = ZoomWrapper(openai_client(oai.url), strategy="tool", budget=100_000)
    media, data = encoded(quadrants())
    stream = client.responses.create(model="gpt-4.1", stream=True, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is written on the sign?"},
        {"type": "input_image", "image_url": f"data:{media};base64,{data}"}]}])
    with stream as events:
        events = list(events)
    assert all("stream" not in body for body in oai.bodies) and len(oai.bodies) == 2  # the rounds ran, zoomed
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if isinstance(e, openai.types.responses.ResponseTextDeltaEvent))
    assert text == "B7-4421" == events[-1].response.output_text
    assert stream.cropper["crops"] == [AWARES9["top_left"].to_list()]


def test_async_responses_and_anthropic_streams_are_zoomed_and_iterate_with_async_for(oai, ant):
    oai.enqueue(zoom_call({"crop": "top_left"}), {"text": "B7-4421"})
    ant.enqueue({"text": "B7"})
    media, data = encoded(quadrants())

    async def go():
        oai_client = ZoomWrapper(openai.AsyncOpenAI(base_url=oai.url, api_key=OPENAI_KEY, max_retries=0),
                                 strategy="tool", budget=100_000)
        stream = await oai_client.responses.create(model="gpt-4.1", stream=True, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Sign?"}, {"type": "input_image", "image_url": f"data:{media};base64,{data}"}]}])
        responses_events = [event async for event in stream]
        ant_client = ZoomWrapper(anthropic.AsyncAnthropic(base_url=ant.url, api_key=ANTHROPIC_KEY, max_retries=0),
                                 strategy="low")
        async with await ant_client.messages.create(
                model="claude-sonnet-4-5", max_tokens=50, stream=True,
                messages=[{"role": "user", "content": [anthropic_image(quadrants()), {"type": "text", "text": "?"}]}],
        ) as events:
            anthropic_events = [event async for event in events]
        return responses_events, anthropic_events

    responses_events, anthropic_events = asyncio.run(go())
    assert len(oai.bodies) == 2 and responses_events[-1].response.output_text == "B7-4421"
    assert [im.size for im in images_in_anthropic_request(ant.bodies[0])] == [(1024, 683)]
    text = "".join(e.delta.text for e in anthropic_events if e.type == "content_block_delta")
    assert text == "B7" and anthropic_events[-1].type == "message_stop"
