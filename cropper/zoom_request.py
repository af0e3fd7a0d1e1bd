"""`ZoomRequest`: a conversation, the message whose images get zoomed, and the caller's own tools.

Every strategy answers one of these. `ask` builds the simplest (one user message: the image, then the
question); the drop-in wrapper builds it from the caller's own request, so that only the zoomed images
change: every other turn, block and image goes to the provider as the caller wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from PIL import Image

from backends.messages import ImagePart, Message, Part, TextPart

from .images import load_image


@dataclass
class ZoomRequest:
    """What a strategy is asked: `messages`, of which `messages[target]` (a user message) holds the images.

    `tools` are the caller's own tool definitions (`ToolSpec`s, or dicts in the provider's own form): they
    reach the model unchanged, next to the `zoom` tool where the strategy adds it.
    """

    messages: list[Message]
    target: int
    tools: list[Any] = field(default_factory=list)

    @classmethod
    def single(cls, image: Image.Image, question: str, prefix: list[Message] | None = None) -> ZoomRequest:
        """One image and one question, after `prefix` (a system prompt, earlier turns)."""
        messages = [*(prefix or []), Message("user", [ImagePart(image), TextPart(question)])]
        return cls(messages, len(messages) - 1)

    @classmethod
    def find(cls, messages: list[Message], tools: list[Any] | None = None) -> ZoomRequest | None:
        """The request that zooms the images of the last user message holding any; None when none does."""
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == "user" and messages[index].images:
                return cls(list(messages), index, list(tools or []))
        return None

    @property
    def image_parts(self) -> list[ImagePart]:
        """The image parts being zoomed, in order."""
        return self.messages[self.target].images

    @cached_property
    def images(self) -> list[Image.Image]:
        """The zoomed images, decoded once, EXIF-oriented RGB, under the pixel cap (`images.load_image`)."""
        return [load_image(part.image, name=f"image {i} of the request") for i, part in
                enumerate(self.image_parts, 1)]

    @property
    def details(self) -> list[str | None]:
        """The caller's `detail` for each zoomed image (OpenAI's hint; None where not given)."""
        return [part.detail for part in self.image_parts]

    @property
    def question(self) -> str:
        """The text the croppers read: the target message's text, then any user text after it."""
        texts = [self.messages[self.target].text]
        texts += [m.text for m in self.messages[self.target + 1:] if m.role == "user" and m.text]
        return "\n".join(t for t in texts if t).strip()

    def render(self, views: list[list[Part]], note: str | None = None) -> list[Message]:
        """The conversation with image i of the target message replaced by `views[i]`.

        `note` (an instruction of the strategy's) goes first in that message. Every other part and message
        is kept as it is, with its own wire form.
        """
        if len(views) != len(self.image_parts):
            raise ValueError(f"{len(views)} view lists for {len(self.image_parts)} images")
        queue = iter(views)
        content: list[Part] = [TextPart(note)] if note else []
        for part in self.messages[self.target].content:
            content.extend(next(queue) if isinstance(part, ImagePart) else [part])
        message = Message("user", content)
        return [*self.messages[:self.target], message, *self.messages[self.target + 1:]]
