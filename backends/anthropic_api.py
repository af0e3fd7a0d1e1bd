"""Anthropic's Messages API as a `Backend`.

The SDK is imported lazily (`require`). Its own retries are turned off (`max_retries=0`) and
`backends.retry.RetryPolicy` is the one policy, honouring Retry-After. Tool results may carry images on
this wire, so the zoom tool's crops go straight into the `tool_result` block.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from .anthropic_wire import reply_from_message, to_anthropic_messages, to_anthropic_tools
from .base import BackendError, require
from .messages import Message, Reply, ToolSpec
from .retry import RetryPolicy, as_backend_error
from .sdk_options import fit_options

#: The API requires `max_tokens`; this is the default when neither the constructor nor the call sets it.
DEFAULT_MAX_TOKENS = 1024

#: Key sent to a custom `base_url` (a proxy or fake) when none is configured.
PLACEHOLDER_KEY = "EMPTY"


class AnthropicBackend:
    """A Claude model behind the Anthropic Messages API.

    - `model`: the model id; `api_key` defaults to ANTHROPIC_API_KEY (a custom `base_url` may go without).
    - `client`: an existing `anthropic.Anthropic` or `anthropic.AsyncAnthropic` to reuse (the drop-in
      wrapper passes the user's client). We use a copy with `max_retries=0`; its key, URL and timeout stay.
    - `timeout`: seconds per attempt; `max_retries` and `retry_wait=(base, max)` set the retry policy.
    - `image_format`: "png" (default) or "jpeg"/"webp".
    - other keyword arguments (`max_tokens`, `temperature`, `tool_choice`, ...) are default request
      options; per-call options override them. `max_tokens` defaults to 1024.
    """

    provider = "anthropic"
    supports_tool_images = True

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        client: Any = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        retry_wait: tuple[float, float] = (1.0, 30.0),
        image_format: str = "png",
        **default_options: Any,
    ):
        self._sdk = require("anthropic", "anthropic")
        self.model = model
        self.timeout = timeout
        self.image_format = image_format
        self.default_options = default_options
        self._sync: Any = None
        self._async: Any = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._user_client = client
        if client is not None:
            # A copy with our retry setting; it shares the user's connection pool and leaves theirs unchanged.
            # (Objects without `with_options`, such as test doubles, are used as they are.)
            wrapped = client.with_options(max_retries=0) if hasattr(client, "with_options") else client
            if isinstance(client, self._sdk.AsyncAnthropic):
                self._async = wrapped
            else:
                self._sync = wrapped
            key = getattr(client, "api_key", None)
            self._api_key = key if isinstance(key, str) else None
            url = getattr(client, "base_url", None)
            self.base_url = str(url) if url is not None else None
        else:
            self._api_key = (
                api_key or os.environ.get("ANTHROPIC_API_KEY") or (PLACEHOLDER_KEY if base_url else None)
            )
            if not self._api_key:
                raise BackendError("no Anthropic API key: pass api_key= or set ANTHROPIC_API_KEY")
            self.base_url = base_url
        self._retry = RetryPolicy.from_options(
            max_retries, retry_wait, transient=(self._sdk.APIConnectionError,), name=self.provider
        )

    def __repr__(self) -> str:  # never the key
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"AnthropicBackend(model={self.model!r}{where})"

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"api_key": self._api_key, "timeout": self.timeout, "max_retries": 0}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return kwargs

    @property
    def client(self) -> Any:
        """The sync SDK client requests go through (built on first use)."""
        if self._sync is None:
            if self._user_client is not None:
                raise BackendError("this backend wraps an async Anthropic client; call agenerate() instead")
            self._sync = self._sdk.Anthropic(**self._client_kwargs())
        return self._sync

    @property
    def async_client(self) -> Any:
        """The async SDK client `agenerate` uses, or None when wrapping a sync client.

        One we build is rebuilt for each new event loop: its connection pool belongs to the loop it first
        ran on, and each `asyncio.run(...)` makes a new loop.
        """
        if self._user_client is not None:
            return self._async
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is not loop:
            self._async, self._async_loop = self._sdk.AsyncAnthropic(**self._client_kwargs()), loop
        return self._async

    def request(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments for `messages.create` (useful for inspection and tests)."""
        image_format = options.pop("image_format", self.image_format)
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": DEFAULT_MAX_TOKENS, **self.default_options, **options}
        system, wire = to_anthropic_messages(messages, image_format=image_format)
        kwargs["messages"] = wire
        if system is not None:
            # The conversation's system messages come first, then a `system` option the caller passed.
            extra = kwargs.get("system")
            if extra is None:
                kwargs["system"] = system
            elif isinstance(extra, str):
                kwargs["system"] = f"{system}\n\n{extra}"
            else:  # a list of text blocks
                kwargs["system"] = [{"type": "text", "text": system}, *extra]
        if tools:
            kwargs["tools"] = to_anthropic_tools(tools)
        return kwargs

    def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Run the model on `messages` (offering `tools`) and return its reply; `BackendError` on failure."""
        kwargs = self.request(messages, tools, **options)
        client = self.client
        try:
            create = client.messages.create
            message = self._retry.call(create, **fit_options(create, kwargs))
        except self._sdk.AnthropicError as exc:
            raise as_backend_error(exc, self.provider, (self._api_key,)) from exc
        return reply_from_message(message)

    async def agenerate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Async `generate`, through `anthropic.AsyncAnthropic` (a wrapped sync client runs in a worker thread)."""
        client = self.async_client
        if client is None:
            return await asyncio.to_thread(self.generate, messages, tools, **options)
        kwargs = self.request(messages, tools, **options)
        try:
            create = client.messages.create
            message = await self._retry.acall(create, **fit_options(create, kwargs))
        except self._sdk.AnthropicError as exc:
            raise as_backend_error(exc, self.provider, (self._api_key,)) from exc
        return reply_from_message(message)
