"""AnthropicBackend through the REAL anthropic SDK against the fake server: wire format, retries, async, secrets."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import anthropic
import pytest
from fake_servers import FakeAnthropicServer, images_in_anthropic_request
from PIL import Image

from backends import load_backend
from backends.anthropic_api import AnthropicBackend
from backends.anthropic_wire import from_anthropic_messages, reply_from_message, to_anthropic_messages
from backends.base import Backend, BackendError, MissingDependency
from backends.messages import ImagePart, Message, TextPart, ToolCall, ToolSpec, system, user

KEY = "sk-ant-test-DISTINCTIVE-41d0b7"
ZOOM = ToolSpec("zoom", "Look at a region in full resolution.",
                {"type": "object", "properties": {"crop": {"type": "string"}}, "required": ["crop"]})


@pytest.fixture(scope="module")
def shared_server():
    with FakeAnthropicServer(expected_key=KEY) as s:
        yield s


@pytest.fixture
def server(shared_server):
    """One server for the module (fast), reset for every test."""
    shared_server.reset()
    return shared_server


_backends: dict = {}  # backends are stateless apart from their SDK clients, so tests can share them


def make(server, **kw) -> AnthropicBackend:
    """A backend on `server`; one per setting, shared across tests (building SDK clients costs ~50 ms each)."""
    kw.setdefault("retry_wait", (0.001, 0.005))
    key = (server.url, tuple(sorted(kw.items())))
    if key not in _backends:
        _backends[key] = AnthropicBackend("claude-test", base_url=server.url, api_key=KEY, **kw)
    return _backends[key]


def picture(w: int, h: int, color="white") -> Image.Image:
    return Image.new("RGB", (w, h), color)


def test_text_reply_usage_system_and_default_max_tokens(server):
    server.enqueue({"text": "B7-4421", "usage": {"input_tokens": 1200, "output_tokens": 9}})
    reply = make(server).generate([system("Be brief."), system("Answer in English."), user("Read it.")])
    assert reply.text == "B7-4421" and reply.tool_calls == []
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (1200, 9)
    assert reply.model == "claude-test" and isinstance(reply.raw, anthropic.types.Message)
    (req,) = server.requests
    assert req.path == "/v1/messages"
    assert KEY in (req.headers.get("x-api-key"), req.headers.get("authorization", "").removeprefix("Bearer "))
    assert req.body["system"] == "Be brief.\n\nAnswer in English."
    assert req.body["max_tokens"] == 1024
    assert req.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Read it."}]}]


def test_options_override_defaults(server):
    # (`stop_sequences`, not `temperature`: the installed SDK's MessageCreateParams has no sampling options,
    # and the fake validates every body against that type.)
    make(server, max_tokens=64, stop_sequences=("END",)).generate([user("hi")], max_tokens=10)
    body = server.requests[0].body
    assert body["max_tokens"] == 10 and body["stop_sequences"] == ["END"]


def test_images_arrive_at_the_size_sent_with_labels(server):
    msg = user("Compare.", picture(640, 480), ImagePart(picture(37, 53, "black"), label="crop q2"))
    make(server).generate([msg])
    body = server.requests[0].body
    assert [im.size for im in images_in_anthropic_request(body)] == [(640, 480), (37, 53)]
    blocks = body["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "image", "text", "image"]
    assert blocks[2]["text"] == "crop q2"
    assert blocks[1]["source"]["type"] == "base64" and blocks[1]["source"]["media_type"] == "image/png"


def test_tool_schema_sent_and_tool_use_parsed(server):
    server.enqueue({"text": "Zooming in.", "tool_calls": [{"id": "toolu_1", "name": "zoom", "arguments": {"crop": "q3"}}]})
    reply = make(server).generate([user("Zoom if needed.", picture(100, 100))], tools=[ZOOM])
    assert server.requests[0].body["tools"] == [
        {"name": "zoom", "description": ZOOM.description, "input_schema": ZOOM.parameters}]
    assert reply.tool_calls == [ToolCall("toolu_1", "zoom", {"crop": "q3"})]
    assert reply.text == "Zooming in." and reply.raw.stop_reason == "tool_use"


def test_tool_results_carry_images_and_turns_merge(server):
    conversation = [
        system("You answer questions about images."),
        user("What does the sign say?"),
        user(picture(320, 240)),  # a second user message: merged into the first turn
        Message("assistant", [TextPart("Let me zoom.")], tool_calls=[
            ToolCall("toolu_a", "zoom", {"crop": "q1"}), ToolCall("toolu_b", "zoom", {"crop": "q4"})]),
        Message("tool", [TextPart("crop q1"), ImagePart(picture(200, 100), label="top-left")],
                tool_call_id="toolu_a", name="zoom"),
        Message("tool", [ImagePart(picture(150, 120))], tool_call_id="toolu_b", name="zoom"),
        user("Answer with the text only."),
    ]
    assert make(server).generate(conversation, tools=[ZOOM]).text == "ok"  # the fake accepted the turns
    body = server.requests[0].body
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert [b["type"] for b in msgs[0]["content"]] == ["text", "image"]
    assert msgs[1]["content"] == [
        {"type": "text", "text": "Let me zoom."},
        {"type": "tool_use", "id": "toolu_a", "name": "zoom", "input": {"crop": "q1"}},
        {"type": "tool_use", "id": "toolu_b", "name": "zoom", "input": {"crop": "q4"}},
    ]
    first, second, text = msgs[2]["content"]
    assert (first["type"], first["tool_use_id"]) == ("tool_result", "toolu_a")
    assert [b["type"] for b in first["content"]] == ["text", "text", "image"]
    assert first["content"][1]["text"] == "top-left"
    assert (second["tool_use_id"], [b["type"] for b in second["content"]]) == ("toolu_b", ["image"])
    assert text == {"type": "text", "text": "Answer with the text only."}
    assert [im.size for im in images_in_anthropic_request(body)] == [(320, 240), (200, 100), (150, 120)]


def test_429_waits_retry_after_then_succeeds(server):
    server.enqueue({"status": 429, "headers": {"retry-after-ms": "200"}}, {"text": "done"})
    assert make(server).generate([user("hi")]).text == "done"
    first, second = server.requests
    assert 0.19 <= second.time - first.time < 1.5


def test_overloaded_and_500_then_success(server):
    server.enqueue({"status": 529}, {"status": 500}, {"text": "done"})
    assert make(server).generate([user("hi")]).text == "done"
    assert len(server.requests) == 3


def test_400_is_not_retried(server):
    server.enqueue({"status": 400}, {"text": "never sent"})
    with pytest.raises(BackendError) as info:
        make(server).generate([user("hi")])
    assert info.value.status == 400 and len(server.requests) == 1


def test_timeout_then_success(server):
    server.enqueue({"delay": 3.0}, {"text": "fast"})
    start = time.monotonic()
    assert make(server, timeout=0.25).generate([user("hi")]).text == "fast"
    assert len(server.requests) == 2 and time.monotonic() - start < 2.0


def test_retries_exhausted(server):
    server.enqueue(*[{"status": 503}] * 2)
    with pytest.raises(BackendError) as info:
        make(server, max_retries=1).generate([user("hi")])
    assert info.value.status == 503 and "2 attempts" in str(info.value)
    assert len(server.requests) == 2


def test_async_generate_with_tool_result_images_and_retries(server):
    server.enqueue({"status": 429, "headers": {"retry-after-ms": "30"}},
                   {"tool_calls": [{"id": "toolu_9", "name": "zoom", "arguments": {"crop": "center"}}]})
    backend = make(server)
    reply = asyncio.run(backend.agenerate([user("q", picture(90, 45))], tools=[ZOOM]))
    assert reply.tool_calls == [ToolCall("toolu_9", "zoom", {"crop": "center"})]
    follow_up = [user("q", picture(90, 45)), reply.as_message(),
                 Message("tool", [ImagePart(picture(30, 20))], tool_call_id="toolu_9", name="zoom")]
    assert asyncio.run(backend.agenerate(follow_up, tools=[ZOOM])).text == "ok"
    assert len(server.requests) == 3
    assert [im.size for im in images_in_anthropic_request(server.requests[-1].body)] == [(90, 45), (30, 20)]


def test_async_400_and_timeout(server):
    backend = make(server, timeout=0.25)
    server.enqueue({"status": 400})
    with pytest.raises(BackendError) as info:
        asyncio.run(backend.agenerate([user("hi")]))
    assert info.value.status == 400 and len(server.requests) == 1
    server.enqueue({"delay": 3.0}, {"text": "late but fine"})
    assert asyncio.run(backend.agenerate([user("hi")])).text == "late but fine"


def test_api_key_never_leaks(server, caplog):
    caplog.set_level(logging.DEBUG)
    backend = make(server)
    echo = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"}}
    server.enqueue({"status": 429, "headers": {"retry-after-ms": "10"}}, {"status": 401, "body": echo})
    with pytest.raises(BackendError) as info:
        backend.generate([user("hi")])
    assert info.value.status == 401 and "***" in str(info.value)
    assert "retrying" in caplog.text and "HTTP Response" in caplog.text  # ours and the SDK's DEBUG lines
    for text in (repr(backend), str(info.value), repr(info.value), caplog.text):
        assert KEY not in text


def test_reuses_a_users_client(server):
    users_client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=6)
    backend = AnthropicBackend("claude-test", client=users_client, retry_wait=(0.001, 0.001))
    server.enqueue({"status": 500}, {"text": "via your client"})
    assert backend.generate([user("hi")]).text == "via your client"
    assert len(server.requests) == 2
    assert users_client.max_retries == 6 and backend.client.max_retries == 0
    assert KEY not in repr(backend)


def test_reuses_a_users_async_client(server):
    backend = AnthropicBackend("claude-test", client=anthropic.AsyncAnthropic(api_key=KEY, base_url=server.url))
    assert asyncio.run(backend.agenerate([user("hi")])).text == "ok"
    with pytest.raises(BackendError, match="agenerate"):
        backend.generate([user("hi")])


def test_spec_string_and_missing_key(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    backend = load_backend("anthropic:claude-test", base_url=server.url)
    assert isinstance(backend, Backend) and backend.provider == "anthropic" and backend.supports_tool_images
    assert backend.generate([user("hi")]).text == "ok"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(BackendError, match="ANTHROPIC_API_KEY"):
        AnthropicBackend("claude-sonnet-4-5")


def test_fake_server_rejects_what_anthropic_rejects(server):
    client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
    text_before_result = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "zoom", "input": {}}]},
        {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    for messages in (text_before_result, [{"role": "user", "content": [{"type": "text", "text": ""}]}]):
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="m", max_tokens=5, messages=messages)


def test_missing_sdk_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(MissingDependency, match="pip install anthropic"):
        AnthropicBackend("claude-sonnet-4-5", api_key=KEY)


# ---- the pure converters ------------------------------------------------------------------------------


def same_messages(a: list[Message], b: list[Message]) -> bool:
    """Equal roles, texts, tool calls and ids, and pixel-identical images."""
    def key(m: Message):
        parts = [(p.text,) if isinstance(p, TextPart) else (p.image.size, p.image.tobytes()) for p in m.content]
        return m.role, parts, m.tool_calls, m.tool_call_id, m.name
    return [key(m) for m in a] == [key(m) for m in b]


def test_round_trip_is_lossless():
    noisy = Image.effect_noise((48, 40), 60).convert("RGB")
    conversation = [
        system("sys"),
        user("look", noisy),
        Message("assistant", [TextPart("Zooming.")], tool_calls=[ToolCall("t1", "zoom", {"crop": "q1"})]),
        Message("tool", [TextPart("crop q1"), ImagePart(noisy.crop((0, 0, 20, 20)))], tool_call_id="t1", name="zoom"),
        user("and now?"),
        Message("assistant", [TextPart("It reads 42.")]),
    ]
    system_text, wire = to_anthropic_messages(conversation)
    assert system_text == "sys" and [m["role"] for m in wire] == ["user", "assistant", "user", "assistant"]
    assert same_messages(from_anthropic_messages(wire, system=system_text), conversation)


def test_from_anthropic_accepts_strings_and_skips_thinking():
    msgs = from_anthropic_messages(
        [{"role": "user", "content": "hi"},
         {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                           {"type": "text", "text": "hello"}]}],
        system=[{"type": "text", "text": "be kind"}],
    )
    assert [(m.role, m.text) for m in msgs] == [("system", "be kind"), ("user", "hi"), ("assistant", "hello")]


def test_remote_image_sources_are_refused_clearly():
    remote = [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]}]
    with pytest.raises(ValueError, match="not fetched"):
        from_anthropic_messages(remote)


def test_images_cannot_go_in_the_system_prompt():
    with pytest.raises(ValueError, match="system"):
        to_anthropic_messages([Message("system", [ImagePart(picture(4, 4))]), user("hi")])


def test_reply_counts_cached_input_tokens():
    message = anthropic.types.Message.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
        "content": [{"type": "text", "text": "The sign says "}, {"type": "text", "text": "STOP."}],
        "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 1000,
                  "cache_creation_input_tokens": 5},
    })
    reply = reply_from_message(message)
    assert reply.text == "The sign says STOP." and reply.usage.input_tokens == 1015 and reply.usage.output_tokens == 4
