"""The one small protocol every backend implements, and the errors they raise."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from .messages import Message, Reply, ToolSpec


@runtime_checkable
class Backend(Protocol):
    """A vision-language model behind one call.

    `provider` names the token model family ("openai", "anthropic", "qwen2.5-vl", ...) and `model`
    the model id; the wrapper uses both to count visual tokens. `supports_tool_images` says whether a
    tool result may carry images on this wire format (OpenAI's may not: the images then follow in a
    user message).
    """

    provider: str
    model: str
    supports_tool_images: bool

    def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Run the model on a conversation and return its reply."""
        ...


class BackendError(RuntimeError):
    """A backend failed in a way retries did not fix (or must not retry: a 4xx other than 429)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class MissingDependency(ImportError):
    """An optional SDK is not installed; the message says what to install."""


def require(module: str, install: str) -> Any:
    """Import `module` or raise `MissingDependency` with the pip command that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"this backend needs the '{module}' package: pip install {install}") from exc
