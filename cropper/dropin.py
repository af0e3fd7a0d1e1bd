"""The drop-in path: `ZoomWrapper(openai.OpenAI())` still answers `client.chat.completions.create(...)`.

The wrapper intercepts exactly the one call that carries images (`chat.completions.create` for OpenAI,
`messages.create` for Anthropic), zooms the last image of the last user message that has one, runs the
strategy through the user's own client, and returns the SDK's own response object (the final one of a
tool conversation). Requests without images, streaming requests and everything else are forwarded
untouched. The `Answer` of the last call is on `wrapper.last_answer` and on `response.cropper`
(a dict) where the SDK's model allows extra attributes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from backends.base import BackendError
from backends.messages import ImagePart, Message

from .images import load_image

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
    """Install the intercepting attribute (`chat` or `messages`) on the wrapper."""
    if kind.startswith("openai"):
        wrapper.chat = _Forward(wrapper.client.chat, completions=_OpenAICompletions(wrapper, kind.endswith("async")))
    else:
        wrapper.messages = _AnthropicMessages(wrapper, kind.endswith("async"))


def backend_for(wrapper: Any, model: str) -> Any:
    """A backend over the user's own client for `model` (cached per model)."""
    cache = wrapper.__dict__.setdefault("_dropin_backends", {})
    if model not in cache:
        # Honour the retry count the user set on their own client.
        retries = getattr(wrapper.client, "max_retries", None)
        extra = {"max_retries": retries} if isinstance(retries, int) else {}
        if wrapper._client_kind.startswith("openai"):
            from backends.openai_api import OpenAIBackend

            cache[model] = OpenAIBackend(model=model, client=wrapper.client, **extra)
        else:
            from backends.anthropic_api import AnthropicBackend

            cache[model] = AnthropicBackend(model=model, client=wrapper.client, **extra)
    return cache[model]


class _Forward:
    """Forwards every attribute to `target` except the ones given as overrides."""

    def __init__(self, target: Any, **overrides: Any):
        self._target = target
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


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


def _neutral(convert, messages, **kwargs) -> list[Message] | None:
    """The neutral form of the caller's messages, or None to pass the request through unchanged.

    A remote image URL is never fetched here (no network side effects in a wrapper): such a request goes
    to the provider as it was.
    """
    try:
        return convert(_plain(list(messages)), **kwargs)
    except ValueError as exc:
        logger.info("cropper: passing the request through unzoomed: %s", exc)
        return None


def _find_image(messages: list[Message]) -> tuple[int, int] | None:
    """(message index, part index) of the last image in the last user message that has images."""
    for mi in range(len(messages) - 1, -1, -1):
        message = messages[mi]
        if message.role == "user":
            for pi in range(len(message.content) - 1, -1, -1):
                if isinstance(message.content[pi], ImagePart):
                    return mi, pi
    return None


def _split(messages: list[Message]) -> tuple[list[Message], Any, str] | None:
    """(prefix, image, question) for the zoomed message, or None when there is nothing to zoom."""
    found = _find_image(messages)
    if found is None:
        return None
    mi, pi = found
    message = messages[mi]
    # Other images of that message stay as they were, ahead of the zoomed views.
    others = [p for i, p in enumerate(message.content) if isinstance(p, ImagePart) and i != pi]
    prefix = messages[:mi] + ([Message("user", others)] if others else [])
    if mi + 1 < len(messages):
        # Turns after the image message (rare): keep them by folding them into the question.
        tail = "\n".join(m.text for m in messages[mi + 1 :] if m.text)
        question = f"{message.text}\n{tail}".strip()
    else:
        question = message.text
    return prefix, load_image(message.content[pi].image), question


def _run(wrapper: Any, backend: Any, prefix, image, question: str, options: dict, is_async: bool):
    if wrapper.strategy == "tool":
        # The zoom tool replaces the caller's tools for this request: one tool protocol at a time.
        options = {k: v for k, v in options.items() if k not in ("tools", "tool_choice")}
    if is_async:
        from .wrapper import LoopBridge

        async def go():
            bridge = LoopBridge(backend, asyncio.get_running_loop())
            return await asyncio.to_thread(wrapper.run, bridge, image, question, prefix=prefix, options=options)

        return go()
    return wrapper.run(backend, image, question, prefix=prefix, options=options)


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
    """The intercepted `create`: zoom when the request has an image, else forward it untouched."""

    def __init__(self, target: Any, wrapper: Any, is_async: bool):
        super().__init__(target)
        self._wrapper = wrapper
        self._is_async = is_async

    def _to_neutral(self, messages, kwargs) -> list[Message] | None:
        raise NotImplementedError

    def create(self, *, messages, model, **kwargs):
        """The SDK's create, with the last image of the last user message zoomed."""
        wrapper = self._wrapper
        split = None
        if not kwargs.get("stream") and wrapper.strategy != "full":
            neutral = self._to_neutral(messages, kwargs)
            split = _split(neutral) if neutral is not None else None
        if split is None:
            return self._target.create(messages=messages, model=model, **kwargs)
        kwargs.pop("system", None)  # Anthropic's system prompt is now part of the neutral prefix
        backend = backend_for(wrapper, model)
        try:
            result = _run(wrapper, backend, *split, kwargs, self._is_async)
        except BackendError as exc:
            raise _unwrap(exc) from None
        if not self._is_async:
            return _finish(result)

        async def finish():
            try:
                return _finish(await result)
            except BackendError as exc:
                raise _unwrap(exc) from None

        return finish()


class _OpenAICompletions(_Intercept):
    def __init__(self, wrapper: Any, is_async: bool):
        super().__init__(wrapper.client.chat.completions, wrapper, is_async)

    def _to_neutral(self, messages, kwargs):
        from backends.openai_wire import from_openai_messages

        return _neutral(from_openai_messages, messages)


class _AnthropicMessages(_Intercept):
    def __init__(self, wrapper: Any, is_async: bool):
        super().__init__(wrapper.client.messages, wrapper, is_async)

    def _to_neutral(self, messages, kwargs):
        from backends.anthropic_wire import from_anthropic_messages

        return _neutral(from_anthropic_messages, messages, system=_plain(kwargs.get("system")))
