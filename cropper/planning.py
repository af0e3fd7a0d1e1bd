"""Sizing the global view and the crops so a question fits a visual-token budget.

Crops are always cut from the original image; the plan only decides at what pixel size each view is
sent. Under a budget, crops shrink first (they are already sharper than the global view), then the
global view. Every view is kept within the token model's aspect-ratio limit (`within_aspect`), so long
strips (receipts, scrolled screenshots, 10x40000 scans) are sent rather than refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from .geometry import Box
from .images import View, global_view, render
from .tokens import TokenModel

#: Below this long side a crop shows too little to be worth sending.
MIN_CROP_SIDE = 112
MIN_GLOBAL_SIDE = 224


@dataclass
class Plan:
    """The views to send and what they cost."""

    global_view: View | None
    crops: list[View]
    tokens: int

    @property
    def views(self) -> list[View]:
        return ([self.global_view] if self.global_view else []) + self.crops


def within_aspect(view: View, token_model: TokenModel) -> View:
    """`view`, its short side stretched so its aspect ratio is within `token_model.max_aspect` (if it has one).

    Why stretch, not pad or split: every caption maps the view's pixels linearly onto a box of the original
    (the global view's says [0, 0, 1, 1], a zoom's names the box asked for) and so do the reader and a VLM's
    coordinates; a stretched view keeps that mapping exact, where a padded or split one would put content
    somewhere its caption does not say. It only touches views whose short side is under long / max_aspect px:
    for a global view that takes an image of about 200:1 or more, whose short side is then < 6 px at 1024
    (nothing legible to lose); a crop is widened by its ratio / 200 (a 400:1 line of text gets glyphs 2x as
    tall, still readable). Pixels are only added, never dropped.
    """
    size = token_model.fit_aspect(*view.image.size)
    if size == view.image.size:
        return view
    return View(view.box, view.image.resize(size, Image.Resampling.BICUBIC))


def view_tokens(view: View, token_model: TokenModel, detail: str | None = None) -> int:
    """Visual tokens of one view under `token_model` (at OpenAI `detail`, where it applies)."""
    return token_model.count(view.image.width, view.image.height, detail)


#: A view is shrunk to the size the provider processes only when that drops more than this share of its
#: pixels: below it the provider's resize is a rounding (Qwen's 28-px grid moves a side by up to 14 px, 2-3%
#: of a 600-px side), not a downscale worth a resample of ours (the ones that matter are large: Claude's
#: 1.2 MP cap, gpt-4o's 768-px short side).
_AS_USED_SLACK = 0.10


def as_used(view: View, token_model: TokenModel, detail: str | None = None) -> View:
    """`view` at the size the provider will process it at (its token model's `effective_size`).

    The provider would downscale a larger image itself: sending it at that size costs the same tokens
    and shows the model the same pixels, for far fewer bytes (a 3000x2000 crop for Claude is 1.2 MP as
    used, not 6 MP; a 12000x1000 crop is under Anthropic's 8000-px side limit once shrunk).
    """
    w, h = view.image.size
    ew, eh = token_model.effective_size(w, h, detail)
    if ew > w or eh > h or ew * eh >= (1 - _AS_USED_SLACK) * w * h:
        return view
    if token_model.fit_aspect(ew, eh) != (ew, eh):
        # The provider's own resize can round a thin side past its limit (Qwen under max_pixels 1M turns
        # 100x20000, 200:1, into 56x14140, 252:1): it takes the view as it is, it would refuse that size from us.
        return view
    return View(view.box, view.image.resize((ew, eh), Image.Resampling.LANCZOS))


def render_crop(image: Image.Image, box: Box, max_side: int | None = None) -> View:
    """A crop at full resolution, capped at `max_side` on its long side."""
    return render(image, box, max_side=max_side)


def fit_crop(image: Image.Image, box: Box, token_model: TokenModel, budget: int | None, max_side: int | None = None,
             detail: str | None = None) -> View | None:
    """The largest rendering of `box` costing at most `budget` tokens (None: nothing fits), as the provider uses it."""
    view = within_aspect(render_crop(image, box, max_side), token_model)
    if budget is None or view_tokens(view, token_model, detail) <= budget:
        return as_used(view, token_model, detail)
    hi = max(view.image.size)
    lo = MIN_CROP_SIDE
    best = None
    while lo <= hi:  # binary search on the long side: token counts are monotone in size
        mid = (lo + hi) // 2
        candidate = within_aspect(render_crop(image, box, mid), token_model)
        if view_tokens(candidate, token_model, detail) <= budget:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return None if best is None else as_used(best, token_model, detail)


def plan_views(
    image: Image.Image,
    boxes: list[Box],
    token_model: TokenModel,
    *,
    global_side: int | None = 1024,
    crop_side: int | None = None,
    budget: int | None = None,
    detail: str | None = None,
) -> Plan:
    """The global view (unless `global_side` is None) plus `boxes` as crops, within `budget` tokens.

    `detail` is the OpenAI detail the views will be sent with (the caller's), which sets their cost. Every
    view is within the token model's aspect limit (`within_aspect`), so a long strip is planned, not refused.
    """
    glob = within_aspect(global_view(image, global_side), token_model) if global_side else None
    if budget is not None and glob is not None:
        while view_tokens(glob, token_model, detail) > budget and max(glob.size) > MIN_GLOBAL_SIDE:
            glob = within_aspect(global_view(image, max(MIN_GLOBAL_SIDE, int(max(glob.size) * 0.8))), token_model)
    if glob is not None:
        glob = as_used(glob, token_model, detail)
    spent = view_tokens(glob, token_model, detail) if glob else 0
    crops: list[View] = []
    if boxes:
        remaining = None if budget is None else budget - spent
        # Share what is left equally at first; what a small crop does not use goes to the next ones.
        for i, box in enumerate(boxes):
            share = None if remaining is None else remaining // (len(boxes) - i)
            if share is not None and share <= 0:
                break
            view = fit_crop(image, box, token_model, share, crop_side, detail)
            if view is None:
                continue
            crops.append(view)
            if remaining is not None:
                remaining -= view_tokens(view, token_model, detail)
    tokens = spent + sum(view_tokens(v, token_model, detail) for v in crops)
    return Plan(glob, crops, tokens)
