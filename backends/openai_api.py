"""OpenAI chat completions as a `Backend`, also for any OpenAI-compatible server (vLLM, Ollama, LM Studio).

The SDK is imported lazily (`require`), so `backends` imports without it. The SDK's own retries are turned
off (`max_retries=0`) and `backends.retry.RetryPolicy` is the one policy, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from .base import BackendError, require
from .messages import Message, Reply, ToolSpec
from .openai_wire import reply_from_completion, to_openai_messages, to_openai_tools
from .retry import RetryPolicy, as_backend_error
from .sdk_options import fit_options

#: Key sent to OpenAI-compatible servers that need none (the SDK refuses to build a client without one).
PLACEHOLDER_KEY = "EMPTY"


class OpenAIBackend:
    """A model behind the OpenAI chat-completions API.

    - `model`: the model id sent with each request.
    - `base_url`: another endpoint (e.g. "http://localhost:8000/v1"); `compatible=True` marks a non-OpenAI
      server, where a missing API key is fine.
    - `api_key`: defaults to OPENAI_API_KEY.
    - `client`: an existing `openai.OpenAI` or `openai.AsyncOpenAI` to reuse (the drop-in wrapper passes the
      user's client). We use a copy of it with `max_retries=0`; its key, base URL and timeout are kept.
    - `timeout`: seconds per attempt; `max_retries` and `retry_wait=(base, max)` set the retry policy.
    - `image_format`: "png" (default, lossless for small text) or "jpeg"/"webp" for smaller requests.
    - other keyword arguments (`temperature`, `max_tokens`, `tool_choice`, ...) are default request
      options; per-call options override them.
    """

    provider = "openai"
    supports_tool_images = False

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        compatible: bool = False,
        timeout: float = 60.0,
        max_retries: int = 4,
        retry_wait: tuple[float, float] = (1.0, 30.0),
        image_format: str = "png",
        **default_options: Any,
    ):
        self._sdk = require("openai", "openai")
        self.model = model
        self.compatible = compatible
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
            if isinstance(client, self._sdk.AsyncOpenAI):
                self._async = wrapped
            else:
                self._sync = wrapped
            key = getattr(client, "api_key", None)
            self._api_key = key if isinstance(key, str) else None
            url = getattr(client, "base_url", None)
            self.base_url = str(url) if url is not None else None
        else:
            self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or (PLACEHOLDER_KEY if compatible else None)
            if not self._api_key:
                raise BackendError("no OpenAI API key: pass api_key= or set OPENAI_API_KEY")
            self.base_url = base_url
        self._retry = RetryPolicy.from_options(
            max_retries, retry_wait, transient=(self._sdk.APIConnectionError,), name=self.provider
        )

    def __repr__(self) -> str:  # never the key
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"OpenAIBackend(model={self.model!r}{where})"

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
                raise BackendError("this backend wraps an async OpenAI client; call agenerate() instead of generate()")
            self._sync = self._sdk.OpenAI(**self._client_kwargs())
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
            self._async, self._async_loop = self._sdk.AsyncOpenAI(**self._client_kwargs()), loop
        return self._async

    def request(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments for `chat.completions.create` (useful for inspection and tests)."""
        image_format = options.pop("image_format", self.image_format)
        kwargs: dict[str, Any] = {"model": self.model, **self.default_options, **options}
        kwargs["messages"] = to_openai_messages(messages, image_format=image_format)
        if tools:
            kwargs["tools"] = to_openai_tools(tools)
        return kwargs

    def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Run the model on `messages` (offering `tools`) and return its reply; `BackendError` on failure."""
        kwargs = self.request(messages, tools, **options)
        client = self.client
        try:
            create = client.chat.completions.create
            completion = self._retry.call(create, **fit_options(create, kwargs))
        except self._sdk.OpenAIError as exc:
            raise as_backend_error(exc, self.provider, (self._api_key,)) from exc
        return reply_from_completion(completion)

    async def agenerate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Async `generate`, through `openai.AsyncOpenAI` (a wrapped sync client runs in a worker thread)."""
        client = self.async_client
        if client is None:
            return await asyncio.to_thread(self.generate, messages, tools, **options)
        kwargs = self.request(messages, tools, **options)
        try:
            create = client.chat.completions.create
            completion = await self._retry.acall(create, **fit_options(create, kwargs))
        except self._sdk.OpenAIError as exc:
            raise as_backend_error(exc, self.provider, (self._api_key,)) from exc
        return reply_from_completion(completion)
