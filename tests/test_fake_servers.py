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
