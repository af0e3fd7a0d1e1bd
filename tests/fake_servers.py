"""Protocol-faithful fake OpenAI and Anthropic HTTP servers for tests (127.0.0.1 only, random free port).

Point the REAL SDKs at them (`base_url=server.url`); they answer with JSON shaped like the real APIs, so the
SDKs parse it as they would in production. Each server:

- records every request in `server.requests` (`RecordedRequest`: method, path, headers, parsed JSON body,
  arrival time); `server.bodies` lists just the bodies;
- rejects requests the real API would reject (HTTP 400, checks in `fake_wire_checks`) and, when
  `expected_key` is set, wrong keys (HTTP 401);
- answers from a script: `server.enqueue(*entries)` queues entries used one per request, in order; when
  the queue is empty, `server.responder(body) -> entry` is called if set, else `server.default` is used;
- can serve many tests: `server.reset()` forgets the requests, the queue and the responder.

An entry is a dict, either a reply:

    {"text": "hello"}
    {"text": "", "tool_calls": [{"name": "zoom", "arguments": {"crop": "q1"}}]}   # "id" optional
    {"tool_calls": [{"name": "zoom", "arguments": "{not json"}]}  # a string is sent as-is (OpenAI)
    {"text": "hi", "usage": {"input_tokens": 12, "output_tokens": 3}, "model": "other-model"}
    {"raw": {...}}                                               # this exact JSON body, HTTP 200

or a fault:

    {"status": 429, "headers": {"Retry-After": "1"}}      # also "retry-after-ms"; optional "body"
    {"status": 500}
    {"status": 400}
    {"delay": 0.5}                   # sleep first (to provoke client timeouts), then reply with the
    {"delay": 0.5, "text": "late"}   # rest of the entry, or with the responder/default when nothing else

Usage:

    with FakeOpenAIServer() as server:
        server.enqueue({"status": 429, "headers": {"retry-after-ms": "50"}}, {"text": "ok"})
        client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        ...
        assert len(server.requests) == 2
        sizes = [im.size for im in images_in_openai_request(server.requests[-1].body)]
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

try:  # tests/ itself is on sys.path under pytest's default import mode (no tests/__init__.py)
    from fake_wire_checks import anthropic_problem, decode_b64_image, decode_data_url, openai_problem
except ImportError:  # imported as `tests.fake_servers`
    from .fake_wire_checks import anthropic_problem, decode_b64_image, decode_data_url, openai_problem

Entry = dict[str, Any]


@dataclass
class RecordedRequest:
    """One request as the server saw it. `headers` keys are lower-case; `body` is the parsed JSON (or None)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float


class _FakeServer:
    """Shared machinery: the HTTP server thread, the request log and the script."""

    #: Path prefix of the JSON API (the part of `url` after host:port) and the POST endpoint served.
    endpoint = ""

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
        if req.path != self.endpoint:
            return 404, {}, self._error_body(404, f"no route {req.path}")
        if req.body is None:
            return 400, {}, self._error_body(400, "request body is not valid JSON")
        problem = self._problem(req.body) if self.validate else None
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
            return status, headers, entry["raw"]
        return status, headers, self._reply_body(req.body, entry)

    def _get(self, path: str) -> tuple[int, dict[str, str], Any]:
        return 404, {}, self._error_body(404, f"no route {path}")

    # Provider-specific pieces, filled in by the subclasses.
    def _key_of(self, headers: dict[str, str]) -> str | None:
        raise NotImplementedError

    def _problem(self, body: Any) -> str | None:
        raise NotImplementedError

    def _error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def _reply_body(self, body: Any, entry: Entry) -> Any:
        raise NotImplementedError


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
            status, extra, payload = fake._handle(RecordedRequest(self.command, path, headers, body, time.monotonic()))
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


def _rough_tokens(body: Any) -> int:
    """A deterministic stand-in for prompt tokens: ~4 characters a token plus a flat 85 per image."""
    text = json.dumps(body)
    images = text.count('"image_url"') + text.count('"type": "image"')
    return max(1, (len(text) - sum(len(s) for s in _base64_strings(body))) // 4 + 85 * images)


def _base64_strings(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _base64_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _base64_strings(v)]
    return [obj] if isinstance(obj, str) and len(obj) > 200 else []


def _usage(body: Any, entry: Entry) -> tuple[int, int]:
    usage = entry.get("usage") or {}
    out_default = 1 + len(entry.get("text") or "") // 4 + 20 * len(entry.get("tool_calls") or [])
    return int(usage.get("input_tokens", _rough_tokens(body))), int(usage.get("output_tokens", out_default))


class FakeOpenAIServer(_FakeServer):
    """A fake OpenAI API: POST /v1/chat/completions, GET /v1/models. `url` is "http://127.0.0.1:PORT/v1"."""

    endpoint = "/v1/chat/completions"

    @property
    def url(self) -> str:
        """Base URL for `openai.OpenAI(base_url=...)`."""
        return f"{self.root}/v1"

    def _key_of(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def _problem(self, body: Any) -> str | None:
        return openai_problem(body)

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
        prompt, completion = _usage(body, entry)
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

    @property
    def url(self) -> str:
        """Base URL for `anthropic.Anthropic(base_url=...)`."""
        return self.root

    def _key_of(self, headers: dict[str, str]) -> str | None:
        # Older SDKs send the key as `x-api-key`, newer ones as a bearer token; the API takes both.
        auth = headers.get("authorization", "")
        return headers.get("x-api-key") or (auth[len("Bearer "):] if auth.startswith("Bearer ") else None)

    def _problem(self, body: Any) -> str | None:
        return anthropic_problem(body)

    def _error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{uuid.uuid4().hex[:24]}"}

    def _reply_body(self, body: Any, entry: Entry) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": entry["text"]}] if entry.get("text") else []
        for c in entry.get("tool_calls") or []:
            args = c.get("arguments") or {}
            content.append({"type": "tool_use", "id": c.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                            "name": c["name"], "input": json.loads(args) if isinstance(args, str) else args})
        has_calls = any(b["type"] == "tool_use" for b in content)
        prompt, completion = _usage(body, entry)
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
                images.append(decode_data_url(part["image_url"]["url"]))
    return images


def images_in_anthropic_request(body: Any) -> list[Image.Image]:
    """Decode every base64 image block of a messages body (tool_result contents included), in order."""
    images = []

    def walk(blocks: Any) -> None:
        for block in blocks if isinstance(blocks, list) else []:
            if block.get("type") == "image" and (block.get("source") or {}).get("type") == "base64":
                images.append(decode_b64_image(block["source"]["data"]))
            elif block.get("type") == "tool_result":
                walk(block.get("content"))

    for msg in body.get("messages", []):
        walk(msg.get("content"))
    return images
