"""The drop-in path: `ZoomWrapper(openai.OpenAI())` still answers `client.chat.completions.create(...)`.

The wrapper intercepts the calls that carry images (`chat.completions.create` and `.parse` for OpenAI;
`messages.create` and `beta.messages.create` for Anthropic), zooms the images of the last user message
that has any, runs the strategy through the user's own client, and returns the SDK's own response object
(the final one of a tool conversation). Everything else in the request goes to the provider as the caller
wrote it: earlier turns and their images (not re-encoded), blocks we do not model, the caller's own tools,
thinking blocks, `cache_control`. Requests without images, strategy `full` and every other method are
forwarded untouched; what is passed through unzoomed is said once at INFO on the "cropper" logger.
`stream=True` runs the rounds, then hands back the final answer as the SDK's stream items
(`dropin_stream`).

Unless the wrapper was given a `budget`, a zoomed request never costs more visual tokens than the plain
one would (the caller's `detail` included): the plain cost is the budget, and where even the global view
costs that much the request goes through unchanged. The `Answer` of the last call is on
`wrapper.last_answer` and on `response.cropper` (a dict) where the SDK's model allows extra attributes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from backends.base import BackendError

from .planning import plan_views
from .zoom_request import ZoomRequest

logger = logging.getLogger("cropper")


def client_kind(target: Any) -> str | None:
    """'openai', 'openai-async', 'anthropic', 'anthropic-async' for SDK clients, else None."""
    module = type(target).__module__ or ""
    name = type(target).__name__
    if module.startswith("openai") and hasattr(target, "chat"):
        return "openai-async" if name.startswith("Async") else "openai"
    if module.startswith("anthropic") and hasattr(target, "messages"):
        return "anthropic-async" if name.startswith("Async") else "anthropic"
    return None


def attach(wrapper: Any, kind: str) -> None:
    """Install the intercepting attributes (`chat`, or `messages` and `beta`) on the wrapper."""
    is_async = kind.endswith("async")
    client = wrapper.client
    if kind.startswith("openai"):
        completions = _OpenAICompletions(wrapper, client.chat.completions, is_async)
        wrapper.chat = _Forward(client.chat, completions=completions)
        if hasattr(client, "responses"):
            wrapper.responses = _OpenAIResponses(wrapper, client.responses, is_async)
    else:
        wrapper.messages = _AnthropicMessages(wrapper, client.messages, is_async, beta=False)
        beta = getattr(client, "beta", None)
        if beta is not None and hasattr(beta, "messages"):
            wrapper.beta = _Forward(beta, messages=_AnthropicMessages(wrapper, beta.messages, is_async, beta=True))


def backend_for(wrapper: Any, model: str, method: str = "create") -> Any:
    """A backend over the user's own client for `model` and SDK `method` (cached per model and method).

    `method` is "create" or "parse" (OpenAI `chat.completions.parse`), "responses" (OpenAI
    `responses.create`), or "beta" (Anthropic `beta.messages.create`).
    """
    cache = wrapper.__dict__.setdefault("_dropin_backends", {})
    key = (model, method)
    if key not in cache:
        # Honour the retry count the user set on their own client.
        retries = getattr(wrapper.client, "max_retries", None)
        extra = {"max_retries": retries} if isinstance(retries, int) else {}
        if method == "responses":
            from backends.openai_responses import OpenAIResponsesBackend

            cache[key] = OpenAIResponsesBackend(model=model, client=wrapper.client, **extra)
        elif wrapper.client_kind.startswith("openai"):
            from backends.openai_api import OpenAIBackend

            cache[key] = OpenAIBackend(model=model, client=wrapper.client, method=method, **extra)
        else:
            from backends.anthropic_api import AnthropicBackend

            cache[key] = AnthropicBackend(model=model, client=wrapper.client, beta=method == "beta", **extra)
    return cache[key]


class _Forward:
    """Forwards every attribute to `target` except the ones given as overrides."""

    def __init__(self, target: Any, **overrides: Any):
        self._target = target
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _say_once(wrapper: Any, what: str, why: str) -> None:
    """Log at INFO, once per wrapper and reason, that a call went to the provider unzoomed."""
    said = wrapper.__dict__.setdefault("_dropin_said", set())
    if (what, why) not in said:
        said.add((what, why))
        logger.info("cropper: %s passed through unzoomed: %s", what, why)


def _plain(value: Any) -> Any:
    """SDK objects (a previous response's message or content blocks) as plain dicts, recursively.

    Both SDKs accept their own response objects in `messages` (`messages.append(resp.choices[0].message)`),
    so the wrapper must too.
    """
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _finish(answer) -> Any:
    response = answer.replies[-1].raw
    try:
        response.cropper = answer.to_dict()
    except Exception:  # noqa: BLE001 - an SDK model that forbids extra attributes still works
        pass
    return response


def _unwrap(exc: BackendError) -> BaseException:
    # Drop-in callers catch the SDK's own exceptions (openai.RateLimitError, ...), not ours.
    return exc.__cause__ if exc.__cause__ is not None else exc


class _Intercept(_Forward):
    """The intercepted methods: zoom when the request has an image, else forward it untouched."""

    method_names = ("create",)

    def __init__(self, target: Any, wrapper: Any, is_async: bool):
        super().__init__(target)
        self._wrapper = wrapper
        self._is_async = is_async

    # provider hooks
    label = ""

    def _neutral(self, messages: Any) -> list:
        raise NotImplementedError

    def _backend_method(self, method: str) -> str:
        return method

    def _zoom_request(self, messages: Any, kwargs: dict[str, Any]) -> tuple[ZoomRequest | None, str]:
        """The request to zoom, or (None, why not)."""
        try:
            neutral = self._neutral(messages)
        except ValueError as exc:
            return None, str(exc)
        request = ZoomRequest.find(neutral, kwargs.get("tools"))
        if request is None:
            return None, "no image to zoom in the request"
        try:
            request.images  # noqa: B018 - decode them now: an unreadable image is the caller's to see, unzoomed
        except ValueError as exc:
            return None, f"an image could not be read ({exc})"
        return request, ""

    def _config(self, backend: Any, request: ZoomRequest) -> Any:
        """The strategy settings for this request, or None when zooming cannot beat the plain request."""
        wrapper = self._wrapper
        config = wrapper.config
        if config.budget is not None:
            return config  # the caller set the budget: theirs, even above the plain request's cost
        token_model = wrapper.token_model_for(backend)
        plain = sum(token_model.count(*token_model.fit_aspect(img.width, img.height), detail)
                    for img, detail in zip(request.images, request.details, strict=True))
        smallest = sum(plan_views(img, [], token_model, global_side=config.global_side, budget=plain, detail=detail).tokens
                       for img, detail in zip(request.images, request.details, strict=True))
        if smallest >= plain:
            return None
        return dataclasses.replace(config, budget=plain)

    #: The request's conversation keyword (`input` on the Responses API).
    messages_key = "messages"

    def _call(self, method: str, kwargs: dict[str, Any]):
        wrapper = self._wrapper
        messages, model = kwargs.get(self.messages_key), kwargs.get("model")
        forward = getattr(self._target, method)
        what = f"{self.label}.{method}"
        if wrapper.strategy == "full":
            return forward(**kwargs)
        request, why = self._zoom_request(messages, kwargs)
        if request is None:
            _say_once(wrapper, what, why)
            return forward(**kwargs)
        backend = backend_for(wrapper, model, self._backend_method(method))
        config = self._config(backend, request)
        if config is None:
            _say_once(wrapper, what, "the image is already small: a zoomed view would cost as much as the plain one")
            return forward(**kwargs)
        options = {k: v for k, v in kwargs.items()
                   if k not in (self.messages_key, "model", "tools", "stream", "stream_options")}
        if kwargs.get("stream"):
            # The rounds run unstreamed; the final answer is handed back as the SDK's stream items.
            # A streamed reply cannot be judged an abstention before it is handed over: no retries then.
            config = dataclasses.replace(config, abstain_retries=0)
            options["_stream"] = kwargs.get("stream_options") or {}
        if wrapper.strategy == "tool" and config.protocol == "awares" and len(request.images) != 1:
            _say_once(wrapper, what, "the AwaRes protocol zooms one image per request")
            return forward(**kwargs)
        return self._run(backend, request, config, options)

    def _stream_of(self, response: Any, stream_options: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _run(self, backend, request: ZoomRequest, config, options: dict[str, Any]):
        wrapper = self._wrapper
        stream_options = options.pop("_stream", None)

        def finish(answer):
            response = _finish(answer)
            if stream_options is None:
                return response
            from .dropin_stream import ReplayedStream

            return ReplayedStream(self._stream_of(response, stream_options), cropper=answer.to_dict())

        if not self._is_async:
            try:
                return finish(wrapper.run(backend, request=request, options=options, config=config))
            except BackendError as exc:
                raise _unwrap(exc) from None

        from .wrapper import LoopBridge

        async def go():
            bridge = LoopBridge(backend, asyncio.get_running_loop())
            try:
                answer = await asyncio.to_thread(wrapper.run, bridge, request=request, options=options, config=config)
            except BackendError as exc:
                raise _unwrap(exc) from None
            return finish(answer)

        return go()

    def create(self, **kwargs):
        """The SDK's create, with the images of the last user message zoomed."""
        return self._call("create", kwargs)

    def stream(self, **kwargs):
        """The SDK's streaming helper (`messages.stream`, `chat.completions.stream`): passed through unzoomed
        (use `create(..., stream=True)` to zoom a streamed request)."""
        _say_once(self._wrapper, f"{self.label}.stream", "the streaming helper is not zoomed; create(stream=True) is")
        return self._target.stream(**kwargs)


class _OpenAICompletions(_Intercept):
    label = "chat.completions"

    def __init__(self, wrapper: Any, target: Any, is_async: bool):
        super().__init__(target, wrapper, is_async)

    def _neutral(self, messages):
        from backends.openai_wire import from_openai_messages

        return from_openai_messages(_plain(list(messages or [])), keep_wire=True)

    def _stream_of(self, response, stream_options):
        from .dropin_stream import openai_chunks

        return openai_chunks(response, include_usage=bool(stream_options.get("include_usage")))

    def parse(self, **kwargs):
        """The SDK's `parse` (structured output), with the images zoomed; every round goes through `parse`."""
        return self._call("parse", kwargs)


class _OpenAIResponses(_Intercept):
    label = "responses"
    messages_key = "input"
    def __init__(self, wrapper: Any, target: Any, is_async: bool):
        super().__init__(target, wrapper, is_async)

    def _neutral(self, items):
        from backends.responses_wire import from_responses_input

        return from_responses_input(_plain(items if isinstance(items, str) else list(items or [])))

    def _stream_of(self, response, stream_options):
        from .dropin_stream import responses_events

        return responses_events(response)

    def _backend_method(self, method: str) -> str:
        return "responses"


class _AnthropicMessages(_Intercept):
    def __init__(self, wrapper: Any, target: Any, is_async: bool, beta: bool):
        super().__init__(target, wrapper, is_async)
        self._beta = beta
        self.label = "beta.messages" if beta else "messages"

    def _neutral(self, messages):
        from backends.anthropic_wire import from_anthropic_messages

        # The caller's `system` stays an option: the backend sends it after ours, as the caller wrote it.
        return from_anthropic_messages(_plain(list(messages or [])), keep_wire=True)

    def _backend_method(self, method: str) -> str:
        return "beta" if self._beta else method

    def _stream_of(self, response, stream_options):
        from .dropin_stream import anthropic_events

        return anthropic_events(response, beta=self._beta)
