"""OpenAI's Responses API (`client.responses.create`) as a `Backend`.

The drop-in wrapper uses it for `ZoomWrapper(openai.OpenAI()).responses.create(...)`; client handling and
retries live in `SDKBackend`. Tool results may carry images on this API (`function_call_output` with
`input_image` parts), so the zoom tool's crops go back natively.
"""

from __future__ import annotations

from typing import Any

from .messages import Message, Reply, ToolSpec
from .openai_api import TOOL_ONLY_OPTIONS
from .openai_wire import OPENAI_IMAGE_LIMITS
from .responses_wire import reply_from_response, to_responses_input, to_responses_tools
from .sdk_backend import SDKBackend

__all__ = ["OpenAIResponsesBackend"]


class OpenAIResponsesBackend(SDKBackend):
    """A model behind `responses.create`; arguments as `OpenAIBackend` (`client` is the user's own)."""

    provider = "openai"
    supports_tool_images = True
    image_limits = OPENAI_IMAGE_LIMITS
    sdk_module, sync_class, async_class, error_class = "openai", "OpenAI", "AsyncOpenAI", "OpenAIError"
    key_variable, label = "OPENAI_API_KEY", "OpenAI"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, client: Any = None,
                 timeout: float = 60.0, max_retries: int = 4, retry_wait: tuple[float, float] = (1.0, 30.0),
                 image_format: str = "png", **default_options: Any):
        super().__init__(model, api_key=api_key, client=client, base_url=base_url, keyless=False, timeout=timeout,
                         max_retries=max_retries, retry_wait=retry_wait, image_format=image_format,
                         default_options=default_options)

    def request(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> dict[str, Any]:
        """The keyword arguments for `responses.create`."""
        image_format = options.pop("image_format", self.image_format)
        kwargs: dict[str, Any] = {"model": self.model, **self.default_options, **options}
        kwargs["input"] = to_responses_input(messages, image_format=image_format)
        if tools:
            kwargs["tools"] = to_responses_tools(tools)
        else:
            for name in TOOL_ONLY_OPTIONS:
                kwargs.pop(name, None)
        return kwargs

    def _create(self, client: Any) -> Any:
        return client.responses.create

    def _reply(self, response: Any) -> Reply:
        return reply_from_response(response)
