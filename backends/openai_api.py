"""OpenAI chat completions as a `Backend`, also for any OpenAI-compatible server (vLLM, Ollama, LM Studio).

The SDK is imported lazily, so `backends` imports without it; client handling and retries live in
`SDKBackend`.
"""

from __future__ import annotations

from typing import Any

from .messages import Message, Reply, ToolSpec
from .openai_wire import OPENAI_IMAGE_LIMITS, reply_from_completion, to_openai_messages, to_openai_tools
from .sdk_backend import PLACEHOLDER_KEY, SDKBackend

__all__ = ["OpenAIBackend", "PLACEHOLDER_KEY", "TOOL_ONLY_OPTIONS"]

#: Options that only mean something next to `tools`; sent without tools they are refused
#: ("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are
#: specified", the API's 400), so a request without tools drops them.
TOOL_ONLY_OPTIONS = ("tool_choice", "parallel_tool_calls")


class OpenAIBackend(SDKBackend):
    """A model behind the OpenAI chat-completions API.

    - `model`: the model id sent with each request.
    - `base_url`: another endpoint (e.g. "http://localhost:8000/v1"); `compatible=True` marks a non-OpenAI
      server, where a missing API key is fine.
    - `api_key`: defaults to OPENAI_API_KEY.
    - `client`: an existing `openai.OpenAI` or `openai.AsyncOpenAI` to reuse (the drop-in wrapper passes the
      user's client). We use a copy of it with `max_retries=0`; its key, base URL and timeout are kept.
    - `timeout`: seconds per attempt; `max_retries` and `retry_wait=(base, max)` set the retry policy.
    - `image_format`: "png" (default, lossless for small text) or "jpeg"/"webp" for smaller requests; an
      image that would break OpenAI's byte limits falls back to JPEG/WebP (`image_codec.encode_within`).
    - `method`: "create" (default) or "parse" (`chat.completions.parse`: structured outputs, strict tools).
    - other keyword arguments (`temperature`, `max_tokens`, `tool_choice`, ...) are default request
      options; per-call options override them.
    """

    provider = "openai"
    supports_tool_images = False
    image_limits = OPENAI_IMAGE_LIMITS
    sdk_module, sync_class, async_class, error_class = "openai", "OpenAI", "AsyncOpenAI", "OpenAIError"
    key_variable, label = "OPENAI_API_KEY", "OpenAI"

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
        method: str = "create",
        **default_options: Any,
    ):
        if method not in ("create", "parse"):
            raise ValueError(f"unknown chat-completions method {method!r}; use 'create' or 'parse'")
        self.compatible = compatible
        self.method = method
        # `chat.completions.parse` refuses tools that are not strict ("Only `strict` function tools can be
        # auto-parsed", openai/lib/_parsing/_completions.py): the strategies then offer a strict zoom tool.
        self.needs_strict_tools = method == "parse"
        super().__init__(
            model, api_key=api_key, client=client, base_url=base_url, keyless=compatible, timeout=timeout,
            max_retries=max_retries, retry_wait=retry_wait, image_format=image_format,
            default_options=default_options,
        )

    def request(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments for `chat.completions.create` (useful for inspection and tests)."""
        image_format = options.pop("image_format", self.image_format)
        kwargs: dict[str, Any] = {"model": self.model, **self.default_options, **options}
        kwargs["messages"] = to_openai_messages(messages, image_format=image_format, limits=self.image_limits)
        if tools:
            kwargs["tools"] = to_openai_tools(tools)
        else:
            for name in TOOL_ONLY_OPTIONS:
                kwargs.pop(name, None)
        return kwargs

    def _create(self, client: Any) -> Any:
        return getattr(client.chat.completions, self.method)

    def _reply(self, response: Any) -> Reply:
        return reply_from_completion(response)
