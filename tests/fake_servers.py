"""Protocol-faithful fake OpenAI and Anthropic HTTP servers for tests (127.0.0.1 only, random free port).

Point the REAL SDKs at them (`base_url=server.url`); they answer with JSON shaped like the real APIs, so the
SDKs parse it as they would in production. Each server:

- records every request in `server.requests` (`RecordedRequest`: method, path, headers, parsed JSON body,
  arrival time, byte size); `server.bodies` lists just the bodies;
- rejects requests the real API would reject, with the API's status and error body: HTTP 400 for a body
  that fails the provider's official request schema (`provider_schemas`) or a documented rule
  (`fake_wire_checks`), 413 for an Anthropic body over 32 MB, and, when `expected_key` is set, 401 for a
  wrong key;
- streams when the body says `stream: true` (server-sent events, `fake_streams`), as the SDKs expect;
- answers from a script: `server.enqueue(*entries)` queues entries used one per request, in order; when
  the queue is empty, `server.responder(body) -> entry` is called if set, else `server.default` is used;
- can serve many tests: `server.reset()` forgets the requests, the queue and the responder.

An entry is a dict, either a reply:

    {"text": "hello"}
    {"text": "", "tool_calls": [{"name": "zoom", "arguments": {"crop": "q1"}}]}   # "id" optional
    {"tool_calls": [{"name": "zoom", "arguments": "{not json"}]}  # a string is sent as-is (OpenAI)
    {"text": "hi", "usage": {"input_tokens": 12, "output_tokens": 3}, "model": "other-model"}
    {"raw": {...}}                                               # this exact JSON body, HTTP 200
    {"thinking": "reasoning", "text": "hi"}  # Anthropic: starts with a signed thinking block (the server
    {"redacted_thinking": "opaque"}          # remembers what it signed: a block sent back modified is a 400)

or a fault:

    {"status": 429, "headers": {"Retry-After": "1"}}      # also "retry-after-ms"; optional "body"
    {"status": 500}
    {"status": 400}
    {"delay": 0.5}                   # sleep first (to provoke client timeouts), then reply with the
    {"delay": 0.5, "text": "late"}   # rest of the entry, or with the responder/default when nothing else

Endpoints: OpenAI `POST /v1/chat/completions`, `POST /v1/responses` (replies as `response` objects: text
as a `message` item, tool_calls as `function_call` items) and `GET /v1/models`; Anthropic `POST /v1/messages`.

Usage:

    with FakeOpenAIServer() as server:
        server.enqueue({"status": 429, "headers": {"retry-after-ms": "50"}}, {"text": "ok"})
        client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        ...
        assert len(server.requests) == 2
        sizes = [im.size for im in images_in_openai_request(server.requests[-1].body)]
"""

from __future__ import annotations

import base64
import collections
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

try:  # tests/ itself is on sys.path under pytest's default import mode (no tests/__init__.py)
    import fake_streams as streams
    import fake_wire_checks as checks
    import provider_schemas as schemas
except ImportError:  # imported as `tests.fake_servers`
    from . import fake_streams as streams
    from . import fake_wire_checks as checks
    from . import provider_schemas as schemas

Entry = dict[str, Any]


@dataclass
class RecordedRequest:
    """One request as the server saw it. `headers` keys are lower-case; `body` is the parsed JSON (or None);
    `size` the body's length in bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float
    size: int = 0


class _FakeServer:
    """Shared machinery: the HTTP server thread, the request log and the script."""

    #: The main POST endpoint, and every POST path served with the name `_problem` / `_reply` know it by.
    endpoint = ""
    routes: dict[str, str] = {}
    #: A documented cap on the request body (HTTP 413 above it), or None.
    max_body_bytes: int | None = None

    def __init__(self, responder: Callable[[Any], Entry] | None = None, expected_key: str | None = None,
                 validate: bool = True, default: Entry | None = None):
        self.responder = responder
        self.expected_key = expected_key
        self.validate = validate
        self.default: Entry = default if default is not None else {"text": "ok"}
        self.requests: list[RecordedRequest] = []
        self._queue: collections.deque[Entry] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # What the server signed (Anthropic thinking signature -> thinking text; redacted data); kept across
        # reset(), as real signatures stay valid.
        self._signatures: dict[str, str] = {}
        self._redacted: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> _FakeServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed replies still sleeping are cut short."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def root(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    # -- script and log --------------------------------------------------------------------------------

    def enqueue(self, *entries: Entry) -> None:
        """Queue reply/fault entries, answered one per request in order."""
        with self._lock:
            self._queue.extend(entries)

    def reset(self) -> None:
        """Forget recorded requests, queued entries and the responder (to reuse one server across tests)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
        self.responder = None
        self.default = {"text": "ok"}

    @property
    def pending(self) -> int:
        """Entries still queued."""
        with self._lock:
            return len(self._queue)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of all recorded requests, in arrival order."""
        with self._lock:
            return [r.body for r in self.requests]

    def _next_entry(self, body: Any) -> Entry:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self._fallback(body)

    def _fallback(self, body: Any) -> Entry:
        return self.responder(body) if self.responder is not None else dict(self.default)

    # -- request handling (called from the handler thread) ---------------------------------------------

    def _handle(self, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append(req)
        if self.expected_key is not None and self._key_of(req.headers) != self.expected_key:
            return 401, {}, self._error_body(401, "invalid x-api-key / bearer token")
        if req.method == "GET":
            return self._get(req.path)
        route = self.routes.get(req.path)
        if route is None:
            return 404, {}, self._error_body(404, f"no route {req.path}")
        if self.max_body_bytes is not None and req.size > self.max_body_bytes:
            return 413, {}, self._error_body(413, "Request exceeds the maximum size")
        if not isinstance(req.body, dict):
            return 400, {}, self._error_body(400, "request body is not a valid JSON object")
        problem = self._problem(route, req) if self.validate else None
        if problem:
            return 400, {}, self._error_body(400, problem)
        entry = dict(self._next_entry(req.body))
        delay = entry.pop("delay", None)
        if delay:
            self._stop.wait(float(delay))
            if not entry:
                entry = dict(self._fallback(req.body))
        status = int(entry.get("status", 200))
        headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
        if status >= 400:
            return status, headers, entry.get("body", self._error_body(status, f"scripted fault {status}"))
        if "raw" in entry:
            self._remember(entry["raw"])
            return status, headers, entry["raw"]
        extra, payload = self._reply(route, req.body, entry)
        return status, {**extra, **headers}, payload

    def _get(self, path: str) -> tuple[int, dict[str, str], Any]:
        return 404, {}, self._error_body(404, f"no route {path}")

    # Provider-specific pieces, filled in by the subclasses.
    def _key_of(self, headers: dict[str, str]) -> str | None:
        raise NotImplementedError

    def _problem(self, route: str, req: RecordedRequest) -> str | None:
        """The first schema error, else the first broken documented rule, else None."""
        raise NotImplementedError

    def _error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def _reply(self, route: str, body: Any, entry: Entry) -> tuple[dict[str, str], Any]:
        """(extra headers, payload) answering a reply entry; bytes payloads (streams) go out as they are."""
        raise NotImplementedError

    def _remember(self, reply: Any) -> None:
        """Note what a reply signed (scripted `raw` replies included), to accept it back unchanged."""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so nothing lingers after a client gives up on a slow reply.
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        fake: _FakeServer = self.server.fake  # type: ignore[attr-defined]
        try:
            req = RecordedRequest(self.command, path, headers, body, time.monotonic(), len(raw))
            status, extra, payload = fake._handle(req)
        except Exception as exc:  # a broken script or responder: say so instead of dropping the connection
            status, extra = 500, {"x-should-retry": "false"}
            payload = fake._error_body(500, f"fake server error: {type(exc).__name__}: {exc}")
        # A payload already in bytes (e.g. a scripted server-sent-events stream) goes out as it is.
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        extra = {k.lower(): v for k, v in extra.items()}
        try:
            self.send_response(status)
            self.send_header("content-type", extra.pop("content-type", "application/json"))
            self.send_header("content-length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left; that was the point of a delay entry

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


class FakeOpenAIServer(_FakeServer):
    """A fake OpenAI API: POST /v1/chat/completions and /v1/responses, GET /v1/models.

    `url` is "http://127.0.0.1:PORT/v1".
    """

    endpoint = "/v1/chat/completions"
    routes = {"/v1/chat/completions": "chat", "/v1/responses": "responses"}

    @property
    def url(self) -> str:
        """Base URL for `openai.OpenAI(base_url=...)`."""
        return f"{self.root}/v1"

    def _key_of(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def _problem(self, route: str, req: RecordedRequest) -> str | None:
        if route == "responses":
            errors = schemas.openai_responses_schema_errors(req.body)
            return errors[0] if errors else checks.openai_responses_problem(req.body)
        errors = schemas.openai_chat_schema_errors(req.body)
        return errors[0] if errors else checks.openai_problem(req.body)

    def _reply(self, route: str, body: Any, entry: Entry) -> tuple[dict[str, str], Any]:
        if route == "responses":
            if body.get("stream"):
                raise NotImplementedError("the fake does not stream /v1/responses")
            return {}, streams.responses_body(body, entry, streams.usage(body, entry))
        reply = self._reply_body(body, entry)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return {"content-type": "text/event-stream"}, streams.openai_chat_stream(reply, include_usage)
        return {}, reply

    def _get(self, path: str) -> tuple[int, dict[str, str], Any]:
        if path == "/v1/models":
            model = {"id": "fake-model", "object": "model", "created": 1700000000, "owned_by": "fake"}
            return 200, {}, {"object": "list", "data": [model]}
        return super()._get(path)

    def _error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                429: "requests"}.get(status, "server_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def _reply_body(self, body: Any, entry: Entry) -> Any:
        calls = [
            {"id": c.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c.get("arguments"), str)
                          else json.dumps(c.get("arguments") or {})}}
            for c in entry.get("tool_calls") or []
        ]
        message: dict[str, Any] = {"role": "assistant", "content": entry.get("text") or (None if calls else ""),
                                   "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        prompt, completion = streams.usage(body, entry)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}", "object": "chat.completion", "created": int(time.time()),
            "model": entry.get("model", body.get("model")), "system_fingerprint": "fp_fake", "service_tier": "default",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": entry.get("finish_reason", "tool_calls" if calls else "stop")}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        }


class FakeAnthropicServer(_FakeServer):
    """A fake Anthropic API: POST /v1/messages. `url` is "http://127.0.0.1:PORT" (the SDK appends /v1/...)."""

    endpoint = "/v1/messages"
    routes = {"/v1/messages": "messages"}
    max_body_bytes = checks.ANTHROPIC_MAX_BODY_BYTES

    @property
    def url(self) -> str:
        """Base URL for `anthropic.Anthropic(base_url=...)`."""
        return self.root

    def _key_of(self, headers: dict[str, str]) -> str | None:
        # Older SDKs send the key as `x-api-key`, newer ones as a bearer token; the API takes both.
        auth = headers.get("authorization", "")
        return headers.get("x-api-key") or (auth[len("Bearer "):] if auth.startswith("Bearer ") else None)

    def _problem(self, route: str, req: RecordedRequest) -> str | None:
        # `client.beta.messages.create` sends `anthropic-beta`: its body follows the beta params.
        betas = req.headers.get("anthropic-beta")
        schema = schemas.anthropic_beta_schema_errors if betas is not None else schemas.anthropic_schema_errors
        errors = schema(req.body)
        if errors:
            return errors[0]
        return checks.anthropic_problem(req.body, betas or "") or self._signature_problem(req.body)

    def _signature_problem(self, body: dict) -> str | None:
        """https://platform.claude.com/docs/en/build-with-claude/extended-thinking: thinking blocks go back
        unmodified; the API checks each block's `signature` (a modified block is refused; the API's text)."""
        if (body.get("thinking") or {}).get("type") != "enabled":
            return None
        for i, msg in enumerate(body["messages"]):
            blocks = msg.get("content") if msg.get("role") == "assistant" else None
            for j, block in enumerate(blocks if isinstance(blocks, list) else []):
                with self._lock:
                    signed = self._signatures.get(block.get("signature", ""))
                    redacted_ok = block.get("data") in self._redacted
                if block.get("type") == "thinking" and signed != block.get("thinking"):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                if block.get("type") == "redacted_thinking" and not redacted_ok:  # wording ours
                    return f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
        return None

    def _remember(self, reply: Any) -> None:
        content = reply.get("content") if isinstance(reply, dict) else None
        with self._lock:
            for block in content if isinstance(content, list) else []:
                if block.get("type") == "thinking":
                    self._signatures[block.get("signature")] = block.get("thinking")
                elif block.get("type") == "redacted_thinking":
                    self._redacted.add(block.get("data"))

    def _error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{uuid.uuid4().hex[:24]}"}

    def _reply(self, route: str, body: Any, entry: Entry) -> tuple[dict[str, str], Any]:
        message = self._reply_body(body, entry)
        if body.get("stream"):
            return {"content-type": "text/event-stream"}, streams.anthropic_stream(message)
        return {}, message

    def _reply_body(self, body: Any, entry: Entry) -> Any:
        content: list[dict[str, Any]] = []
        if entry.get("thinking") is not None:
            signature = base64.b64encode(os.urandom(48)).decode()
            content.append({"type": "thinking", "thinking": entry["thinking"], "signature": signature})
        if entry.get("redacted_thinking") is not None:
            content.append({"type": "redacted_thinking", "data": entry["redacted_thinking"]})
        if entry.get("text"):
            content.append({"type": "text", "text": entry["text"]})
        for c in entry.get("tool_calls") or []:
            args = c.get("arguments") or {}
            content.append({"type": "tool_use", "id": c.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                            "name": c["name"], "input": json.loads(args) if isinstance(args, str) else args})
        has_calls = any(b["type"] == "tool_use" for b in content)
        prompt, completion = streams.usage(body, entry)
        self._remember({"content": content})
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": entry.get("model", body.get("model")), "content": content,
            "stop_reason": entry.get("stop_reason", "tool_use" if has_calls else "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }


def images_in_openai_request(body: Any) -> list[Image.Image]:
    """Decode every `image_url` data-URL image of a chat-completions body, in message order."""
    images = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "image_url":
                images.append(checks.decode_data_url(part["image_url"]["url"]))
    return images


def images_in_anthropic_request(body: Any) -> list[Image.Image]:
    """Decode every base64 image block of a messages body (tool_result contents included), in order."""
    images = []

    def walk(blocks: Any) -> None:
        for block in blocks if isinstance(blocks, list) else []:
            if block.get("type") == "image" and (block.get("source") or {}).get("type") == "base64":
                images.append(checks.decode_b64_image(block["source"]["data"]))
            elif block.get("type") == "tool_result":
                walk(block.get("content"))

    for msg in body.get("messages", []):
        walk(msg.get("content"))
    return images


def images_in_responses_request(body: Any) -> list[Image.Image]:
    """Decode every data-URL `input_image` of a Responses body (messages and function_call outputs), in order."""
    items = body.get("input")
    images = []
    for item in items if isinstance(items, list) else []:
        parts = item.get("output") if item.get("type") == "function_call_output" else item.get("content")
        for part in parts if isinstance(parts, list) else []:
            url = part.get("image_url") if part.get("type") == "input_image" else None
            if isinstance(url, str) and url.startswith("data:"):
                images.append(checks.decode_data_url(url))
    return images
