"""`cropper serve` on 127.0.0.1, driven by the real `openai` SDK (sync, async, streaming), in front of the
reader and in front of a loopback fake OpenAI upstream."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest
from fake_servers import FakeAnthropicServer, FakeOpenAIServer, images_in_anthropic_request, images_in_openai_request
from serve_support import RunningProxy, ask, noise, page

from cropper.serve import ServeConfig
from cropper.serve.remote_images import RemoteImageError, check_public_host

READER = dict(upstream="reader", strategy="tool", global_side=160)


def test_reader_upstream_zooms_and_answers_sync_async_and_streaming():
    with RunningProxy(ServeConfig(**READER)) as proxy:
        client = openai.OpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
        response = client.chat.completions.create(model="reader", messages=ask("What is the invoice?", page()))
        assert response.choices[0].message.content == "K4521"
        extra = response.model_extra["cropper"]
        assert extra["crops"] and extra["visual_tokens"] < extra["full_image_visual_tokens"]
        assert response.usage.prompt_tokens == extra["visual_tokens"] and response.usage.total_tokens > 0

        async def go():
            async_client = openai.AsyncOpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
            return await async_client.chat.completions.create(model="reader", messages=ask("What is the invoice?", page("M4037")))

        assert asyncio.run(go()).choices[0].message.content == "M4037"
        stream = client.chat.completions.create(model="reader", messages=ask("What is the invoice?", page("H9052")),
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "H9052"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage.total_tokens > 0
        text_only = client.chat.completions.create(model="reader", messages=[{"role": "user", "content": "hello"}])
        assert text_only.choices[0].message.content  # the reader says it cannot tell; a normal completion
        metrics = httpx.get(f"{proxy.root}/metrics").text
        assert 'cropper_requests_total{kind="zoomed"} 3.0\n' in metrics
        assert 'cropper_requests_total{kind="passthrough"} 1.0\n' in metrics
        saved = next(line for line in metrics.splitlines() if line.startswith("cropper_visual_tokens_saved_total"))
        assert float(saved.split()[-1]) > 0
        assert httpx.get(f"{proxy.root}/healthz").json()["status"] == "ok"


def test_openai_upstream_gets_a_global_view_and_crops_within_budget_and_text_passes_through():
    with FakeOpenAIServer(default={"text": "K4521", "usage": {"input_tokens": 321, "output_tokens": 2}},
                          expected_key="sk-upstream-secret") as upstream:
        config = ServeConfig(upstream=f"openai-compatible:{upstream.url}#qwen2.5-vl-7b", strategy="policy",
                             cropper="grid:2", budget=1500, global_side=512,
                             upstream_options={"api_key": "sk-upstream-secret"})
        with RunningProxy(config) as proxy:
            client = openai.OpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
            response = client.chat.completions.create(model="qwen2.5-vl-7b", messages=ask("What is the invoice?", page(size=(2400, 1600))))
            sent = images_in_openai_request(upstream.requests[-1].body)
            assert len(sent) >= 2 and max(sent[0].size) <= 512  # the global view, then crops
            extra = response.model_extra["cropper"]
            assert extra["visual_tokens"] <= 1500 and response.usage.prompt_tokens == 321
            body = {"model": "qwen2.5-vl-7b", "messages": [{"role": "user", "content": "Say hi."}], "temperature": 0.3}
            passed = client.chat.completions.create(**body)
            assert upstream.requests[-1].body == body  # untouched
            assert passed.choices[0].message.content == "K4521"
            for text in (json.dumps(response.model_dump()), httpx.get(f"{proxy.root}/metrics").text):
                assert "sk-upstream-secret" not in text


def test_streaming_passthrough_is_piped_from_the_upstream():
    chunks = "".join(f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', 'created': 1, 'model': 'm', 'choices': [{'index': 0, 'delta': {'content': t}, 'finish_reason': None}]})}\n\n" for t in ("Hel", "lo"))
    raw = chunks + "data: [DONE]\n\n"

    class Streaming(FakeOpenAIServer):
        def _handle(self, req):
            status, headers, body = super()._handle(req)
            return status, {"content-type": "text/event-stream"}, raw.encode()

    with Streaming() as upstream:
        with RunningProxy(ServeConfig(upstream=f"openai-compatible:{upstream.url}#m")) as proxy:
            client = openai.OpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
            stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello"
            assert upstream.requests[-1].body["stream"] is True


def test_auth_body_cap_remote_images_and_bad_json():
    with RunningProxy(ServeConfig(**READER, api_key="proxy-secret", max_body_bytes=50_000)) as proxy:
        wrong = openai.OpenAI(base_url=proxy.url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="reader", messages=[{"role": "user", "content": "hi"}])
        right = openai.OpenAI(base_url=proxy.url, api_key="proxy-secret", max_retries=0)
        assert right.models.list().data[0].id == "pp-ocrv4"
        with pytest.raises(openai.APIStatusError) as too_big:
            right.chat.completions.create(model="reader", messages=ask("What is the invoice?", noise()))
        assert too_big.value.status_code == 413 and "cap" in too_big.value.message
        with pytest.raises(openai.BadRequestError, match="--allow-remote-images"):
            right.chat.completions.create(model="reader", messages=ask("What?", "https://example.com/x.png"))
        bad = httpx.post(f"{proxy.url}/chat/completions", content=b"{nope", headers={"authorization": "Bearer proxy-secret"})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("request body is not valid JSON")
        assert "proxy-secret" not in bad.text


def test_upstream_failures_map_to_gateway_statuses():
    with FakeOpenAIServer() as upstream:
        config = ServeConfig(upstream=f"openai-compatible:{upstream.url}#m", strategy="policy", cropper="grid:2",
                             timeout_s=1.0, upstream_options={"max_retries": 0})
        with RunningProxy(config) as proxy:
            client = openai.OpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
            upstream.enqueue({"status": 500})
            with pytest.raises(openai.APIStatusError) as failed:
                client.chat.completions.create(model="m", messages=ask("What is the invoice?", page()))
            assert failed.value.status_code == 502 and failed.value.body["type"] == "upstream_error"
            upstream.enqueue({"status": 503})
            with pytest.raises(openai.APIStatusError) as passthrough_failed:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert passthrough_failed.value.status_code == 502
            upstream.enqueue({"delay": 3.0})
            with pytest.raises(openai.APIStatusError) as slow:
                client.chat.completions.create(model="m", messages=ask("What is the invoice?", page()))
            assert slow.value.status_code == 504


def test_saturation_gives_429_with_retry_after():
    with FakeOpenAIServer(default={"delay": 1.0, "text": "ok"}) as upstream:
        config = ServeConfig(upstream=f"openai-compatible:{upstream.url}#m", max_concurrency=1, max_queue=0)
        with RunningProxy(config) as proxy:
            async def go():
                async with httpx.AsyncClient(timeout=10) as http:
                    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                    return await asyncio.gather(*(http.post(f"{proxy.url}/chat/completions", json=body) for _ in range(3)))

            replies = asyncio.run(go())
            statuses = sorted(r.status_code for r in replies)
            assert statuses == [200, 429, 429]
            busy = next(r for r in replies if r.status_code == 429)
            assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "proxy_saturated"
            assert 'cropper_errors_total{status="429"} 2.0\n' in httpx.get(f"{proxy.root}/metrics").text


def test_many_concurrent_clients_get_well_formed_answers():
    with RunningProxy(ServeConfig(**READER, max_concurrency=4, max_queue=100)) as proxy:
        async def client_loop(i):
            client = openai.AsyncOpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
            answers = []
            for j in range(2):
                value = ("K4521", "H9052", "M4037")[(i + j) % 3]  # values this OCR reads reliably
                reply = await client.chat.completions.create(model="reader", messages=ask("What is the invoice?", page(value)))
                answers.append((value, reply.choices[0].message.content))
            return answers

        async def go():
            return await asyncio.gather(*(client_loop(i) for i in range(16)))

        results = [pair for answers in asyncio.run(go()) for pair in answers]
    assert len(results) == 32 and all(expected == got for expected, got in results)


def test_remote_image_guard_refuses_private_addresses():
    def fake_dns(address):
        return lambda host, port: [(2, 1, 6, "", (address, 0))]

    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.7", "169.254.169.254", "::1"):
        with pytest.raises(RemoteImageError, match="non-public"):
            check_public_host("images.example", resolve=fake_dns(address))
    check_public_host("images.example", resolve=fake_dns("93.184.216.34"))  # public: allowed


def test_load_test_helper_counts_well_formed_answers_and_stays_on_loopback():
    from cropper.serve.loadtest import run_load

    with RunningProxy(ServeConfig(**READER, max_concurrency=2, max_queue=10)) as proxy:
        stats = asyncio.run(run_load(proxy.url, clients=3, seconds=4.0))
    # Requests still running at the deadline are cut off and counted as unfinished, not lost.
    assert stats["ok"] >= 1 and stats["ok"] == stats["correct"]
    assert stats["requests"] == stats["ok"] + stats["unfinished"]
    assert stats["malformed"] == stats["lost"] == stats["rejected"] == 0 and stats["p50_s"] > 0
    with pytest.raises(ValueError, match="only targets loopback"):
        asyncio.run(run_load("http://10.0.0.5:8000/v1", clients=1, seconds=0.1))


def test_sigterm_lets_in_flight_requests_finish():
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from cropper.serve.loadtest import free_port, wait_healthy

    root = Path(__file__).resolve().parents[1]
    with FakeOpenAIServer(default={"delay": 1.5, "text": "finished"}) as upstream:
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "cropper.cli", "serve", "--upstream",
                                   f"openai-compatible:{upstream.url}#m", "--port", str(port), "--log-level", "warning"],
                                  env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz")
            result = {}

            def call():
                result["reply"] = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                                             json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})

            caller = threading.Thread(target=call)
            caller.start()
            deadline = time.monotonic() + 10
            while not upstream.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            server.send_signal(signal.SIGTERM)  # while the request waits on the upstream
            caller.join(timeout=30)
            # uvicorn re-raises the signal once it has shut down gracefully, so the exit status says SIGTERM.
            assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        finally:
            if server.poll() is None:
                server.kill()
    assert result["reply"].status_code == 200
    assert result["reply"].json()["choices"][0]["message"]["content"] == "finished"


def test_anthropic_upstream_behind_the_openai_api():
    with FakeAnthropicServer(default={"text": "K4521"}, expected_key="sk-ant-test") as upstream:
        config = ServeConfig(upstream="anthropic:claude-haiku-4-5", strategy="policy", cropper="grid:2", global_side=512,
                             upstream_options={"base_url": upstream.url, "api_key": "sk-ant-test", "max_retries": 0})
        with RunningProxy(config) as proxy:
            client = openai.OpenAI(base_url=proxy.url, api_key="unused", max_retries=0)
            zoomed = client.chat.completions.create(model="claude-haiku-4-5", messages=ask("What is the invoice?", page(size=(2400, 1600))))
            sent = images_in_anthropic_request(upstream.requests[-1].body)
            assert zoomed.choices[0].message.content == "K4521" and len(sent) == 5 and max(sent[0].size) <= 512
            text = client.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
            assert text.choices[0].message.content == "K4521"
            messages = upstream.requests[-1].body["messages"]
            assert len(messages) == 1 and messages[0]["role"] == "user" and "hi" in json.dumps(messages[0]["content"])
            assert not images_in_anthropic_request(upstream.requests[-1].body)  # text only: nothing added
