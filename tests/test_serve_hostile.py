"""`cropper serve` against a hostile client and a slow upstream (issue 26): bombs refused on their header,
a budget for decoded pixels, a 400 naming the field for every malformed body, timeouts that keep their slot,
one decoder for every path, remote fetches pinned to the checked address."""

from __future__ import annotations

import asyncio
import base64
import http.server
import io
import ipaddress
import socket
import threading

import httpx
import numpy as np
import pytest
from fake_servers import FakeOpenAIServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from serve_support import RunningProxy, ask, page
from starlette.testclient import TestClient

from backends.image_codec import decode_base64_image, from_data_url
from cropper import ImageError, ZoomWrapper, load_image
from cropper.serve import ServeConfig, create_app
from cropper.serve.remote_images import RemoteImageError, fetch_as_data_url

READER = dict(upstream="reader", strategy="tool", global_side=160)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


@pytest.fixture(scope="module")
def truncated_bomb() -> bytes:
    """A PNG whose header declares 13000x13000 pixels, cut off after 4 KB: decoding it would fail as truncated,
    so an error that speaks of the pixel cap proves the size was judged on the header alone."""
    return png_bytes(Image.new("1", (13000, 13000)))[:4096]


# --- 1. the cap on the header, before decoding; the decoded-pixel budget ---------------------------------


def test_the_wire_decoder_refuses_a_bomb_on_its_header(truncated_bomb):
    with pytest.raises(ImageError, match=r"13000x13000 = 169,000,000 pixels, over the cap"):
        decode_base64_image(base64.b64encode(truncated_bomb).decode())
    with pytest.raises(ImageError, match="over the cap"):
        from_data_url(data_url(truncated_bomb))


def test_the_proxy_refuses_a_bomb_on_its_header_and_names_the_part(truncated_bomb):
    with TestClient(create_app(ServeConfig(**READER))) as client:
        reply = client.post("/v1/chat/completions", json={"model": "reader", "messages": ask("What?", data_url(truncated_bomb))})
        assert reply.status_code == 400
        message = reply.json()["error"]["message"]
        assert "messages[0].content[1].image_url" in message and "over the cap" in message


def test_an_image_larger_than_the_whole_decoding_budget_gets_413():
    with TestClient(create_app(ServeConfig(**READER, max_decoded_pixels=500_000))) as client:
        reply = client.post("/v1/chat/completions", json={"model": "reader", "messages": ask("What?", page(size=(900, 600)))})
        assert reply.status_code == 413
        assert reply.json()["error"]["code"] == "images_too_large" and "540,000 pixels" in reply.json()["error"]["message"]


def test_concurrent_decoded_pixels_beyond_the_budget_get_429_with_retry_after():
    # Each request holds 540,000 decoded pixels while its (slow) upstream answers; the budget holds one.
    with FakeOpenAIServer(default={"delay": 1.5, "text": "ok"}) as upstream:
        config = ServeConfig(upstream=f"openai-compatible:{upstream.url}#m", strategy="low",
                             max_decoded_pixels=800_000)
        with RunningProxy(config) as proxy:
            async def go():
                async with httpx.AsyncClient(timeout=20) as http:
                    body = {"model": "m", "messages": ask("What?", page(size=(900, 600)))}
                    return await asyncio.gather(*(http.post(f"{proxy.url}/chat/completions", json=body)
                                                  for _ in range(2)))

            replies = asyncio.run(go())
            assert sorted(r.status_code for r in replies) == [200, 429]
            busy = next(r for r in replies if r.status_code == 429)
            assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "pixel_budget"
            # Once the first is answered its pixels are free again.
            again = httpx.post(f"{proxy.url}/chat/completions", json={"model": "m", "messages": ask("?", page())},
                               timeout=20)
            assert again.status_code == 200


# --- 2. malformed bodies are 400s that name the field ---------------------------------------------------

MALFORMED = [
    ({"messages": ["hello"]}, "messages[0]"),
    ({"messages": [None]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": ["hi"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
     "messages[0].content[0].image_url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": None}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": ["bad"]}]}, "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, "max_tokens"),
]


@pytest.fixture(scope="module")
def reader_app():
    with TestClient(create_app(ServeConfig(**READER)), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("body", "param"), MALFORMED)
def test_a_malformed_body_gets_a_400_that_names_the_field(reader_app, body, param):
    reply = reader_app.post("/v1/chat/completions", json={"model": "reader", **body})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}: ")


def test_client_errors_are_counted_by_status_in_parseable_metrics(reader_app):
    from prometheus_client.parser import text_string_to_metric_families

    for body, _ in MALFORMED:
        reader_app.post("/v1/chat/completions", json={"model": "reader", **body})
    families = {f.name: f for f in text_string_to_metric_families(reader_app.get("/metrics").text)}
    errors = {s.labels["status"]: s.value for s in families["cropper_errors"].samples if s.name.endswith("_total")}
    assert errors.get("400", 0) >= len(MALFORMED) and "500" not in errors


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
TINY_IMAGE = data_url(png_bytes(Image.new("RGB", (24, 16), "white")))


def _valid_body() -> dict:
    return {"model": "reader", "max_tokens": 16, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": [{"type": "text", "text": "What?"},
                                     {"type": "image_url", "image_url": {"url": TINY_IMAGE, "detail": "low"}}]}]}


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*path, index))


@st.composite
def mutated_bodies(draw):
    """A valid request with one field (anywhere, the whole body included) replaced by arbitrary JSON."""
    body = _valid_body()
    paths = list(_paths(body))
    path = draw(st.sampled_from(paths))
    replacement = draw(JSON)
    if not path:
        return replacement
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutated_bodies() | JSON)
def test_no_generated_body_gets_a_5xx(reader_app, body):
    reply = reader_app.post("/v1/chat/completions", json=body)
    assert reply.status_code < 500, (body, reply.text)
    if reply.status_code >= 400:
        assert reply.json()["error"]["message"]


# --- 3. a timeout stops the work: the slot stays taken until the thread ends; the queue counts --------------


def test_timed_out_requests_keep_their_slot_and_queued_ones_time_out_waiting():
    with FakeOpenAIServer(default={"delay": 3.0, "text": "late"}) as upstream:
        config = ServeConfig(upstream=f"openai-compatible:{upstream.url}#m", strategy="low", timeout_s=1.0,
                             max_concurrency=1, max_queue=10, upstream_options={"max_retries": 0})
        with RunningProxy(config) as proxy:
            async def go():
                async with httpx.AsyncClient(timeout=20) as http:
                    body = {"model": "m", "messages": ask("What?", page())}
                    return await asyncio.gather(*(http.post(f"{proxy.url}/chat/completions", json=body)
                                                  for _ in range(4)))

            replies = asyncio.run(go())
            assert [r.status_code for r in replies] == [504] * 4
            # One request reached the upstream; the other three waited for the slot the first still held, and
            # their wait counted against their timeout. Before, all four ran at once on unbounded threads.
            assert len(upstream.requests) == 1
            assert "no slot came free" in " ".join(r.json()["error"]["message"] for r in replies)
            metrics = httpx.get(f"{proxy.root}/metrics").text
            assert "cropper_lingering_requests 1.0\n" in metrics  # the first one's thread still waits upstream


# --- 4. one decoder: the proxy and the library see the same pixels ----------------------------------------


def test_every_path_decodes_16_bit_grey_and_alpha_the_same_way():
    grey16 = Image.fromarray(np.full((20, 30), 33000, dtype=np.uint16))
    rgba = Image.new("RGBA", (20, 30), (255, 0, 0, 0))  # fully transparent red: white once composited
    for image, expected in ((grey16, (128, 128, 128)), (rgba, (255, 255, 255))):
        data = png_bytes(image)
        decoded = [load_image(data), decode_base64_image(base64.b64encode(data).decode()), from_data_url(data_url(data))]
        assert {im.getpixel((5, 5)) for im in decoded} == {expected}


# --- 8. smaller ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [None, 123, "x" * 400 + ".png"])
def test_ask_with_a_bad_image_source_raises_image_error_naming_it(source):
    wrapper = ZoomWrapper("reader", strategy="low")
    with pytest.raises(ImageError) as info:
        wrapper.ask(source, "What?")
    message = str(info.value)
    if isinstance(source, str):  # too long for the file system: said, with the path shortened
        assert "cannot be read" in message and f"({len(source)} characters)" in message
    else:
        assert f"{type(source).__name__} is not an image source" in message


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).hosts.append(self.headers["Host"])
        data = png_bytes(Image.new("RGB", (4, 4), "red"))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_a_remote_fetch_connects_to_the_address_it_checked():
    # The name resolves to the checked address once; a second lookup (DNS rebinding) would give another one,
    # which nothing may use. The loopback image server stands in for the public host: the address policy is
    # relaxed for 127.0.0.1 only, in this test.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers = iter(["127.0.0.1", "10.9.8.7"])
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 0))]

    try:
        port = server.server_address[1]
        url = fetch_as_data_url(f"http://images.example:{port}/a.png", 10_000, 5.0, resolve=resolve,
                                allowed=lambda address: address == ipaddress.ip_address("127.0.0.1"))
    finally:
        server.shutdown()
    assert url.startswith("data:image/png;base64,") and lookups == ["images.example"]
    assert _ImageHandler.hosts == [f"images.example:{port}"]
    with pytest.raises(RemoteImageError, match="non-public"):
        fetch_as_data_url("http://images.example/a.png", 10_000, 5.0, resolve=resolve)
