"""The neutral message type every backend converts to its own wire format.

One small vocabulary (as in lmms-eval): a conversation is a list of `Message`; a message holds parts
(`TextPart`, `ImagePart`), an assistant message may carry `ToolCall`s, and a `tool` message answers one
call with text and images. Backends translate this to OpenAI chat completions, Anthropic messages, a
transformers chat template or the embedded reader; nothing else in the project knows a wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class TextPart:
    """Plain text inside a message."""

    text: str


@dataclass
class ImagePart:
    """An image inside a message, held as a decoded RGB PIL image.

    `detail` is OpenAI's `detail` hint ("low", "high", "auto"); other backends ignore it.
    `label` is a short caption the wrapper attaches (e.g. which region of the original image a crop
    shows); backends send it as a text part right before the image.
    """

    image: Image.Image
    detail: str | None = None
    label: str | None = None

    def __repr__(self) -> str:  # PIL's repr is noisy and large images would flood logs
        return f"ImagePart({self.image.width}x{self.image.height}, detail={self.detail!r}, label={self.label!r})"


Part = TextPart | ImagePart


@dataclass
class ToolCall:
    """A tool call requested by the model. `arguments` is already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolSpec:
    """A tool offered to the model: name, description and a JSON-schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class Message:
    """One turn of a conversation.

    - `system`/`user`: `content` holds text and image parts.
    - `assistant`: `content` holds text; `tool_calls` the calls the model made.
    - `tool`: the result of the call `tool_call_id` (named `name`); `content` may hold images.
    """

    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        """All text parts joined with newlines."""
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        """The image parts, in order."""
        return [p for p in self.content if isinstance(p, ImagePart)]


def user(*parts: str | Image.Image | Part) -> Message:
    """Build a user message from strings, PIL images and parts, in order."""
    return Message("user", [_as_part(p) for p in parts])


def system(text: str) -> Message:
    """Build a system message."""
    return Message("system", [TextPart(text)])


def _as_part(p: str | Image.Image | Part) -> Part:
    if isinstance(p, str):
        return TextPart(p)
    if isinstance(p, Image.Image):
        return ImagePart(p)
    if isinstance(p, (TextPart, ImagePart)):
        return p
    raise TypeError(f"cannot use {type(p).__name__} as a message part (expected str, PIL image, TextPart or ImagePart)")


@dataclass
class Usage:
    """Token usage as reported by the provider (None where it reports nothing)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    image_tokens: int | None = None


@dataclass
class Reply:
    """What `Backend.generate` returns: text, tool calls, usage, and the provider's raw response."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    raw: Any = None

    def as_message(self) -> Message:
        """The reply as an assistant message, to append to the conversation."""
        # A blank text block is refused by some APIs (Anthropic): leave it out.
        content: list[Part] = [TextPart(self.text)] if self.text.strip() else []
        return Message("assistant", content, tool_calls=list(self.tool_calls))
