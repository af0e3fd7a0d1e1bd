"""OpenAIBackend through the REAL openai SDK against the fake server: wire format, retries, async, secrets."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import openai
import pytest
from fake_servers import FakeOpenAIServer, images_in_openai_request
from PIL import Image

from backends import load_backend
from backends.base import Backend, BackendError, MissingDependency
from backends.messages import ImagePart, Message, TextPart, ToolCall, ToolSpec, system, user
from backends.openai_api import OpenAIBackend
from backends.openai_wire import from_openai_messages, parse_arguments, reply_from_completion, to_openai_messages

KEY = "sk-test-DISTINCTIVE-7f3a9c51e2"
ZOOM = ToolSpec("zoom", "Look at a region in full resolution.",
                {"type": "object", "properties": {"crop": {"type": "string"}}, "required": ["crop"]})


@pytest.fixture(scope="module")
def shared_server():
    with FakeOpenAIServer(expected_key=KEY) as s:
        yield s


@pytest.fixture
def server(shared_server):
    """One server for the module (fast), reset for every test."""
    shared_server.reset()
    return shared_server


_backends: dict = {}  # backends are stateless apart from their SDK clients, so tests can share them


def make(server, **kw) -> OpenAIBackend:
    """A backend on `server`; one per setting, shared across tests (building SDK clients costs ~50 ms each)."""
    kw.setdefault("retry_wait", (0.001, 0.005))
    key = (server.url, tuple(sorted(kw.items())))
    if key not in _backends:
        _backends[key] = OpenAIBackend("gpt-test", base_url=server.url, api_key=KEY, **kw)
    return _backends[key]


def picture(w: int, h: int, color="white") -> Image.Image:
    return Image.new("RGB", (w, h), color)


def tool_conversation() -> list[Message]:
    """A zoom round trip: two calls, the first answered with text + an image, the second with an image only."""
    return [
        system("You answer questions about images."),
        user("What does the sign say?", picture(320, 240)),
        Message("assistant", [TextPart("Let me zoom.")], tool_calls=[
            ToolCall("call_a", "zoom", {"crop": "q1"}), ToolCall("call_b", "zoom", {"crop": "q4"})]),
        Message("tool", [TextPart("crop q1"), ImagePart(picture(200, 100), label="top-left quadrant")],
                tool_call_id="call_a", name="zoom"),
        Message("tool", [ImagePart(picture(150, 120))], tool_call_id="call_b", name="zoom"),
    ]


def test_text_reply_carries_usage_and_model(server):
    server.enqueue({"text": "B7-4421", "usage": {"input_tokens": 321, "output_tokens": 7}})
    # `top_k` is no OpenAI parameter (vLLM takes it): it must reach the server in the body, not crash the SDK.
    reply = make(server).generate([system("Be brief."), user("Read it.")], temperature=0, top_k=5)
    assert reply.text == "B7-4421"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (321, 7)
    assert reply.model == "gpt-test" and reply.tool_calls == []
    assert isinstance(reply.raw, openai.types.chat.ChatCompletion)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions" and req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "gpt-test" and req.body["temperature"] == 0 and req.body["top_k"] == 5
    assert req.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Read it."}]


def test_images_arrive_at_the_size_sent_with_detail_and_label(server):
    msg = user("Compare.", ImagePart(picture(640, 480), detail="low"),
               ImagePart(picture(37, 53, "black"), detail="high", label="crop at [0.1, 0.1, 0.2, 0.3]"))
    make(server).generate([msg])
    body = server.requests[0].body
    assert [im.size for im in images_in_openai_request(body)] == [(640, 480), (37, 53)]
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url"]
    assert parts[1]["image_url"]["detail"] == "low" and parts[3]["image_url"]["detail"] == "high"
    assert parts[2]["text"] == "crop at [0.1, 0.1, 0.2, 0.3]"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_jpeg_option_sends_jpeg(server):
    make(server, image_format="jpeg").generate([user("x", picture(64, 64))])
    url = server.requests[0].body["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert images_in_openai_request(server.requests[0].body)[0].format == "JPEG"


def test_tool_schema_sent_and_tool_call_parsed(server):
    server.enqueue({"text": "", "tool_calls": [{"id": "call_7", "name": "zoom", "arguments": {"crop": "q2"}}]})
    reply = make(server).generate([user("Zoom if needed.", picture(100, 100))], tools=[ZOOM], tool_choice="auto")
    assert server.requests[0].body["tools"] == [{"type": "function", "function": {
        "name": "zoom", "description": ZOOM.description, "parameters": ZOOM.parameters}}]
    assert server.requests[0].body["tool_choice"] == "auto"
    assert reply.tool_calls == [ToolCall("call_7", "zoom", {"crop": "q2"})]
    assert reply.text == ""
    assert reply.as_message().tool_calls == reply.tool_calls


def test_malformed_tool_arguments_do_not_crash(server):
    server.enqueue({"tool_calls": [{"id": "c1", "name": "zoom", "arguments": '{"crop": "q2"'}]})
    reply = make(server).generate([user("hi")], tools=[ZOOM])
    assert reply.tool_calls == [ToolCall("c1", "zoom", {"_raw": '{"crop": "q2"'})]


def test_tool_results_with_images_follow_as_user_messages(server):
    reply = make(server).generate(tool_conversation(), tools=[ZOOM])
    assert reply.text == "ok"  # the fake accepted the order: every call answered before the user messages
    msgs = server.requests[0].body["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "tool", "user", "user"]
    assistant = msgs[2]
    assert assistant["content"] == "Let me zoom."
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        ("call_a", "zoom", '{"crop": "q1"}'), ("call_b", "zoom", '{"crop": "q4"}')]
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_a", "content": "crop q1"}
    assert msgs[4]["tool_call_id"] == "call_b" and isinstance(msgs[4]["content"], str) and msgs[4]["content"]
    assert "call_a" in msgs[5]["content"][0]["text"] and "call_b" in msgs[6]["content"][0]["text"]
    assert msgs[5]["content"][1] == {"type": "text", "text": "top-left quadrant"}
    sizes = [im.size for im in images_in_openai_request(server.requests[0].body)]
    assert sizes == [(320, 240), (200, 100), (150, 120)]


def test_429_waits_retry_after_then_succeeds(server):
    server.enqueue({"status": 429, "headers": {"Retry-After": "1"}}, {"text": "done"})
    assert make(server).generate([user("hi")]).text == "done"
    first, second = server.requests
    assert 0.95 <= second.time - first.time < 2.5


def test_429_with_retry_after_ms(server):
    server.enqueue({"status": 429, "headers": {"retry-after-ms": "150"}}, {"text": "done"})
    assert make(server).generate([user("hi")]).text == "done"
    assert 0.14 <= server.requests[1].time - server.requests[0].time < 1.0


def test_500_then_success(server):
    server.enqueue({"status": 500}, {"status": 503}, {"text": "done"})
    assert make(server).generate([user("hi")]).text == "done"
    assert len(server.requests) == 3


def test_400_is_not_retried(server):
    server.enqueue({"status": 400}, {"text": "never sent"})
    with pytest.raises(BackendError) as info:
        make(server).generate([user("hi")])
    assert info.value.status == 400 and "400" in str(info.value)
    assert len(server.requests) == 1


def test_timeout_then_success(server):
    server.enqueue({"delay": 3.0}, {"text": "fast"})
    start = time.monotonic()
    assert make(server, timeout=0.25).generate([user("hi")]).text == "fast"
    assert len(server.requests) == 2 and time.monotonic() - start < 2.0


def test_retries_exhausted(server):
    server.enqueue(*[{"status": 502}] * 3)
    with pytest.raises(BackendError) as info:
        make(server, max_retries=2).generate([user("hi")])
    assert info.value.status == 502 and "3 attempts" in str(info.value)
    assert len(server.requests) == 3


def test_connection_refused_is_retried_then_reported():
    with FakeOpenAIServer() as s:
        url = s.url
    backend = OpenAIBackend("m", base_url=url, api_key=KEY, max_retries=1, retry_wait=(0.001, 0.001))
    with pytest.raises(BackendError) as info:
        backend.generate([user("hi")])
    assert info.value.status is None and "2 attempts" in str(info.value)


def test_async_generate_with_images_and_retries(server):
    server.enqueue({"status": 429, "headers": {"retry-after-ms": "50"}}, {"status": 500},
                   {"tool_calls": [{"id": "c9", "name": "zoom", "arguments": {"crop": "center"}}]})
    reply = asyncio.run(make(server).agenerate([user("q", picture(90, 45))], tools=[ZOOM]))
    assert reply.tool_calls == [ToolCall("c9", "zoom", {"crop": "center"})]
    assert len(server.requests) == 3
    assert [im.size for im in images_in_openai_request(server.requests[-1].body)] == [(90, 45)]


def test_async_400_and_timeout(server):
    backend = make(server, timeout=0.25)
    server.enqueue({"status": 400})
    with pytest.raises(BackendError) as info:
        asyncio.run(backend.agenerate([user("hi")]))
    assert info.value.status == 400 and len(server.requests) == 1
    server.enqueue({"delay": 3.0}, {"text": "late but fine"})
    assert asyncio.run(backend.agenerate([user("hi")])).text == "late but fine"
    assert len(server.requests) == 3


def test_api_key_never_leaks(server, caplog):
    caplog.set_level(logging.DEBUG)
    backend = make(server)
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                      "param": None, "code": "invalid_api_key"}}
    server.enqueue({"status": 429, "headers": {"retry-after-ms": "10"}}, {"status": 401, "body": echo})
    with pytest.raises(BackendError) as info:
        backend.generate([user("hi")])
    assert info.value.status == 401 and "***" in str(info.value)
    assert "retrying" in caplog.text and "HTTP Response" in caplog.text  # ours and the SDK's DEBUG lines  # our retry log line was captured...
    for text in (repr(backend), str(backend), str(info.value), repr(info.value), caplog.text):
        assert KEY not in text  # ...and nothing anywhere shows the key


def test_reuses_a_users_client(server):
    users_client = openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=7)
    backend = OpenAIBackend("gpt-test", client=users_client, retry_wait=(0.001, 0.001))
    server.enqueue({"status": 500}, {"text": "via your client"})
    assert backend.generate([user("hi")]).text == "via your client"
    assert len(server.requests) == 2  # one policy: ours (the SDK's own 7 retries are off in our copy)
    assert users_client.max_retries == 7 and backend.client.max_retries == 0
    assert KEY not in repr(backend)


def test_reuses_a_users_async_client(server):
    backend = OpenAIBackend("gpt-test", client=openai.AsyncOpenAI(api_key=KEY, base_url=server.url))
    assert asyncio.run(backend.agenerate([user("hi")])).text == "ok"
    with pytest.raises(BackendError, match="agenerate"):
        backend.generate([user("hi")])


def test_sync_client_serves_agenerate_too(server):
    backend = OpenAIBackend("gpt-test", client=openai.OpenAI(api_key=KEY, base_url=server.url))
    assert asyncio.run(backend.agenerate([user("hi")])).text == "ok"


def test_compatible_server_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as s:
        backend = load_backend(f"openai-compatible:{s.url}#qwen2.5-vl-7b", retry_wait=(0.001, 0.001))
        assert isinstance(backend, Backend) and backend.provider == "openai" and not backend.supports_tool_images
        assert backend.generate([user("hi")]).text == "ok"
        assert s.requests[0].headers["authorization"] == "Bearer EMPTY"
        assert s.requests[0].body["model"] == "qwen2.5-vl-7b"
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4.1-mini")


def test_key_from_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert OpenAIBackend("gpt-test", base_url=server.url).generate([user("hi")]).text == "ok"


def test_fake_server_rejects_what_openai_rejects(server):
    client = openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=0)
    bad = [{"role": "tool", "tool_call_id": "nope", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=bad)
    assert client.models.list().data[0].id == "fake-model"


def test_missing_sdk_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingDependency, match="pip install openai"):
        OpenAIBackend("gpt-4.1-mini", api_key=KEY)


# ---- the pure converters ------------------------------------------------------------------------------


def same_messages(a: list[Message], b: list[Message]) -> bool:
    """Equal roles, texts, tool calls and ids, and pixel-identical images."""
    def key(m: Message):
        parts = [(p.text,) if isinstance(p, TextPart) else (p.image.size, p.image.tobytes(), p.detail) for p in m.content]
        return m.role, parts, m.tool_calls, m.tool_call_id, m.name
    return [key(m) for m in a] == [key(m) for m in b]


def test_round_trip_is_lossless_without_tool_images():
    noisy = Image.effect_noise((48, 40), 60).convert("RGB")  # pixel-exact check: PNG must be lossless
    conversation = [
        system("sys"),
        user("look", ImagePart(noisy, detail="high")),
        Message("assistant", [], tool_calls=[ToolCall("c1", "zoom", {"crop": "q1", "scale": 2})]),
        Message("tool", [TextPart("no text found")], tool_call_id="c1", name="zoom"),
        Message("assistant", [TextPart("Nothing there.")]),
    ]
    assert same_messages(from_openai_messages(to_openai_messages(conversation)), conversation)


def test_wire_is_stable_through_a_round_trip_with_tool_images():
    wire = to_openai_messages(tool_conversation())
    assert to_openai_messages(from_openai_messages(wire)) == wire


def test_pending_tool_images_are_sent_before_the_next_turn():
    conversation = tool_conversation() + [Message("assistant", [TextPart("It says STOP.")])]
    roles = [m["role"] for m in to_openai_messages(conversation)]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user", "user", "assistant"]


def test_from_openai_accepts_the_forms_users_send():
    url = to_openai_messages([user(picture(12, 34))])[0]["content"][0]["image_url"]["url"]
    msgs = from_openai_messages([
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": url}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "zoom", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "done"}]},
    ])
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool"]
    assert msgs[1].images[0].image.size == (12, 34) and msgs[1].images[0].image.mode == "RGB"
    assert msgs[2].tool_calls == [ToolCall("c1", "zoom", {})]
    assert (msgs[3].name, msgs[3].text) == ("zoom", "done")


def test_remote_image_urls_are_refused_clearly():
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]
    with pytest.raises(ValueError, match="not fetched"):
        from_openai_messages(remote)
    with pytest.raises(ValueError, match="base64"):
        from_openai_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}]}])


def test_parse_arguments_never_crashes():
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments("[1, 2]") == {"_raw": "[1, 2]"}
    assert parse_arguments("{oops") == {"_raw": "{oops"}


def test_reply_from_completion_without_usage_and_with_refusal():
    completion = openai.types.chat.ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}}],
    })
    reply = reply_from_completion(completion)
    assert reply.text == "I can't help with that." and reply.usage.input_tokens is None and reply.raw is completion
