"""`VLMCropper`: a vision-language model as the cropper (the CropVLM approach), behind `propose`.

    cropper = VLMCropper("openai-compatible:http://127.0.0.1:8001/v1#cropvlm")   # a served cropper model
    ZoomWrapper(client, strategy="policy", cropper=cropper)                      # or cropper="vlm:SPEC"
    cropper compare ... --cropper vlm:openai:gpt-4.1-nano

The cropper model sees the low-resolution view and the question and answers with the region that would
help, `[x1, y1, x2, y2]` in percent of the image (0-100), CropVLM's output format; "Not needed." (the
answer their GRPO reward accepts for questions that need no crop) means no crop.
Other conventions are recognised too (0-1, Qwen's 0-1000, pixels of the view it was sent); see
`cropper.box_parsing.parse_boxes`. A reply that is neither a box nor "Not needed." gives no crop, or raises
`CropReplyError` with `on_garbage="raise"`; never anything else.
"""

from __future__ import annotations

import re
from typing import Any

from PIL import Image

from backends.messages import ImagePart, Message, TextPart

from .box_parsing import CONVENTIONS, parse_boxes
from .geometry import Box
from .images import global_view

__all__ = ["VLMCropper", "CropReplyError", "parse_crop_reply", "CROPVLM_PROMPT"]

#: CropVLM's cropper prompt (miguelscarv/cropvlm: `generate_bboxes.py`, `grpo.py`, `utils.py`): one user turn,
#: the image then this text, with the question passed through `str.capitalize()` as they do. Their model
#: answers `[x1, y1, x2, y2].` in integer percent (0-100) of the image.
CROPVLM_PROMPT = "{question}\nOutline the region in the image that would help answer this question."

_NOT_NEEDED = re.compile(r"^\W*(not\s+needed|no\s+crop(\s+needed)?|none)\W*$", re.I)


class CropReplyError(ValueError):
    """A cropper model's reply that is neither a box nor "Not needed."."""


def parse_crop_reply(text: str, view_size: tuple[int, int], convention: str = "auto",
                     on_garbage: str = "none") -> list[Box]:
    """The boxes in a cropper model's reply; [] for "Not needed." (and for garbage, unless `on_garbage="raise"`)."""
    if on_garbage not in ("none", "raise"):
        raise ValueError(f"on_garbage must be 'none' or 'raise', got {on_garbage!r}")
    text = (text or "").strip()
    if _NOT_NEEDED.match(text):
        return []
    boxes = parse_boxes(text, view_size[0], view_size[1], convention=convention)
    if not boxes and on_garbage == "raise":
        raise CropReplyError(f"the cropper model's reply is neither a box nor 'Not needed.': {text[:120]!r}")
    return boxes


class VLMCropper:
    """Asks a backend (any spec or `Backend`) which region to crop; plugs into the `policy` strategy.

    Args:
        backend: a backend spec (`"openai:gpt-4.1-nano"`, `"openai-compatible:URL#MODEL"`, `"hf:DIR"`) or object.
        prompt: the request, with `{question}`; default `CROPVLM_PROMPT` (CropVLM's own).
        capitalize: pass the question through `str.capitalize()` first, as CropVLM does.
        view_side: long side of the view the cropper model is shown (CropVLM's inference default: 512; pixel
            boxes are read against it).
        convention: `auto` or one of `unit`, `percent`, `thousand`, `pixels` when the model is known.
        on_garbage: `"none"` (no crop) or `"raise"` (`CropReplyError`) for replies with no box.
        k: at most this many boxes (None: all the model gave).
    """

    def __init__(self, backend: Any, prompt: str = CROPVLM_PROMPT, view_side: int = 512, convention: str = "auto",
                 on_garbage: str = "none", k: int | None = None, capitalize: bool = True, **backend_options: Any):
        from backends import load_backend

        if convention not in CONVENTIONS:
            raise ValueError(f"unknown box convention {convention!r}; known: {CONVENTIONS}")
        if "{question}" not in prompt:
            raise ValueError("the cropper prompt needs a {question} placeholder")
        self.backend = load_backend(backend, **backend_options)
        self.prompt, self.view_side, self.convention = prompt, view_side, convention
        self.on_garbage, self.k, self.capitalize = on_garbage, k, capitalize
        self.last_reply: str | None = None

    def __repr__(self) -> str:
        return f"VLMCropper({self.backend!r})"

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        view = global_view(image, self.view_side)
        text = question.capitalize() if self.capitalize else question  # CropVLM's own preprocessing
        message = Message("user", [ImagePart(view.image), TextPart(self.prompt.format(question=text))])
        reply = self.backend.generate([message])
        self.last_reply = reply.text
        boxes = parse_crop_reply(reply.text, view.size, self.convention, self.on_garbage)
        limit = k if k is not None else self.k
        return boxes[:limit] if limit else boxes
