"""The drop-in path: ZoomWrapper around the REAL openai / anthropic SDK clients, pointed at the fake servers.

`client.chat.completions.create(...)` and `client.messages.create(...)` keep working: images of the last user
message are zoomed (low / policy / tool), the SDK's own response type comes back, and everything else
(text-only requests, streaming, strategy `full`, other attributes) goes to the user's client untouched.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import logging

import anthropic
import openai
import pytest
from dropin_support import ANTHROPIC_KEY, OPENAI_KEY
from fake_servers import (
    images_in_anthropic_request,
    images_in_openai_request,
)
from PIL import Image

from backends.base import BackendError
from cropper import AWARES9, Answer, GridCropper, ZoomWrapper
from cropper.tokens import token_model_for

W, H = 3000, 2000  # the original image; its quadrants are 1500x1000
QUADRANT = (W // 2, H // 2)
# A quadrant as each provider processes it, so as the wrapper sends it (same tokens, fewer bytes):
# gpt-4o fits 2048 px, then its shortest side to 768: 1500x1000 -> 1152x768 (OpenAI's images-vision guide);
# Claude scales to at most 1,229,312 px (784x1568): sqrt(1229312 / 1.5e6) = 0.9053 -> 1357x905.
QUADRANT_GPT4O = (1152, 768)
QUADRANT_CLAUDE = (1357, 905)
#: A budget above any plain request's cost here: the caller asks for full-size crops.
BIG = 100_000
COLORS = {"top_left": (255, 0, 0), "top_right": (0, 255, 0), "bottom_left": (0, 0, 255), "bottom_right": (255, 255, 0)}


# --- fixtures and helpers ----------------------------------------------------------------------------------


# `oai` / `ant`: the fake servers of conftest.py (every body checked against the official schemas).


def openai_client(server, cls=openai.OpenAI):
    """The user's own client. Sync ones are shared per server (building one costs ~50 ms); async ones are
    fresh, since their connection pool belongs to the event loop of the test's `asyncio.run`."""
    if cls is openai.OpenAI:
        return _sync_client(cls, server.url, OPENAI_KEY)
    return cls(base_url=server.url, api_key=OPENAI_KEY, max_retries=1)


def anthropic_client(server, cls=anthropic.Anthropic):
    if cls is anthropic.Anthropic:
        return _sync_client(cls, server.url, ANTHROPIC_KEY)
    return cls(base_url=server.url, api_key=ANTHROPIC_KEY, max_retries=1)


@functools.cache
def _sync_client(cls, url: str, key: str):
    return cls(base_url=url, api_key=key, max_retries=1)


@functools.cache
def original() -> Image.Image:
    """3000x2000, one flat colour per quadrant (so a crop shows where it was cut from)."""
    img = Image.new("RGB", (W, H))
    for name, color in COLORS.items():
        box = AWARES9[name].to_pixels(W, H)
        img.paste(color, box)
    return img


@functools.cache
def original_b64() -> str:
    buf = io.BytesIO()
    original().save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def openai_user(question: str = "What is written on the red sign?") -> dict:
    return {"role": "user", "content": [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{original_b64()}"}},
    ]}


def anthropic_user(question: str = "What is written on the red sign?") -> dict:
    return {"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": original_b64()}},
        {"type": "text", "text": question},
    ]}


def center_color(img: Image.Image) -> tuple[int, int, int]:
    return img.convert("RGB").getpixel((img.width // 2, img.height // 2))


def tool_names_openai(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


# --- strategy low ------------------------------------------------------------------------------------------


def test_openai_low_sends_only_the_global_view_and_returns_a_chat_completion(oai):
    oai.enqueue({"text": "STOP"})
    client = ZoomWrapper(openai_client(oai), strategy="low")
    response = client.chat.completions.create(model="gpt-4o", messages=[openai_user()], temperature=0)

    assert isinstance(response, openai.types.chat.ChatCompletion)
    assert response.choices[0].message.content == "STOP"
    assert response.cropper["strategy"] == "low"  # the Answer rides along where the SDK model allows it
    (body,) = oai.bodies
    (image,) = images_in_openai_request(body)
    assert max(image.size) == 1024 and image.size == (1024, 683)  # global_side, aspect kept (3000x2000 -> 1024x683)
    assert body["model"] == "gpt-4o" and body["temperature"] == 0  # the caller's options travel on
    assert "What is written on the red sign?" in json.dumps(body["messages"])
    answer = client.last_answer
    assert answer.strategy == "low" and answer.text == "STOP" and answer.view_sizes == [(1024, 683)]
    assert answer.visual_tokens == token_model_for("openai", "gpt-4o").count(1024, 683)


def test_global_side_is_configurable(oai):
    client = ZoomWrapper(openai_client(oai), strategy="low", global_side=512)
    client.chat.completions.create(model="gpt-4o", messages=[openai_user()])
    (image,) = images_in_openai_request(oai.bodies[0])
    assert image.size == (512, 341)


def test_anthropic_low_returns_a_message_and_keeps_the_system_prompt(ant):
    ant.enqueue({"text": "STOP"})
    client = ZoomWrapper(anthropic_client(ant), strategy="low")
    response = client.messages.create(model="claude-test", max_tokens=50, system="Be terse.",
                                      messages=[anthropic_user()])
    assert isinstance(response, anthropic.types.Message)
    assert response.content[0].text == "STOP"
    (body,) = ant.bodies
    assert body["max_tokens"] == 50 and "Be terse." in json.dumps(body["system"])
    (image,) = images_in_anthropic_request(body)
    assert image.size == (1024, 683)


# --- strategy policy ---------------------------------------------------------------------------------------


def test_openai_policy_sends_global_view_plus_crops_cut_from_the_original(oai):
    oai.enqueue({"text": "STOP"})
    client = ZoomWrapper(openai_client(oai), strategy="policy", cropper=GridCropper("grid:2", k=2), budget=BIG)
    response = client.chat.completions.create(model="gpt-4o", messages=[openai_user()])

    assert isinstance(response, openai.types.chat.ChatCompletion)
    glob, *crops = images_in_openai_request(oai.bodies[0])
    assert glob.size == (1024, 683)
    assert [c.size for c in crops] == [QUADRANT_GPT4O] * 2  # cut from the 3000x2000 original, as gpt-4o uses it
    # grid:2 is r0c0, r0c1, ... : the first two crops are the top-left and top-right quadrants.
    assert [center_color(c) for c in crops] == [COLORS["top_left"], COLORS["top_right"]]
    answer = client.last_answer
    assert answer.strategy == "policy" and len(answer.crops) == 2
    assert answer.crops[0].to_list() == [0.0, 0.0, 0.5, 0.5]


@pytest.mark.parametrize("model", ["gpt-4o", "Qwen/Qwen2.5-VL-7B-Instruct"])
def test_openai_policy_with_budget_fits_what_arrived(oai, model):
    budget = 1500
    client = ZoomWrapper(openai_client(oai), strategy="policy", cropper=GridCropper("grid:2", k=2), budget=budget)
    client.chat.completions.create(model=model, messages=[openai_user()])

    images = images_in_openai_request(oai.bodies[0])
    assert len(images) == 3  # the global view and both crops still fit, smaller
    tm = token_model_for("openai", model)
    arrived = sum(tm.count(*im.size) for im in images)
    assert arrived <= budget
    assert client.last_answer.visual_tokens == arrived
    assert all(im.size[0] < QUADRANT[0] for im in images[1:])  # the crops were shrunk to fit


# --- strategy tool -----------------------------------------------------------------------------------------


def test_openai_tool_loop_zooms_and_returns_the_final_completion(oai):
    oai.enqueue({"tool_calls": [{"id": "call_z1", "name": "zoom", "arguments": {"crop": "top_left"}}]},
                {"text": "B7-4421"})
    client = ZoomWrapper(openai_client(oai), strategy="tool", budget=BIG)
    response = client.chat.completions.create(model="gpt-4o", messages=[openai_user()])

    assert isinstance(response, openai.types.chat.ChatCompletion)
    assert response.choices[0].message.content == "B7-4421"
    first, second = oai.bodies
    assert "zoom" in tool_names_openai(first)
    schema = next(t["function"] for t in first["tools"] if t["function"]["name"] == "zoom")["parameters"]
    assert "top_left" in schema["properties"]["crop"]["enum"]
    assert [im.size for im in images_in_openai_request(first)] == [(1024, 683)]

    msgs = second["messages"]
    i = next(i for i, m in enumerate(msgs) if m["role"] == "tool")
    assert msgs[i - 1]["role"] == "assistant" and msgs[i - 1]["tool_calls"][0]["id"] == "call_z1"
    assert msgs[i]["tool_call_id"] == "call_z1" and isinstance(msgs[i]["content"], str)
    follow = msgs[i + 1]  # OpenAI tool messages cannot hold images: the crop follows in a user message
    assert follow["role"] == "user"
    (crop,) = images_in_openai_request({"messages": [follow]})
    assert crop.size == QUADRANT_GPT4O and center_color(crop) == COLORS["top_left"]

    answer = client.last_answer
    assert answer.text == "B7-4421" and answer.rounds == 1
    assert answer.crops == [AWARES9["top_left"]]
    assert answer.view_sizes == [(1024, 683), QUADRANT_GPT4O]


def test_anthropic_tool_loop_puts_the_crop_in_the_tool_result(ant):
    ant.enqueue({"tool_calls": [{"id": "toolu_z1", "name": "zoom", "arguments": {"crop": "top_left"}}]},
                {"text": "B7-4421"})
    client = ZoomWrapper(anthropic_client(ant), strategy="tool", budget=BIG)
    response = client.messages.create(model="claude-test", max_tokens=100, messages=[anthropic_user()])

    assert isinstance(response, anthropic.types.Message)
    assert response.content[0].text == "B7-4421"
    first, second = ant.bodies
    assert [t["name"] for t in first["tools"]] == ["zoom"]
    assert "top_left" in first["tools"][0]["input_schema"]["properties"]["crop"]["enum"]
    assert [im.size for im in images_in_anthropic_request(first)] == [(1024, 683)]

    last = second["messages"][-1]
    assert last["role"] == "user" and last["content"][0]["type"] == "tool_result"
    result = last["content"][0]
    assert result["tool_use_id"] == "toolu_z1"
    assert any(b["type"] == "image" for b in result["content"])
    (crop,) = images_in_anthropic_request({"messages": [last]})
    assert crop.size == QUADRANT_CLAUDE and center_color(crop) == COLORS["top_left"]

    answer = client.last_answer
    assert answer.text == "B7-4421" and answer.rounds == 1 and answer.crops == [AWARES9["top_left"]]


def test_malformed_zoom_call_gets_an_error_result_and_the_loop_goes_on(oai):
    oai.enqueue({"tool_calls": [{"id": "call_bad", "name": "zoom", "arguments": {"crop": "upper_middle"}}]},
                {"text": "no idea"})
    client = ZoomWrapper(openai_client(oai), strategy="tool")
    response = client.chat.completions.create(model="gpt-4o", messages=[openai_user()])

    assert response.choices[0].message.content == "no idea"
    assert len(oai.bodies) == 2
    tool_msg = next(m for m in oai.bodies[1]["messages"] if m["role"] == "tool")
    assert tool_msg["tool_call_id"] == "call_bad"
    assert tool_msg["content"].startswith("error:") and "upper_middle" in tool_msg["content"]
    assert len(images_in_openai_request(oai.bodies[1])) == 1  # no crop was sent, only the global view
    answer = client.last_answer
    assert answer.crops == [] and answer.rounds == 1
    assert any("upper_middle" in note for note in answer.notes)


def test_anthropic_malformed_zoom_call_gets_an_error_tool_result(ant):
    ant.enqueue({"tool_calls": [{"id": "toolu_bad", "name": "zoom", "arguments": {"crop": "nowhere"}}]},
                {"text": "no idea"})
    client = ZoomWrapper(anthropic_client(ant), strategy="tool")
    response = client.messages.create(model="claude-test", max_tokens=100, messages=[anthropic_user()])
    assert response.content[0].text == "no idea"
    result = ant.bodies[1]["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_bad"
    text = " ".join(b.get("text", "") for b in result["content"])
    assert text.startswith("error:") and "nowhere" in text
    assert not any(b["type"] == "image" for b in result["content"])
    assert client.last_answer.crops == [] and client.last_answer.rounds == 1


# --- pass-through ------------------------------------------------------------------------------------------


def test_text_only_request_reaches_the_server_unchanged(oai):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    client = ZoomWrapper(openai_client(oai), strategy="tool")
    response = client.chat.completions.create(model="gpt-4o", messages=messages, temperature=0.2)
    assert isinstance(response, openai.types.chat.ChatCompletion)
    (body,) = oai.bodies
    assert body["messages"] == messages and body["temperature"] == 0.2
    assert "tools" not in body  # no zoom tool on a request that has nothing to zoom
    assert client.last_answer is None


def test_anthropic_text_only_request_reaches_the_server_unchanged(ant):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]
    client = ZoomWrapper(anthropic_client(ant), strategy="tool")
    client.messages.create(model="claude-test", max_tokens=20, system="Be brief.", messages=messages)
    (body,) = ant.bodies
    assert body["messages"] == messages and body["system"] == "Be brief." and "tools" not in body


def test_stream_true_is_zoomed_and_the_streaming_helper_passes_through(oai):
    client = ZoomWrapper(openai_client(oai), strategy="low")
    stream = client.chat.completions.create(model="gpt-4o", messages=[openai_user()], stream=True)
    assert [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content] == ["ok"]
    (body,) = oai.bodies
    assert [im.size for im in images_in_openai_request(body)] == [(1024, 683)]  # zoomed: the global view
    text_only = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                               stream=True)
    try:
        assert isinstance(text_only, openai.Stream)  # nothing to zoom: the client's own stream
    finally:
        text_only.close()


def test_strategy_full_passes_through_untouched(oai, ant):
    messages = [openai_user()]
    ZoomWrapper(openai_client(oai), strategy="full").chat.completions.create(model="gpt-4o", messages=messages)
    (body,) = oai.bodies
    assert body["messages"] == messages

    ZoomWrapper(anthropic_client(ant), strategy="full").messages.create(
        model="claude-test", max_tokens=10, messages=[anthropic_user()])
    (body,) = ant.bodies
    assert body["messages"] == [anthropic_user()]


def test_other_attributes_are_forwarded_to_the_client(oai):
    users_client = openai_client(oai)
    client = ZoomWrapper(users_client, strategy="tool")
    models = client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    assert oai.requests[-1].method == "GET" and oai.requests[-1].path == "/v1/models"
    assert client.base_url == users_client.base_url
    # chat.* other than completions.create is the client's own too
    assert client.chat.completions.with_raw_response is not None


def test_openai_sdk_message_objects_in_the_conversation(oai):
    # The OpenAI idiom: append the previous response's message object to the conversation.
    client = ZoomWrapper(openai_client(oai), strategy="low")
    previous = openai.OpenAI(base_url=oai.url, api_key=OPENAI_KEY).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]).choices[0].message
    messages = [{"role": "user", "content": "hi"}, previous, {"role": "user", "content": "again"}]
    client.chat.completions.create(model="gpt-4o", messages=messages)  # text-only: must pass through
    assert oai.bodies[-1]["messages"][1]["role"] == "assistant"


def test_anthropic_sdk_content_blocks_in_the_conversation(ant):
    # Anthropic's documented idiom: messages.append({"role": "assistant", "content": response.content}).
    client = ZoomWrapper(anthropic_client(ant), strategy="low")
    first = client.messages.create(model="claude-test", max_tokens=10, messages=[anthropic_user()])
    messages = [anthropic_user(), {"role": "assistant", "content": first.content},
                {"role": "user", "content": "And the blue one?"}]
    response = client.messages.create(model="claude-test", max_tokens=10, messages=messages)
    assert isinstance(response, anthropic.types.Message)


def test_remote_image_urls_pass_through_unfetched(oai):
    # The wrapper never fetches a URL; the provider gets the request exactly as the caller wrote it.
    client = ZoomWrapper(openai_client(oai), strategy="low")
    message = {"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/scene.png"}},
    ]}
    client.chat.completions.create(model="gpt-4o", messages=[message])
    assert oai.bodies[-1]["messages"] == [message]


def test_the_callers_retry_setting_applies_to_zoomed_requests(oai):
    oai.enqueue({"status": 429, "headers": {"Retry-After": "0"}}, {"text": "late"})
    no_retries = openai.OpenAI(base_url=oai.url, api_key=OPENAI_KEY, max_retries=0)
    client = ZoomWrapper(no_retries, strategy="low")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[openai_user()])
    assert len(oai.bodies) == 1


# --- async clients -----------------------------------------------------------------------------------------


def test_async_openai_dropin(oai):
    oai.enqueue({"tool_calls": [{"name": "zoom", "arguments": {"crop": "bottom_right"}}]}, {"text": "async ok"})
    client = ZoomWrapper(openai_client(oai, openai.AsyncOpenAI), strategy="tool", budget=BIG)

    async def go():
        zoomed = await client.chat.completions.create(model="gpt-4o", messages=[openai_user()])
        plain = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        return zoomed, plain

    response, plain = asyncio.run(go())
    assert isinstance(response, openai.types.chat.ChatCompletion)
    assert response.choices[0].message.content == "async ok"
    assert isinstance(plain, openai.types.chat.ChatCompletion)  # text-only: the client's own coroutine
    assert oai.bodies[2]["messages"] == [{"role": "user", "content": "hi"}]
    assert [im.size for im in images_in_openai_request(oai.bodies[1])] == [(1024, 683), QUADRANT_GPT4O]
    assert center_color(images_in_openai_request(oai.bodies[1])[1]) == COLORS["bottom_right"]
    assert client.last_answer.crops == [AWARES9["bottom_right"]]


def test_async_anthropic_dropin(ant):
    ant.enqueue({"text": "async ok"})
    client = ZoomWrapper(anthropic_client(ant, anthropic.AsyncAnthropic), strategy="policy",
                         cropper=GridCropper("grid:2", k=1), budget=BIG)

    async def go():
        return await client.messages.create(model="claude-test", max_tokens=30, messages=[anthropic_user()])

    response = asyncio.run(go())
    assert isinstance(response, anthropic.types.Message)
    assert response.content[0].text == "async ok"
    (body,) = ant.bodies
    assert [im.size for im in images_in_anthropic_request(body)] == [(1024, 683), QUADRANT_CLAUDE]


# --- errors ------------------------------------------------------------------------------------------------


def test_bad_request_surfaces_as_the_sdks_own_exception(oai, ant):
    oai.enqueue({"status": 400})
    client = ZoomWrapper(openai_client(oai), strategy="low")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[openai_user()])
    assert info.value.status_code == 400
    assert len(oai.bodies) == 1  # a 400 is not retried

    ant.enqueue({"status": 400})
    aclient = ZoomWrapper(anthropic_client(ant), strategy="low")
    with pytest.raises(anthropic.BadRequestError):
        aclient.messages.create(model="claude-test", max_tokens=10, messages=[anthropic_user()])


def test_async_bad_request_surfaces_as_the_sdks_own_exception(oai):
    oai.enqueue({"status": 400})
    client = ZoomWrapper(openai_client(oai, openai.AsyncOpenAI), strategy="low")

    async def go():
        return await client.chat.completions.create(model="gpt-4o", messages=[openai_user()])

    with pytest.raises(openai.BadRequestError):
        asyncio.run(go())


def test_rate_limit_with_retry_after_zero_is_retried_transparently(oai, ant):
    oai.enqueue({"status": 429, "headers": {"Retry-After": "0"}}, {"text": "after retry"})
    client = ZoomWrapper(openai_client(oai), strategy="low")
    response = client.chat.completions.create(model="gpt-4o", messages=[openai_user()])
    assert response.choices[0].message.content == "after retry"
    assert len(oai.bodies) == 2 and oai.bodies[0] == oai.bodies[1]

    ant.enqueue({"status": 429, "headers": {"Retry-After": "0"}}, {"text": "after retry"})
    aclient = ZoomWrapper(anthropic_client(ant), strategy="low")
    response = aclient.messages.create(model="claude-test", max_tokens=10, messages=[anthropic_user()])
    assert response.content[0].text == "after retry" and len(ant.bodies) == 2


# --- ask() on a wrapped client -----------------------------------------------------------------------------


def test_ask_on_a_wrapped_openai_client(oai):
    oai.enqueue({"text": "B7-4421"})
    client = ZoomWrapper(openai_client(oai), model="gpt-4o", strategy="low")
    answer = client.ask(original(), "What is written on the red sign?")
    assert isinstance(answer, Answer) and answer.text == "B7-4421"
    assert answer.visual_tokens > 0 and answer.view_sizes == [(1024, 683)]
    assert oai.bodies[0]["model"] == "gpt-4o"


def test_ask_on_a_wrapped_anthropic_client_with_the_tool_strategy(ant):
    ant.enqueue({"tool_calls": [{"name": "zoom", "arguments": {"crop": "top_left"}}]}, {"text": "B7-4421"})
    client = ZoomWrapper(anthropic_client(ant), model="claude-test")  # default strategy: tool
    answer = client.ask(original(), "What is written on the red sign?")
    assert answer.text == "B7-4421" and answer.rounds == 1 and answer.crops == [AWARES9["top_left"]]
    assert answer.visual_tokens > 0


def test_ask_without_a_model_says_so(oai):
    with pytest.raises(ValueError, match="model"):
        ZoomWrapper(openai_client(oai)).ask(original(), "What?")


# --- secrets -----------------------------------------------------------------------------------------------


def test_api_key_never_in_repr_or_logs(oai, ant, caplog):
    caplog.set_level(logging.DEBUG)
    oai.enqueue({"status": 429, "headers": {"Retry-After": "0"}},
                {"tool_calls": [{"name": "zoom", "arguments": {"crop": "top_left"}}]}, {"text": "ok"},
                {"status": 400})
    client = ZoomWrapper(openai_client(oai), strategy="tool", model="gpt-4o")
    client.chat.completions.create(model="gpt-4o", messages=[openai_user()])
    with pytest.raises(BackendError) as ask_error:  # ask() is the library's API: its error type, key masked
        client.ask(original(), "What?", strategy="low")

    ant.enqueue({"status": 429, "headers": {"Retry-After": "0"}}, {"text": "ok"})
    aclient = ZoomWrapper(anthropic_client(ant), strategy="low")
    aclient.messages.create(model="claude-test", max_tokens=10, messages=[anthropic_user()])

    assert "retrying" in caplog.text  # our retry log line was captured (DEBUG lines of the SDKs too)
    for text in (repr(client), str(client), repr(aclient), repr(client.last_answer), str(ask_error.value),
                 caplog.text):
        assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text
