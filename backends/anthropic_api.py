"""Anthropic's Messages API as a `Backend`.

The SDK is imported lazily; client handling and retries live in `SDKBackend`. Tool results may carry
images on this wire, so the zoom tool's crops go straight into the `tool_result` block.
"""

from __future__ import annotations

from typing import Any

from .anthropic_wire import ANTHROPIC_IMAGE_LIMITS, reply_from_message, to_anthropic_messages, to_anthropic_tools
from .messages import Message, Reply, ToolSpec
from .sdk_backend import PLACEHOLDER_KEY, SDKBackend

__all__ = ["AnthropicBackend", "DEFAULT_MAX_TOKENS", "PLACEHOLDER_KEY"]

#: The API requires `max_tokens`; this is the default when neither the constructor nor the call sets it.
DEFAULT_MAX_TOKENS = 1024


class AnthropicBackend(SDKBackend):
    """A Claude model behind the Anthropic Messages API.

    - `model`: the model id; `api_key` defaults to ANTHROPIC_API_KEY (a custom `base_url` may go without).
    - `client`: an existing `anthropic.Anthropic` or `anthropic.AsyncAnthropic` to reuse (the drop-in
      wrapper passes the user's client). We use a copy with `max_retries=0`; its key, URL and timeout stay.
    - `timeout`: seconds per attempt; `max_retries` and `retry_wait=(base, max)` set the retry policy.
    - `image_format`: "png" (default) or "jpeg"/"webp"; an image over Anthropic's limits falls back to
      JPEG/WebP or is scaled down (`image_codec.encode_within`).
    - `beta`: call `client.beta.messages.create` (betas, and the beta block types, pass through).
    - other keyword arguments (`max_tokens`, `temperature`, `tool_choice`, ...) are default request
      options; per-call options override them. `max_tokens` defaults to 1024.
    """

    provider = "anthropic"
    supports_tool_images = True
    image_limits = ANTHROPIC_IMAGE_LIMITS
    sdk_module, sync_class, async_class, error_class = "anthropic", "Anthropic", "AsyncAnthropic", "AnthropicError"
    key_variable, label = "ANTHROPIC_API_KEY", "Anthropic"

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
        beta: bool = False,
        **default_options: Any,
    ):
        self.beta = beta
        super().__init__(
            model, api_key=api_key, client=client, base_url=base_url, keyless=bool(base_url), timeout=timeout,
            max_retries=max_retries, retry_wait=retry_wait, image_format=image_format,
            default_options=default_options,
        )

    def request(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments for `messages.create` (useful for inspection and tests)."""
        image_format = options.pop("image_format", self.image_format)
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": DEFAULT_MAX_TOKENS, **self.default_options, **options}
        system, wire = to_anthropic_messages(messages, image_format=image_format, limits=self.image_limits)
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
            if isinstance(kwargs.get("tool_choice"), str):
                # The neutral spelling ("none", "auto", "any"): `{"type": "none"}` lets the tools stay defined
                # while forbidding a call ("`none` prevents Claude from using any tools",
                # https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools).
                kwargs["tool_choice"] = {"type": kwargs["tool_choice"]}
        else:
            kwargs.pop("tool_choice", None)  # a tool_choice means nothing without tools
        return kwargs

    def _create(self, client: Any) -> Any:
        return client.beta.messages.create if self.beta else client.messages.create

    def _reply(self, response: Any) -> Reply:
        return reply_from_message(response)
