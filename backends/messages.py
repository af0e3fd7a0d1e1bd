"""The neutral message type every backend converts to its own wire format.

One small vocabulary (as in lmms-eval): a conversation is a list of `Message`; a message holds parts
(`TextPart`, `ImagePart`), an assistant message may carry `ToolCall`s, and a `tool` message answers one
call with text and images. Backends translate this to OpenAI chat completions, Anthropic messages, a
transformers chat template or the embedded reader; nothing else in the project knows a wire format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Wire:
    """A piece of a provider's own JSON, kept as the caller sent it (or as the provider returned it).

    `provider` names the wire format ("openai" for chat completions, "anthropic" for messages); `value` is
    the JSON object. A converter for that provider sends it back unchanged, so what the wrapper does not
    handle (`cache_control`, `is_error`, documents, thinking blocks, the caller's JPEG bytes) keeps its
    meaning; a converter for another provider refuses it rather than guess.
    """

    provider: str
    value: Any


@dataclass
class TextPart:
    """Plain text inside a message. `wire`: the provider block it came from, sent back unchanged."""

    text: str
    wire: Wire | None = field(default=None, repr=False, compare=False)


class ImagePart:
    """An image inside a message, held as an RGB PIL image (decoded on first use when built with `loader`).

    `detail` is OpenAI's `detail` hint ("low", "high", "auto"); other backends ignore it.
    `label` is a short caption the wrapper attaches (e.g. which region of the original image a crop
    shows); backends send it as a text part right before the image.
    `wire` is the provider block the image arrived in: sent to that provider, the block goes out as it came
    (its bytes are not re-encoded), so an image the wrapper does not zoom costs what it cost the caller.
    """

    __slots__ = ("_image", "_loader", "detail", "label", "wire")

    def __init__(self, image: Image.Image | None = None, detail: str | None = None, label: str | None = None,
                 wire: Wire | None = None, *, loader: Callable[[], Image.Image] | None = None):
        if image is None and loader is None:
            raise TypeError("ImagePart needs an image or a loader")
        self._image = image
        self._loader = loader
        self.detail = detail
        self.label = label
        self.wire = wire

    @property
    def image(self) -> Image.Image:
        """The decoded image (decoded now if this part was built lazily)."""
        if self._image is None:
            self._image = self._loader()  # type: ignore[misc]
        return self._image

    @property
    def decoded(self) -> bool:
        """Whether the pixels have been decoded yet."""
        return self._image is not None

    def __repr__(self) -> str:  # PIL's repr is noisy and large images would flood logs
        size = f"{self._image.width}x{self._image.height}" if self._image is not None else "not decoded"
        return f"ImagePart({size}, detail={self.detail!r}, label={self.label!r})"


@dataclass
class RawPart:
    """A content block the neutral vocabulary does not model (an Anthropic `document`, `thinking`,
    `tool_result` kept whole, an OpenAI `input_audio` part...): sent unchanged to its own provider."""

    wire: Wire

    @property
    def block(self) -> Any:
        """The provider's JSON block."""
        return self.wire.value


Part = TextPart | ImagePart | RawPart


@dataclass
class ToolCall:
    """A tool call requested by the model. `arguments` is already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolSpec:
    """A tool offered to the model: name, description and a JSON-schema for its arguments.

    Where a backend takes `tools`, a plain dict is a tool definition already in that provider's own form
    (the caller's own tools, in the drop-in): it is sent unchanged.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool = False  # OpenAI strict mode (the schema is then in its strict form)


@dataclass
class Message:
    """One turn of a conversation.

    - `system`/`user`: `content` holds text and image parts.
    - `assistant`: `content` holds text; `tool_calls` the calls the model made.
    - `tool`: the result of the call `tool_call_id` (named `name`); `content` may hold images.

    `wire` is the whole message as the caller sent it: a converter for that provider sends it unchanged
    (the drop-in wrapper keeps every turn it does not zoom this way).
    """

    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    wire: Wire | None = field(default=None, repr=False, compare=False)

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
    if isinstance(p, (TextPart, ImagePart, RawPart)):
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
    """What `Backend.generate` returns: text, tool calls, usage, and the provider's raw response.

    `thinking` holds the provider's reasoning blocks exactly as returned (Anthropic `thinking` and
    `redacted_thinking`, signatures included): the API requires them back, first in the assistant turn,
    when the conversation goes on after a tool call, so `as_message` puts them there unchanged.
    """

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    raw: Any = None
    thinking: list[Wire] = field(default_factory=list)

    def as_message(self) -> Message:
        """The reply as an assistant message, to append to the conversation."""
        # A blank text block is refused by some APIs (Anthropic): leave it out.
        content: list[Part] = [RawPart(block) for block in self.thinking]
        if self.text.strip():
            content.append(TextPart(self.text))
        return Message("assistant", content, tool_calls=list(self.tool_calls))


def own_wire(item: Any, provider: str) -> Any:
    """The JSON `item` carries for `provider` (its `wire`), or None when it has none for that provider."""
    wire = getattr(item, "wire", None)
    return wire.value if wire is not None and wire.provider == provider else None
