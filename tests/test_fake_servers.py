"""The fake servers' own script features (the backend tests cover the common paths)."""

from __future__ import annotations

import anthropic
import openai
import pytest
from fake_servers import FakeAnthropicServer, FakeOpenAIServer


def test_responder_default_raw_and_reset():
    with FakeOpenAIServer() as server:
        client = openai.OpenAI(api_key="k", base_url=server.url, max_retries=0)
        ask = lambda: client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])  # noqa: E731
        assert ask().choices[0].message.content == "ok"  # the default reply
        server.responder = lambda body: {"text": f"echo {body['messages'][-1]['content']}"}
        assert ask().choices[0].message.content == "echo hi"
        raw = {"id": "x", "object": "chat.completion", "created": 1, "model": "raw-model",
               "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "r"}}]}
        server.enqueue({"raw": raw}, {"delay": 0.05, "text": "late"})
        assert ask().model == "raw-model"
        assert ask().choices[0].message.content == "late"
        assert len(server.requests) == 4 and server.pending == 0
        server.reset()
        assert server.requests == [] and ask().choices[0].message.content == "ok"


def test_wrong_key_unknown_route_and_broken_script():
    with FakeAnthropicServer(expected_key="right") as server:
        wrong = anthropic.Anthropic(api_key="wrong", base_url=server.url, max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            wrong.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        client = anthropic.Anthropic(api_key="right", base_url=server.url, max_retries=0)
        server.enqueue({"tool_calls": [{"name": "zoom", "arguments": "{not json"}]})
        with pytest.raises(anthropic.InternalServerError, match="fake server error"):
            client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.NotFoundError):
            client.models.list()


# ---- documented rules: each test shows the refusal (the API's status and text) and an accepted twin ------------

import base64  # noqa: E402
import io  # noqa: E402

from PIL import Image  # noqa: E402

TOOLS_OA = [{"type": "function", "function": {"name": "zoom", "parameters": {"type": "object", "properties": {}}}}]
TOOLS_AN = [{"name": "zoom", "input_schema": {"type": "object", "properties": {}}}]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def oa():
    with FakeOpenAIServer() as server:
        yield server, openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)


@pytest.fixture
def an():
    with FakeAnthropicServer() as server:
        yield server, anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)


def png_b64(width: int = 4, height: int = 4, pad: int = 0) -> str:
    """A white PNG as base64, `pad` zero bytes after IEND (to reach a byte size without encoding pixels)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, "PNG")
    return base64.b64encode(buf.getvalue() + b"\0" * pad).decode()


def oa_image(b64: str) -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}


def an_image(b64: str) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}


def oa_user(*images: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "look"}, *images]}]


def an_user(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "look"}]}]


# -- OpenAI chat completions

def test_openai_body_is_validated_against_the_official_schema(oa):
    server, client = oa
    with pytest.raises(openai.BadRequestError, match="n: matches none of") as err:
        client.chat.completions.create(model="m", messages=HI, n="two")  # the semantic checks ignore `n`
    assert err.value.body["type"] == "invalid_request_error"
    assert client.chat.completions.create(model="m", messages=HI, n=1).choices[0].message.content == "ok"


@pytest.mark.parametrize("key, value", [("parallel_tool_calls", False), ("tool_choice", "auto")])
def test_openai_tool_options_need_tools(oa, key, value):
    server, client = oa
    with pytest.raises(openai.BadRequestError, match=f"Invalid value for '{key}': '{key}' is only allowed when "
                                                     "'tools' are specified."):
        client.chat.completions.create(model="m", messages=HI, **{key: value})
    client.chat.completions.create(model="m", messages=HI, tools=TOOLS_OA, **{key: value})


def test_openai_images_only_in_user_messages_and_tool_calls_answered(oa):
    server, client = oa
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "zoom", "arguments": "{}"}}]}
    image = oa_image(png_b64())
    with pytest.raises(openai.BadRequestError, match="messages/2/content/0.*allowed type/role values: \\['text'\\]"):
        client.chat.completions.create(model="m", tools=TOOLS_OA, messages=[
            *HI, call, {"role": "tool", "tool_call_id": "c1", "content": [image]}])
    with pytest.raises(openai.BadRequestError, match="must be followed by tool messages.*\\['c1'\\]"):
        client.chat.completions.create(model="m", tools=TOOLS_OA, messages=[*HI, call, *HI])
    client.chat.completions.create(model="m", tools=TOOLS_OA, messages=[
        *HI, call, {"role": "tool", "tool_call_id": "c1", "content": "done"}, *oa_user(image)])


def test_openai_one_image_over_20_mb(oa):
    server, client = oa
    with pytest.raises(openai.BadRequestError, match="content\\[1\\].image_url.url.*over the 20 MB per-image limit"):
        client.chat.completions.create(model="m", messages=oa_user(oa_image(png_b64(pad=20 * 2**20 + 1))))
    client.chat.completions.create(model="m", messages=oa_user(oa_image(png_b64(pad=20 * 2**20 - 100))))


def test_openai_all_images_over_50_mb(oa):
    server, client = oa
    image = oa_image(png_b64(pad=17 * 2**20))
    with pytest.raises(openai.BadRequestError, match="Total image size is 51.00 MB, which exceeds the allowed "
                                                     "limit of 50MB."):
        client.chat.completions.create(model="m", messages=oa_user(image, image, image))
    client.chat.completions.create(model="m", messages=oa_user(image, image))


def test_openai_more_than_500_images(oa):
    server, client = oa
    image = oa_image(png_b64())
    with pytest.raises(openai.BadRequestError, match="Too many images in request: 501 > 500"):
        client.chat.completions.create(model="m", messages=oa_user(*[image] * 501))
    client.chat.completions.create(model="m", messages=oa_user(*[image] * 500))


def test_openai_stream_is_server_sent_chunks(oa):
    server, client = oa
    server.enqueue({"text": "hello there"},
                   {"text": "", "tool_calls": [{"id": "call_1", "name": "zoom", "arguments": {"crop": "q1"}}]})
    chunks = list(client.chat.completions.create(model="m", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2 and "".join(pieces) == "hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    calls = [t for c in client.chat.completions.create(model="m", messages=HI, tools=TOOLS_OA, stream=True)
             for t in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "call_1" and calls[0].function.name == "zoom"
    assert "".join(t.function.arguments for t in calls) == '{"crop": "q1"}'
    assert server.requests[-1].body["stream"] is True


# -- OpenAI Responses

def test_openai_responses_endpoint(oa):
    server, client = oa
    server.enqueue({"text": "a cat"}, {"tool_calls": [{"id": "call_9", "name": "zoom", "arguments": {"crop": "q2"}}]})
    tools = [{"type": "function", "name": "zoom", "parameters": {"type": "object", "properties": {}}, "strict": False}]
    response = client.responses.create(model="m", input="what is it?")
    assert response.output_text == "a cat" and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    response = client.responses.create(model="m", input="zoom please", tools=tools)
    call = response.output[0]
    assert (call.type, call.call_id, call.name, call.arguments) == ("function_call", "call_9", "zoom", '{"crop": "q2"}')
    image = {"type": "input_image", "image_url": f"data:image/png;base64,{png_b64()}"}
    turn = [{"role": "user", "content": "zoom please"},
            {"type": "function_call", "call_id": "call_9", "name": "zoom", "arguments": call.arguments}]
    output = {"type": "function_call_output", "call_id": "call_9",
              "output": [{"type": "input_text", "text": "q2"}, image]}
    assert client.responses.create(model="m", input=[*turn, output], tools=tools).output_text == "ok"  # images allowed
    assert server.bodies[-1]["input"][2]["output"][1]["type"] == "input_image" and len(server.bodies) == 3
    with pytest.raises(openai.BadRequestError, match="No tool call found for function call output with call_id call_9"):
        client.responses.create(model="m", input=[turn[0], output], tools=tools)
    with pytest.raises(openai.BadRequestError, match="No tool output found for function call call_9"):
        client.responses.create(model="m", input=turn, tools=tools)
    with pytest.raises(openai.BadRequestError, match="Supported values are: 'output_text' and 'refusal'"):
        client.responses.create(model="m", input=[{"role": "assistant",
                                                    "content": [{"type": "input_text", "text": "x"}]}])
    with pytest.raises(openai.BadRequestError, match="input"):  # the official schema: `input` holds no such item
        client.responses.create(model="m", input=[{"type": "no_such_item"}])


# -- Anthropic messages

def test_anthropic_body_is_validated_against_the_sdk_schema_beta_when_the_header_says(an):
    server, client = an
    with pytest.raises(anthropic.BadRequestError, match="messages.0.content.0"):
        client.messages.create(model="m", max_tokens=5, messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi", "colour": "red"}]}])
    with pytest.raises(anthropic.BadRequestError, match="mcp_servers"):  # a beta-only parameter, no beta header
        client.messages.create(model="m", max_tokens=5, messages=HI, extra_body={"mcp_servers": []})
    client.beta.messages.create(model="m", max_tokens=5, messages=HI, mcp_servers=[], betas=["mcp-client-2025-04-04"])
    assert server.requests[-1].headers["anthropic-beta"] == "mcp-client-2025-04-04"


def test_anthropic_image_over_5_mb_of_base64(an):
    server, client = an
    big = png_b64(pad=3_932_200)  # base64 of 5,242,936 characters
    with pytest.raises(anthropic.BadRequestError, match=f"messages.0.content.0.image.source.base64: image exceeds 5 MB "
                                                        f"maximum: {len(big)} bytes > 5242880 bytes"):
        client.messages.create(model="m", max_tokens=5, messages=an_user(an_image(big)))
    client.messages.create(model="m", max_tokens=5, messages=an_user(an_image(png_b64(pad=3_932_000))))


def test_anthropic_image_side_over_8000_px(an):
    server, client = an
    with pytest.raises(anthropic.BadRequestError, match="At least one of the image dimensions exceed max allowed "
                                                        "size: 8000 pixels"):
        client.messages.create(model="m", max_tokens=5, messages=an_user(an_image(png_b64(8001, 1))))
    client.messages.create(model="m", max_tokens=5, messages=an_user(an_image(png_b64(8000, 1))))


@pytest.mark.parametrize("top_level, refused", [(20, True), (19, False)])
def test_anthropic_many_image_requests_cap_sides_at_2000_px(an, top_level, refused):
    server, client = an
    small = an_image(png_b64())
    messages = [*an_user(*[small] * top_level),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "zoom", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                              "content": [an_image(png_b64(2001, 1))]}]}]
    ask = lambda: client.messages.create(model="m", max_tokens=5, tools=TOOLS_AN, messages=messages)  # noqa: E731
    if refused:  # 21 images counted with the one inside the tool_result
        with pytest.raises(anthropic.BadRequestError, match="messages.2.content.0.tool_result.content.0.image.source."
                           "base64.data: At least one of the image dimensions exceed max allowed size for many-image "
                           "requests: 2000 pixels"):
            ask()
    else:
        ask()


def test_anthropic_more_than_100_images(an):
    server, client = an
    small = an_image(png_b64())
    with pytest.raises(anthropic.BadRequestError, match="too many images: 101 > 100"):
        client.messages.create(model="m", max_tokens=5, messages=an_user(*[small] * 101))
    client.messages.create(model="m", max_tokens=5, messages=an_user(*[small] * 100))


def test_anthropic_body_over_32_mb_is_413(an):
    server, client = an
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x" * (32 * 2**20)}])
    assert err.value.status_code == 413
    assert err.value.body["error"] == {"type": "request_too_large", "message": "Request exceeds the maximum size"}
    client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x" * (32 * 2**20 - 200)}])


def test_anthropic_tool_blocks_and_tool_choice_need_tools(an):
    server, client = an
    turn = [*HI, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "zoom", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}]
    with pytest.raises(anthropic.BadRequestError, match="Requests which include `tool_use` or `tool_result` blocks "
                                                        "must define tools."):
        client.messages.create(model="m", max_tokens=5, messages=turn)
    client.messages.create(model="m", max_tokens=5, messages=turn, tools=TOOLS_AN)
    with pytest.raises(anthropic.BadRequestError, match="tool_choice may only be specified while providing tools"):
        client.messages.create(model="m", max_tokens=5, messages=HI, tool_choice={"type": "auto"})
    client.messages.create(model="m", max_tokens=5, messages=HI, tool_choice={"type": "auto"}, tools=TOOLS_AN)


THINK = {"type": "enabled", "budget_tokens": 1024}


def _thinking_turn(client, server) -> list[dict]:
    """A first turn whose reply starts with a signed thinking block, then calls zoom; the conversation so far."""
    server.enqueue({"thinking": "I should zoom", "tool_calls": [{"id": "t1", "name": "zoom", "arguments": {}}]})
    reply = client.messages.create(model="m", max_tokens=2048, messages=HI, tools=TOOLS_AN, thinking=THINK)
    assert reply.content[0].type == "thinking" and isinstance(reply.content[0].signature, str)
    return [*HI, {"role": "assistant", "content": [b.to_dict() for b in reply.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}]


def test_anthropic_thinking_final_assistant_turn_starts_with_thinking(an):
    server, client = an
    messages = _thinking_turn(client, server)

    def ask(msgs, **kw):
        return client.messages.create(model="m", max_tokens=2048, messages=msgs, tools=TOOLS_AN, **kw)

    ask(messages, thinking=THINK)
    stripped = [messages[0], {**messages[1], "content": messages[1]["content"][1:]}, messages[2]]
    with pytest.raises(anthropic.BadRequestError, match="messages.1.content.0.type: Expected `thinking` or "
                       "`redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` "
                       "message must start with a thinking block \\(preceeding the lastmost set of `tool_use` and "
                       "`tool_result` blocks\\)."):
        ask(stripped, thinking=THINK)
    ask(stripped)  # without thinking the rule does not apply


def test_anthropic_thinking_signatures_are_checked(an):
    server, client = an
    messages = _thinking_turn(client, server)
    block = messages[1]["content"][0]

    def ask(blk):
        turn = {"role": "assistant", "content": [blk, *messages[1]["content"][1:]]}
        return client.messages.create(model="m", max_tokens=2048, tools=TOOLS_AN, thinking=THINK,
                                      messages=[messages[0], turn, messages[2]])

    for bad in ({**block, "thinking": "I should zoom!"}, {**block, "signature": base64.b64encode(b"x" * 48).decode()}):
        with pytest.raises(anthropic.BadRequestError, match="messages.1.content.0: Invalid `signature` in `thinking`"):
            ask(bad)
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        ask({"type": "thinking", "thinking": "I should zoom"})
    ask(block)
    server.enqueue({"redacted_thinking": "opaque-data", "tool_calls": [{"id": "t1", "name": "zoom", "arguments": {}}]})
    redacted = client.messages.create(model="m", max_tokens=2048, messages=HI, tools=TOOLS_AN,
                                      thinking=THINK).content[0]
    assert redacted.to_dict() == {"type": "redacted_thinking", "data": "opaque-data"}
    ask(redacted.to_dict())
    with pytest.raises(anthropic.BadRequestError, match="Invalid `data` in `redacted_thinking` block"):
        ask({"type": "redacted_thinking", "data": "forged"})


def test_anthropic_thinking_forbids_forced_tool_use_and_checks_the_budget(an):
    server, client = an
    ask = lambda **kw: client.messages.create(model="m", messages=HI, tools=TOOLS_AN, **kw)  # noqa: E731
    for forced in ({"type": "any"}, {"type": "tool", "name": "zoom"}):
        with pytest.raises(anthropic.BadRequestError, match="Thinking may not be enabled when tool_choice forces tool "
                                                            "use."):
            ask(max_tokens=2048, thinking=THINK, tool_choice=forced)
        ask(max_tokens=2048, tool_choice=forced)
    ask(max_tokens=2048, thinking=THINK, tool_choice={"type": "auto"})
    with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
        ask(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1000})
    with pytest.raises(anthropic.BadRequestError, match="`max_tokens` must be greater than `thinking.budget_tokens`"):
        ask(max_tokens=1024, thinking=THINK)


def test_anthropic_stream_is_the_documented_event_sequence(an):
    server, client = an
    server.enqueue({"thinking": "hmm, zoom", "text": "let me look", "tool_calls": [
        {"id": "t1", "name": "zoom", "arguments": {"crop": "q1"}}]}, {"text": "hello there"})
    events = list(client.messages.create(model="m", max_tokens=2048, messages=HI, tools=TOOLS_AN, thinking=THINK,
                                         stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert [e.content_block.type for e in events if e.type == "content_block_start"] == ["thinking", "text", "tool_use"]
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert "".join(d.text for d in deltas if d.type == "text_delta") == "let me look"
    assert sum(d.type == "text_delta" for d in deltas) >= 2
    assert "".join(d.partial_json for d in deltas if d.type == "input_json_delta") == '{"crop": "q1"}'
    assert [d.type for d in deltas].count("signature_delta") == 1
    assert events[-2].delta.stop_reason == "tool_use" and events[-2].usage.output_tokens > 0
    with client.messages.stream(model="m", max_tokens=5, messages=HI) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "hello there" and final.stop_reason == "end_turn"
    thinking = next(e.content_block for e in events if e.type == "content_block_start")
    signature = next(d.signature for d in deltas if d.type == "signature_delta")
    assert thinking.type == "thinking" and signature  # a streamed signature is one the server accepts back:
    client.messages.create(model="m", max_tokens=2048, tools=TOOLS_AN, thinking=THINK, messages=[*HI, {
        "role": "assistant", "content": [{"type": "thinking", "thinking": "hmm, zoom", "signature": signature},
                                         {"type": "tool_use", "id": "t1", "name": "zoom", "input": {"crop": "q1"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}])


def test_anthropic_thinking_in_a_scripted_raw_reply_counts_as_signed(an):
    server, client = an
    thinking = {"type": "thinking", "thinking": "zoom top left", "signature": "sig-raw-1"}
    server.enqueue({"raw": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                            "stop_reason": "tool_use", "stop_sequence": None,
                            "usage": {"input_tokens": 5, "output_tokens": 5},
                            "content": [thinking, {"type": "tool_use", "id": "t1", "name": "zoom", "input": {}}]}})
    reply = client.messages.create(model="m", max_tokens=2048, messages=HI, tools=TOOLS_AN, thinking=THINK)
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}
    turn = {"role": "assistant", "content": [b.to_dict() for b in reply.content]}
    client.messages.create(model="m", max_tokens=2048, tools=TOOLS_AN, thinking=THINK, messages=[*HI, turn, result])
    turn["content"][0] = {**thinking, "thinking": "zoom top right"}
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
        client.messages.create(model="m", max_tokens=2048, tools=TOOLS_AN, thinking=THINK, messages=[*HI, turn, result])
