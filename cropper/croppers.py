"""Training-free croppers for the `policy` strategy (baselines for the trained `CropPolicy`).

Any object with `propose(image, question, k=None, budget=None) -> list[Box]` plugs into the `policy`
strategy; these two need no training. A cropper may also have `propose_more(image, question, shown, k=None,
budget=None)`: the next crops after `shown`, which the strategy asks for when the model abstains.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from .geometry import Box, crop_set


@runtime_checkable
class Cropper(Protocol):
    """Chooses the crops a question needs. An empty list means the global view is enough."""

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        ...


class GridCropper:
    """Every crop of a crop set (`awares9`, `grid:N`, `multiscale`), or the first `k` of them."""

    def __init__(self, crops: str = "grid:2", k: int | None = None):
        self.crops = crop_set(crops)
        self.name = crops
        self.k = k

    def __repr__(self) -> str:
        return f"GridCropper({self.name!r}, k={self.k})"

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        boxes = list(self.crops.values())
        k = k if k is not None else self.k
        return boxes[:k] if k else boxes

    def propose_more(self, image: Image.Image, question: str, shown: list[Box], k: int | None = None,
                     budget: int | None = None) -> list[Box]:
        """The crops of the set not shown yet (the next `k` of them), for a retry after an abstention."""
        boxes = [b for b in self.crops.values() if b not in shown]
        k = k if k is not None else self.k
        return boxes[:k] if k else boxes


class TextRegionCropper:
    """Crops where text is, found on a downscaled view without OCR, question-aware, within an area budget.

    Two finders from the embedded reader's `zones` module run on a `view_side`-px view (a few
    milliseconds of OpenCV, no model): sign-shaped blobs of a colour the question names ("the red sign"),
    and text zones (ink that differs from its local background, joined into lines and blocks). Blobs
    come first (at most `signs`), then zones, most ink first, while the crops' total share of the image
    stays within `max_area` (`colour_area` once the question names a colour: the sign is the target and
    the other zones are only a fallback). A quadrant the question names ("top left") filters both.
    `k` caps the number of crops. Crops are sent at full resolution, so the area share is about the
    crops' share of the full image's visual tokens.
    """

    def __init__(self, k: int | None = None, view_side: int = 1024, max_area: float = 0.25,
                 colour_area: float = 0.05, signs: int = 7):
        self.k = k
        self.view_side = view_side
        self.max_area = max_area
        self.colour_area = colour_area
        self.signs = signs

    def __repr__(self) -> str:
        return f"TextRegionCropper(k={self.k}, max_area={self.max_area}, colour_area={self.colour_area})"

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None) -> list[Box]:
        """Crops for `question` (`budget` is left to the strategy, which shrinks crops to fit it)."""
        return self._choose(image, question, k, shown=[])

    def propose_more(self, image: Image.Image, question: str, shown: list[Box], k: int | None = None,
                     budget: int | None = None) -> list[Box]:
        """For a retry after an abstention: the signs and text zones not yet mostly inside a `shown` crop,
        within `max_area` for the new crops (the named colour's tighter `colour_area` was not enough)."""
        return self._choose(image, question, k, shown=list(shown))

    def _choose(self, image: Image.Image, question: str, k: int | None, shown: list[Box]) -> list[Box]:
        from backends.reader.questions import parse_question
        from backends.reader.zones import centre, covers, inside, sign_blobs, text_zones

        query = parse_question(question)
        view = image.copy()
        view.thumbnail((self.view_side, self.view_side))
        seen = [tuple(box) for box in shown]

        def wanted(rect) -> bool:
            if any(covers(s, rect) >= 0.9 for s in seen):
                return False
            return query.position is None or inside(centre(rect), query.position)

        signs = [r for r in sign_blobs(view, query.colour) if wanted(r)][: self.signs] if query.colour else []
        allowed = self.colour_area if query.colour and not shown else self.max_area
        limit = k if k is not None else self.k
        chosen, area = list(signs), sum(_area(r) for r in signs)
        for rect in text_zones(view):
            if limit is not None and len(chosen) >= limit:
                break
            if not wanted(rect) or any(covers(c, rect) >= 0.9 for c in chosen):  # mostly in a chosen crop
                continue
            if chosen and area + _area(rect) > allowed:
                continue  # a smaller zone further down may still fit
            chosen.append(rect)
            area += _area(rect)
        chosen = chosen[:limit] if limit is not None else chosen
        return [Box(*r).clamp() for r in chosen]


def _area(rect) -> float:
    return (rect[2] - rect[0]) * (rect[3] - rect[1])
