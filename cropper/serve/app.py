"""`cropper serve`: an OpenAI-compatible HTTP proxy that zooms the images in chat completion requests.

    cropper serve --upstream openai:gpt-4.1-mini --strategy tool --port 8000
    # then, from any language: POST http://127.0.0.1:8000/v1/chat/completions (the OpenAI API)

A request with an image (the last image of the last user message that has one) is answered through
`ZoomWrapper`: the upstream model sees the global view plus only the crops the strategy picks, and the
response is a normal ChatCompletion whose `usage` reports what was spent, plus a `cropper` field (the
crops, visual tokens used and saved). A request without images goes upstream untouched (byte for byte to an
OpenAI-compatible upstream, streaming included). Endpoints: `POST /v1/chat/completions`, `GET /v1/models`,
`GET /healthz`, `GET /metrics` (Prometheus text).

The upstream key comes from the server's environment (`OPENAI_API_KEY`, ...) and never appears in a response
or a log line. Clients authenticate to the proxy with `--api-key` (Bearer) when one is set.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from backends.base import BackendError

from .admission import AdmissionError, Gate, PixelBudget, Slot
from .body_checks import BodyError, check_chat_body
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .remote_images import RemoteImageError, inline_remote_images

__all__ = ["ServeConfig", "create_app"]

logger = logging.getLogger("cropper.serve")

#: Request fields passed on to the upstream model for zoomed requests (the rest are the proxy's business).
FORWARDED_OPTIONS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
                     "frequency_penalty", "presence_penalty")


@dataclass
class ServeConfig:
    """Settings of the proxy (the CLI flags of `cropper serve`)."""

    upstream: str = "reader"
    strategy: str = "policy"
    cropper: str | None = None
    budget: int | None = None
    global_side: int = 1024
    max_rounds: int = 3
    api_key: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    timeout_s: float = 120.0
    max_concurrency: int = 8
    max_queue: int = 64
    #: Decoded pixels all requests may hold at once. One image at the 100 MP cap fits, two do not: measured
    #: with `python -m cropper.serve.bombtest`, a 99 MP PNG through the `policy` strategy peaks the server at
    #: 1.15 GB and two at once at 2.09 GB (the decoded RGB image, its views, the cropper's work on it).
    max_decoded_pixels: int = 150_000_000
    allow_remote_images: bool = False
    remote_image_max_bytes: int = 20 * 1024 * 1024
    remote_image_timeout_s: float = 10.0
    upstream_options: dict[str, Any] = field(default_factory=dict)


class ProxyError(Exception):
    """An error answered in OpenAI's error JSON shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers or {}
        self.param = param

    @classmethod
    def refused(cls, exc: AdmissionError) -> ProxyError:
        """The client's answer to a request that was not admitted."""
        kind = "rate_limit_error" if exc.status == 429 else "invalid_request_error"
        headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else None
        return cls(exc.status, exc.message, kind, exc.code, headers)


def _error_response(error: ProxyError):
    from starlette.responses import JSONResponse

    body = {"error": {"message": error.message, "type": error.kind, "param": error.param, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


class Proxy:
    """The proxy's state: the upstream backends (one per model), the wrapper, the gate and the metrics."""

    def __init__(self, config: ServeConfig):
        from backends import load_backend

        from ..wrapper import ZoomWrapper

        self.config = config
        self.metrics = Metrics()
        self.gate: Gate | None = None  # made on the server's event loop (startup)
        self.pixels = PixelBudget(config.max_decoded_pixels)
        self.default_backend = load_backend(config.upstream, **config.upstream_options)
        self.kind = config.upstream.partition(":")[0].strip().lower()
        self.default_model = getattr(self.default_backend, "model", None) or config.upstream
        self._backends = {self.default_model: self.default_backend}
        self.wrapper = ZoomWrapper(self.default_backend, strategy=config.strategy, cropper=config.cropper,
                                   budget=config.budget, global_side=config.global_side, max_rounds=config.max_rounds)
        self._http = None
        # Pools of their own, not asyncio's default one (6 threads on 2 cores): a slot's work always has a
        # thread (the gate admits at most `max_concurrency`), and parsing a body never waits behind zooms,
        # so a 429 comes back at once even when every slot is busy.
        self.work_pool = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="cropper-work")
        self.parse_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cropper-parse")

    # --- upstream -----------------------------------------------------------------------------------------

    def backend_for(self, model: str | None):
        """The upstream backend for the request's model (the configured one for the reader / hf)."""
        if not model or model == self.default_model or self.kind in ("reader", "hf"):
            return self.default_backend
        if model not in self._backends:
            from backends import load_backend

            spec = {"openai": f"openai:{model}", "anthropic": f"anthropic:{model}",
                    "openai-compatible": f"{self.config.upstream.split('#')[0]}#{model}"}[self.kind]
            self._backends[model] = load_backend(spec, **self.config.upstream_options)
        return self._backends[model]

    @property
    def raw_passthrough(self) -> bool:
        return self.kind in ("openai", "openai-compatible")

    def http(self):
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.timeout_s)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        # Not waiting: a timed-out request's thread may still sit on its upstream call; it ends on its own.
        self.work_pool.shutdown(wait=False, cancel_futures=True)
        self.parse_pool.shutdown(wait=False)

    # --- handlers -----------------------------------------------------------------------------------------

    async def completions(self, request):
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_s  # the queue's wait counts against the timeout
        self.metrics.in_flight.inc()
        slot = None
        try:
            self._check_auth(request)
            body = await self._read_json(request)
            try:
                await self.gate.acquire(deadline - loop.time())
            except AdmissionError as exc:
                raise ProxyError.refused(exc) from None
            slot = Slot(self.gate, self.pixels)
            response = await self._answer(body, slot, deadline)
        except ProxyError as error:
            self.metrics.error(error.status)
            response = _error_response(error)
        except Exception:  # noqa: BLE001 - a bug of ours: answered in OpenAI's shape, counted, logged once
            logger.exception("cropper serve: internal error")
            self.metrics.error(500)
            response = _error_response(ProxyError(500, "internal error in the cropper proxy (see its log)",
                                                  "server_error", "internal_error"))
        finally:
            if slot is not None:
                slot.finish()
                if slot.lingering:  # timed out: the slot stays taken until its thread ends
                    self.metrics.lingering.inc()
                    slot.on_release = self.metrics.lingering.dec
            self.metrics.in_flight.dec()
            self.metrics.latency(time.perf_counter() - started)
        return response

    def _check_auth(self, request) -> None:
        if not self.config.api_key:
            return
        header = request.headers.get("authorization", "")
        # Constant time: `!=` would tell a client, by its timing, how much of a guessed key was right.
        if not hmac.compare_digest(header.encode(), f"Bearer {self.config.api_key}".encode()):
            raise ProxyError(401, "invalid or missing API key for this proxy (Authorization: Bearer ...)",
                             "invalid_request_error", "invalid_api_key")

    async def _read_json(self, request) -> dict[str, Any]:
        cap = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise ProxyError(413, f"request body of {int(declared):,} bytes is over this proxy's {cap:,}-byte cap")
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > cap:
                raise ProxyError(413, f"request body is over this proxy's {cap:,}-byte cap")
        # Parsed on a worker thread: 32 MB of JSON takes the event loop long enough to stall /healthz.
        return await asyncio.get_running_loop().run_in_executor(self.parse_pool, _parse_body, bytes(data))

    async def _answer(self, body: dict[str, Any], slot: Slot, deadline: float):
        # Everything that reads image bytes runs on worker threads: the event loop keeps answering /healthz.
        neutral, request, pixels = await self._thread(lambda: self._read_messages(body["messages"]), slot, deadline,
                                                      reading=True)
        if request is None:
            self.metrics.request("passthrough")
            if self.raw_passthrough:
                return await self._forward(body)
            return await self._generate(body, neutral, slot, deadline)
        try:
            slot.take_pixels(pixels)  # before a pixel is decoded
        except AdmissionError as exc:
            raise ProxyError.refused(exc) from None
        self.metrics.request("zoomed")
        return await self._zoom(body, request, slot, deadline)

    def _read_messages(self, messages: list[dict[str, Any]]):
        """(neutral messages, the ZoomRequest or None, the declared pixels of the request's images).

        Sizes come from the images' headers: nothing is decoded here (the zoomed images are decoded once
        the pixel budget has room for them).
        """
        from backends.openai_wire import from_openai_messages

        from ..zoom_request import ZoomRequest

        inline_remote_images(messages, self.config.allow_remote_images, self.config.remote_image_max_bytes,
                             self.config.remote_image_timeout_s)
        pixels = declared_pixels(messages)
        neutral = from_openai_messages(messages, keep_wire=True)
        return neutral, ZoomRequest.find(neutral), pixels

    async def _forward(self, body: dict[str, Any]):
        """The request, unchanged, to an OpenAI-compatible upstream; its answer (or stream) back as it is."""
        import httpx
        from starlette.responses import Response, StreamingResponse

        backend = self.default_backend
        base = (backend.base_url or "https://api.openai.com/v1").rstrip("/")
        headers = {"content-type": "application/json", **backend.authorization()}
        client = self.http()
        upstream = client.build_request("POST", f"{base}/chat/completions", content=json.dumps(body), headers=headers)
        try:
            reply = await client.send(upstream, stream=bool(body.get("stream")))
        except httpx.TimeoutException:
            raise ProxyError(504, "the upstream model timed out", "upstream_error", "upstream_timeout") from None
        except httpx.HTTPError as exc:
            raise ProxyError(502, f"cannot reach the upstream model: {type(exc).__name__}", "upstream_error",
                             "upstream_unreachable") from None
        if reply.status_code >= 500:
            await reply.aclose()
            raise ProxyError(502, f"the upstream model failed with HTTP {reply.status_code}", "upstream_error",
                             "upstream_error")
        passed = {k: v for k, v in reply.headers.items() if k.lower() in ("content-type", "retry-after", "x-request-id")}
        if body.get("stream") and reply.status_code == 200:
            return StreamingResponse(reply.aiter_raw(), status_code=200, headers=passed,
                                     background=_close_later(reply))
        content = await reply.aread()
        await reply.aclose()
        return Response(content, status_code=reply.status_code, headers=passed)

    async def _generate(self, body: dict[str, Any], neutral, slot: Slot, deadline: float):
        """A text-only request to a non-OpenAI upstream (reader, Anthropic, hf): one generate call."""
        backend = self.backend_for(body.get("model"))
        options = {k: body[k] for k in FORWARDED_OPTIONS if k in body}
        reply = await self._thread(lambda: backend.generate(neutral, **options), slot, deadline)
        usage = {"prompt_tokens": reply.usage.input_tokens or 0, "completion_tokens": reply.usage.output_tokens or 0}
        return self._completion(body, reply.text, usage, None)

    async def _zoom(self, body: dict[str, Any], request, slot: Slot, deadline: float):
        backend = self.backend_for(body.get("model"))
        options = {k: body[k] for k in FORWARDED_OPTIONS if k in body}

        def work():
            request.images  # noqa: B018 - decoded here, on the worker, within the pixel budget taken
            return self.wrapper.run(backend, request=request, options=options)

        answer = await self._thread(work, slot, deadline)
        token_model = self.wrapper.token_model_for(backend)
        full = sum(token_model.count(*token_model.fit_aspect(img.width, img.height), detail)
                   for img, detail in zip(request.images, request.details, strict=True))
        self.metrics.tokens(answer.visual_tokens, full)
        extra = {**answer.to_dict(), "full_image_visual_tokens": full,
                 "saved_visual_tokens": max(0, full - answer.visual_tokens)}
        prompt = answer.input_tokens if answer.input_tokens is not None else answer.visual_tokens
        completion = answer.output_tokens if answer.output_tokens is not None else len(answer.text.split())
        return self._completion(body, answer.text, {"prompt_tokens": prompt, "completion_tokens": completion}, extra)

    async def _thread(self, fn, slot: Slot, deadline: float, reading: bool = False):
        """Run `fn` on a worker thread, within the request's deadline; the slot is held until it ends."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.work_pool, fn)
        future.add_done_callback(_retrieve)
        slot.track(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise ProxyError(504, f"no answer within the proxy's {self.config.timeout_s:g}s timeout", "upstream_error",
                             "timeout") from None
        except BackendError as exc:
            raise _upstream_error(exc) from None
        except (RemoteImageError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if not reading and not isinstance(exc, ValueError):
                raise  # a bug of ours, not the client's: a 500, logged
            where = "cannot read the request's messages: " if reading else ""
            raise ProxyError(400, f"{where}{exc}") from None
        except OSError as exc:  # an unreadable image, a bad crop request
            raise ProxyError(400, str(exc)) from None

    def _completion(self, body: dict[str, Any], text: str, usage: dict[str, int], extra: dict | None):
        from starlette.responses import JSONResponse, StreamingResponse

        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        model = body.get("model") or self.default_model
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.get("stream"):
            return StreamingResponse(_sse_chunks(ident, created, model, text, usage, extra, body),
                                     media_type="text/event-stream")
        payload = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}],
                   "usage": usage}
        if extra is not None:
            payload["cropper"] = extra
        return JSONResponse(payload)

    async def models(self, request):
        try:
            self._check_auth(request)
        except ProxyError as error:
            return _error_response(error)
        from starlette.responses import JSONResponse

        return JSONResponse({"object": "list", "data": [
            {"id": self.default_model, "object": "model", "created": 0, "owned_by": f"cropper:{self.kind}"}]})


async def _sse_chunks(ident, created, model, text, usage, extra, body):
    def chunk(delta, finish=None, **more):
        payload = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **more}
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for start in range(0, len(text), 64):  # the answer is complete; chunks keep streaming clients' code paths
        yield chunk({"content": text[start:start + 64]})
    final = {"cropper": extra} if extra is not None else {}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield chunk({}, "stop", **final)
        yield f"data: {json.dumps({'id': ident, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n"
    else:
        yield chunk({}, "stop", **final)
    yield "data: [DONE]\n\n"


def _parse_body(data: bytes) -> dict[str, Any]:
    """The request body as a checked chat completion request (ProxyError 400 naming what is wrong)."""
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProxyError(400, f"request body is not valid JSON: {exc}") from None
    try:
        check_chat_body(body)
    except BodyError as exc:
        raise ProxyError(400, str(exc), param=exc.param) from None
    return body


def _retrieve(future) -> None:
    """Read a finished worker's exception, so one nobody awaits any more (it timed out) is not logged as lost."""
    if not future.cancelled():
        future.exception()


def _upstream_error(exc: BackendError) -> ProxyError:
    """The client's answer to an upstream failure: its 4xx passed on, 429 kept, timeouts 504, the rest 502."""
    status = exc.status
    if status == 429:
        return ProxyError(429, "the upstream model is rate limited; retry shortly", "rate_limit_error",
                          "upstream_rate_limited", {"Retry-After": "1"})
    if status is not None and 400 <= status < 500:
        return ProxyError(status, f"the upstream model refused the request: {exc}", "invalid_request_error",
                          "upstream_rejected")
    timed_out = "timed out" in str(exc).lower() or "timeout" in str(exc).lower()
    return ProxyError(504 if timed_out else 502, f"the upstream model failed: {exc}", "upstream_error",
                      "upstream_error")


def declared_pixels(messages: list[dict[str, Any]]) -> int:
    """The pixels the data-URL images of `messages` declare in their headers (none is decoded).

    ImageError (a ValueError) naming the part for one that is not an image or is over the pixel cap.
    """
    from backends.image_decode import data_url_bytes, declared_size

    total = 0
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if part.get("type") != "image_url":
                continue
            spec = part["image_url"]
            url = spec if isinstance(spec, str) else spec["url"]
            label = f"messages[{i}].content[{j}].image_url"
            width, height = declared_size(data_url_bytes(url, label), label)
            total += width * height
    return total


def _close_later(reply):
    from starlette.background import BackgroundTask

    return BackgroundTask(reply.aclose)


def create_app(config: ServeConfig | None = None):
    """The Starlette application (run it with uvicorn, or `cropper serve`)."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    config = config or ServeConfig()
    proxy = Proxy(config)

    @asynccontextmanager
    async def lifespan(app):
        proxy.gate = Gate(config.max_concurrency, config.max_queue)
        logger.info("cropper serve: upstream %s, strategy %s", proxy.default_backend, config.strategy)
        yield
        await proxy.close()

    async def healthz(request):
        return JSONResponse({"status": "ok", "upstream": proxy.kind, "strategy": config.strategy})

    async def metrics(request):
        return PlainTextResponse(proxy.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    app = Starlette(routes=[
        Route("/v1/chat/completions", proxy.completions, methods=["POST"]),
        Route("/chat/completions", proxy.completions, methods=["POST"]),
        Route("/v1/models", proxy.models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.proxy = proxy
    return app
