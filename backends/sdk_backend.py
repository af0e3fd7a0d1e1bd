"""What the OpenAI and Anthropic backends share: client handling, the retry policy and sync/async calls.

A subclass names its SDK (module, client classes, base error, key variable) and supplies three small
hooks: `request` (neutral messages -> create kwargs), `_create` (the client's create method) and
`_reply` (the SDK response -> `Reply`). The SDK's own retries are turned off (`max_retries=0`) and
`backends.retry.RetryPolicy` is the one policy, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from .base import BackendError, require
from .messages import Message, Reply, ToolSpec
from .retry import RetryPolicy, as_backend_error
from .sdk_options import fit_options

#: Key sent to servers that need none (the SDKs refuse to build a client without one).
PLACEHOLDER_KEY = "EMPTY"


class SDKBackend:
    """Base of the API backends; see `OpenAIBackend` and `AnthropicBackend` for the arguments."""

    provider = ""
    supports_tool_images = False
    sdk_module = ""  # import name and pip name of the SDK
    sync_class = ""
    async_class = ""
    error_class = ""
    key_variable = ""
    label = ""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        client: Any,
        base_url: str | None,
        keyless: bool,
        timeout: float,
        max_retries: int,
        retry_wait: tuple[float, float],
        image_format: str,
        default_options: dict[str, Any],
    ):
        self._sdk = require(self.sdk_module, self.sdk_module)
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
            if isinstance(client, getattr(self._sdk, self.async_class)):
                self._async = wrapped
            else:
                self._sync = wrapped
            key = getattr(client, "api_key", None)
            self._api_key = key if isinstance(key, str) else None
            url = getattr(client, "base_url", None)
            self.base_url = str(url) if url is not None else None
        else:
            self._api_key = api_key or os.environ.get(self.key_variable) or (PLACEHOLDER_KEY if keyless else None)
            if not self._api_key:
                raise BackendError(f"no {self.label} API key: pass api_key= or set {self.key_variable}")
            self.base_url = base_url
        self._retry = RetryPolicy.from_options(
            max_retries, retry_wait, transient=(self._sdk.APIConnectionError,), name=self.provider
        )

    def __repr__(self) -> str:  # never the key
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}(model={self.model!r}{where})"

    def authorization(self) -> dict[str, str]:
        """The HTTP header that authenticates to this backend's API (for a proxy forwarding raw requests).

        Never log it: it holds the key.
        """
        return {"authorization": f"Bearer {self._api_key}"}

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
                raise BackendError(f"this backend wraps an async {self.label} client; call agenerate() instead of generate()")
            self._sync = getattr(self._sdk, self.sync_class)(**self._client_kwargs())
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
            self._async, self._async_loop = getattr(self._sdk, self.async_class)(**self._client_kwargs()), loop
        return self._async

    # --- hooks ---------------------------------------------------------------------------------------------

    def request(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments for the SDK's create call (useful for inspection and tests)."""
        raise NotImplementedError

    def _create(self, client: Any) -> Any:
        raise NotImplementedError

    def _reply(self, response: Any) -> Reply:
        raise NotImplementedError

    # --- calls ---------------------------------------------------------------------------------------------

    def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Run the model on `messages` (offering `tools`) and return its reply; `BackendError` on failure."""
        kwargs = self.request(messages, tools, **options)
        client = self.client
        try:
            create = self._create(client)
            response = self._retry.call(create, **fit_options(create, kwargs))
        except getattr(self._sdk, self.error_class) as exc:
            raise as_backend_error(exc, self.provider, (self._api_key,)) from exc
        return self._reply(response)

    async def agenerate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Async `generate` through the SDK's async client (a wrapped sync client runs in a worker thread)."""
        client = self.async_client
        if client is None:
            return await asyncio.to_thread(self.generate, messages, tools, **options)
        kwargs = self.request(messages, tools, **options)
        try:
            create = self._create(client)
            response = await self._retry.acall(create, **fit_options(create, kwargs))
        except getattr(self._sdk, self.error_class) as exc:
            raise as_backend_error(exc, self.provider, (self._api_key,)) from exc
        return self._reply(response)
