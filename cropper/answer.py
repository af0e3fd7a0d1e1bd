"""`Answer`: what one zoomed question returns, with everything an A/B report needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backends.messages import Reply

from .geometry import Box


@dataclass
class Answer:
    """The model's answer plus the crops used, visual tokens, pixels, latency and the raw replies.

    `crops` are normalized boxes of the image each came from; `crop_images[i]` says which image of the
    message (0-based) crop i was cut from (always 0 with one image).
    `visual_tokens` counts every distinct view the model was shown once (global view + crops), under the
    backend's token model; `input_tokens`/`output_tokens` add up what the provider reported over all
    calls (a multi-round tool conversation re-sends earlier views, so they can exceed it).
    """

    text: str
    strategy: str
    crops: list[Box] = field(default_factory=list)
    visual_tokens: int = 0
    pixels: int = 0
    latency_s: float = 0.0
    rounds: int = 0
    view_sizes: list[tuple[int, int]] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    replies: list[Reply] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)
    crop_images: list[int] = field(default_factory=list)  # for each crop, the 0-based image it was cut from

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no raw replies)."""
        return {
            "answer": self.text,
            "strategy": self.strategy,
            "crops": [b.to_list() for b in self.crops],
            "crop_images": list(self.crop_images),
            "visual_tokens": self.visual_tokens,
            "pixels": self.pixels,
            "latency_s": round(self.latency_s, 3),
            "rounds": self.rounds,
            "view_sizes": [list(s) for s in self.view_sizes],
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "notes": self.notes,
        }


def add_usage(total: int | None, value: int | None) -> int | None:
    """Sum usage counts where reported (None stays None only if nothing was ever reported)."""
    if value is None:
        return total
    return (total or 0) + value
