"""Visual-token models: how many tokens one image of a given pixel size costs on each provider.

Every formula follows the provider's published rules (URL next to each); the tests check them against the
worked examples those pages give. Counts are estimates of what the provider bills or feeds the model for the
image alone (no message overhead). Used for budgets, A/B reports and costs.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

__all__ = [
    "TokenModel",
    "OpenAITileModel",
    "OpenAIPatchModel",
    "AnthropicModel",
    "QwenVLModel",
    "GeminiModel",
    "token_model_for",
    "visual_tokens",
    "KNOWN_PROVIDERS",
]

_EPS = 1e-9  # guards floor() against float noise such as 1055.9999999 for an exact 1056

logger = logging.getLogger("cropper")
_WARNED: set[str] = set()  # model names already warned about in this process


def _warn_guessed_rule(model: str, rule: str) -> None:
    """Warn once per model name per process that ``model`` is counted with a guessed ``rule``."""
    if model in _WARNED:
        return
    _WARNED.add(model)
    logger.warning(
        "no documented visual-token rule is known for model %r; counting its images with %s. If that is wrong, "
        "pass the right one: ZoomWrapper(..., token_model=...) (e.g. a cropper.tokens.OpenAIPatchModel, "
        "AnthropicModel, GeminiModel or QwenVLModel).",
        model,
        rule,
    )


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def _fit_within(width: int, height: int, max_w: int, max_h: int) -> tuple[int, int]:
    """Scale down (never up) to fit a max_w x max_h box, aspect preserved, rounding down to whole pixels."""
    scale = min(max_w / width, max_h / height)
    if scale >= 1:
        return width, height
    return max(1, math.floor(width * scale + _EPS)), max(1, math.floor(height * scale + _EPS))


class TokenModel:
    """Base class: the visual-token cost of one image on one provider/model."""

    name: str = "token-model"
    #: The largest long/short side ratio the provider accepts (None: no documented limit); see `fit_aspect`.
    max_aspect: ClassVar[float | None] = None

    def effective_size(self, width: int, height: int, detail: str | None = None) -> tuple[int, int]:
        """Pixel size (width, height) the provider actually processes after its documented resizes."""
        raise NotImplementedError

    def count(self, width: int, height: int, detail: str | None = None) -> int:
        """Visual tokens billed/used for one image of ``width`` x ``height`` pixels."""
        raise NotImplementedError

    def fit_aspect(self, width: int, height: int) -> tuple[int, int]:
        """The size to send a ``width`` x ``height`` image at so the provider accepts its aspect ratio: the same
        within ``max_aspect``, else the short side grown to ``ceil(long / max_aspect)`` (no pixel dropped)."""
        _check_size(width, height)
        limit = self.max_aspect
        if limit is None or max(width, height) <= limit * min(width, height):
            return width, height
        short = math.ceil(max(width, height) / limit)  # long / short <= limit
        return (short, height) if width < height else (width, short)


# OpenAI, tile models (GPT-4o, GPT-4.1, gpt-4o-mini, o1/o3, gpt-5, gpt-5.1, computer-use-preview).
# https://developers.openai.com/api/docs/guides/images-vision#calculating-costs
# (formerly https://platform.openai.com/docs/guides/images-vision): "low" costs the base tokens; "high"/"auto":
# fit within 2048x2048, then if the shortest side exceeds 768 px scale it to 768 (rounding the other side down;
# smaller images are not enlarged), count 512-px tiles, cost = base + tiles * tile_tokens.
@dataclass(frozen=True)
class OpenAITileModel(TokenModel):
    """OpenAI tile-based image cost: ``base + tile * n_tiles(512px)`` after the documented resizes."""

    name: str = "gpt-4o"
    base_tokens: int = 85
    tile_tokens: int = 170

    def effective_size(self, width: int, height: int, detail: str | None = None) -> tuple[int, int]:
        _check_size(width, height)
        mode = _openai_detail(detail, self.name)
        if mode == "original":
            raise ValueError(f"detail='original' is not supported by {self.name!r}")
        if mode == "low":
            return _fit_within(width, height, 512, 512)
        w, h = _fit_within(width, height, 2048, 2048)
        short = min(w, h)
        if short > 768:
            w, h = (768, math.floor(h * 768 / w + _EPS)) if w <= h else (math.floor(w * 768 / h + _EPS), 768)
        return w, h

    def tiles(self, width: int, height: int) -> int:
        """Number of 512-px tiles covering the high-detail image."""
        w, h = self.effective_size(width, height, "high")
        return math.ceil(w / 512) * math.ceil(h / 512)

    def count(self, width: int, height: int, detail: str | None = None) -> int:
        self.effective_size(width, height, detail)  # validates size and detail
        if _openai_detail(detail, self.name) == "low":
            return self.base_tokens
        return self.base_tokens + self.tile_tokens * self.tiles(width, height)


# OpenAI, 32-px patch models (gpt-4.1-mini/nano 2025-04-14, o4-mini, gpt-5-mini/nano, gpt-5.4...).
# https://developers.openai.com/api/docs/guides/images-vision#patch-based-image-tokenization
# Fit within max_side, then if ceil(w/32)*ceil(h/32) exceeds the patch budget shrink by
# sqrt(32^2*budget/(w*h)), adjusted so whole patches fit, floor to whole pixels, recount patches.
# Billed tokens = ceil(patches * multiplier) (the page: "multiply the patch count by the model's multiplier and
# round up"); `patches()` gives the raw count before the multiplier. "low" = the image fit within 512x512 ("the
# model receives a low-resolution 512px x 512px version"). "original" exists only on models that define it.
@dataclass(frozen=True)
class OpenAIPatchModel(TokenModel):
    """OpenAI patch-based image cost: 32-px patches under a patch budget, times a per-model multiplier."""

    name: str = "gpt-4.1-mini"
    patch_budget: int = 1536
    max_side: int = 2048
    multiplier: float = 1.0
    original_budget: int | None = None
    original_max_side: int | None = None
    auto_detail: str = "high"

    def effective_size(self, width: int, height: int, detail: str | None = None) -> tuple[int, int]:
        _check_size(width, height)
        mode = _openai_detail(detail, self.name, self.auto_detail)
        if mode == "low":
            return _fit_within(width, height, 512, 512)
        budget, side = self.patch_budget, self.max_side
        if mode == "original":
            if self.original_budget is None or self.original_max_side is None:
                raise ValueError(f"detail='original' is not supported by {self.name!r}")
            budget, side = self.original_budget, self.original_max_side
        w, h = _fit_within(width, height, side, side)
        if math.ceil(w / 32) * math.ceil(h / 32) <= budget:
            return w, h
        shrink = math.sqrt(32 * 32 * budget / (w * h))
        sw, sh = w * shrink / 32, h * shrink / 32
        adjusted = shrink * min(math.floor(sw + _EPS) / sw, math.floor(sh + _EPS) / sh)
        return max(1, math.floor(w * adjusted + _EPS)), max(1, math.floor(h * adjusted + _EPS))

    def patches(self, width: int, height: int, detail: str | None = None) -> int:
        """32-px patches covering the processed image (the token count before the model multiplier)."""
        w, h = self.effective_size(width, height, detail)
        return math.ceil(w / 32) * math.ceil(h / 32)

    def count(self, width: int, height: int, detail: str | None = None) -> int:
        # Fraction(str(...)) keeps e.g. 1000 * 1.2 at exactly 1200, not 1200.0000000000002 -> 1201.
        return math.ceil(self.patches(width, height, detail) * Fraction(str(self.multiplier)))


def _openai_detail(detail: str | None, model: str, auto: str = "high") -> str:
    d = (detail or "auto").lower()
    if d == "auto":
        d = auto
    if d not in ("low", "high", "original"):
        raise ValueError(f"unknown OpenAI image detail {detail!r} for {model!r}; use low, high, original or auto")
    return d


# Anthropic (Claude). https://platform.claude.com/docs/en/build-with-claude/vision (was
# https://docs.anthropic.com/en/docs/vision): tokens = (width px * height px) / 750 for an image that is not
# resized; "if your image's long edge is more than 1568 pixels, or your image is more than ~1,600 tokens, it is
# first scaled down, preserving aspect ratio". The page's table of the largest sizes that are NOT resized goes up
# to 784x1568 (1,229,312 px, ~1,639 tokens), so the pixel cap is set there rather than at exactly 1,600 tokens
# (1.2 MP), which would contradict that table. Its examples (~54, ~1334, ~1590) are the formula rounded up.
@dataclass(frozen=True)
class AnthropicModel(TokenModel):
    """Claude image cost: ``ceil(w*h/750)`` after scaling into the long-edge and pixel limits."""

    name: str = "claude"
    max_long_edge: int = 1568
    max_pixels: int = 784 * 1568

    def effective_size(self, width: int, height: int, detail: str | None = None) -> tuple[int, int]:
        _check_size(width, height)
        scale = min(1.0, self.max_long_edge / max(width, height), math.sqrt(self.max_pixels / (width * height)))
        if scale >= 1:
            return width, height
        return max(1, math.floor(width * scale + _EPS)), max(1, math.floor(height * scale + _EPS))

    def count(self, width: int, height: int, detail: str | None = None) -> int:
        w, h = self.effective_size(width, height, detail)
        return math.ceil(w * h / 750)


# Claude Opus 4.7 reads larger images: up to 2576 px on the long edge, ~3.75 MP. Not found on an Anthropic page
# this module could consult; figures as reported at launch, e.g.
# https://www.claudecodecamp.com/p/images-cost-3x-more-tokens-in-claude-opus-4-7 and
# https://apidog.com/blog/claude-opus-4-7-api/ . Override with AnthropicModel(...) if the docs say otherwise.
_CLAUDE_HIGH_RES = {"max_long_edge": 2576, "max_pixels": 3_750_000}


# Qwen2-VL / Qwen2.5-VL / Qwen3-VL: the HF image processor's smart_resize (transformers,
# models/qwen2_vl/image_processing_qwen2_vl.py), reproduced exactly; one LLM token per factor x factor block
# (factor = patch_size * merge_size: 14*2 = 28 for Qwen2/2.5-VL, 16*2 = 32 for Qwen3-VL).
# Defaults are the released checkpoints' preprocessor_config.json, which is what AutoProcessor loads:
# https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/preprocessor_config.json (min_pixels 3136,
# max_pixels 12845056) and https://huggingface.co/Qwen/Qwen3-VL-8B-Instruct/blob/main/preprocessor_config.json
# (shortest_edge 65536, longest_edge 16777216). Many evals cap max_pixels lower (e.g. 28*28*1280): pass it.
@dataclass(frozen=True)
class QwenVLModel(TokenModel):
    """Qwen-VL cost: ``(h/factor) * (w/factor)`` after ``smart_resize`` into [min_pixels, max_pixels]."""

    patch: int = 28
    min_pixels: int = 56 * 56
    max_pixels: int = 12845056
    name: str = "qwen2.5-vl"
    #: transformers' smart_resize raises on ``max(h, w) / min(h, w) > 200`` (its MAX_RATIO), for every Qwen-VL.
    max_aspect: ClassVar[float] = 200.0

    @classmethod
    def qwen25(cls, min_pixels: int = 56 * 56, max_pixels: int = 12845056) -> QwenVLModel:
        """Qwen2-VL / Qwen2.5-VL: 28-px merged patches."""
        return cls(patch=28, min_pixels=min_pixels, max_pixels=max_pixels, name="qwen2.5-vl")

    @classmethod
    def qwen3(cls, min_pixels: int = 65536, max_pixels: int = 16777216) -> QwenVLModel:
        """Qwen3-VL: 32-px merged patches."""
        return cls(patch=32, min_pixels=min_pixels, max_pixels=max_pixels, name="qwen3-vl")

    def effective_size(self, width: int, height: int, detail: str | None = None) -> tuple[int, int]:
        _check_size(width, height)
        ratio = max(width, height) / min(width, height)
        if ratio > self.max_aspect:  # before `_smart_resize`, whose message names neither the size nor the model
            raise ValueError(
                f"a {width}x{height} image has an aspect ratio of {ratio:.1f}:1, over the {self.max_aspect:g}:1 "
                f"that {self.name}'s image processor accepts (transformers' smart_resize refuses it); send it "
                "within that ratio (cropper.planning.within_aspect stretches its short side) or cut it into pieces"
            )
        h, w = _smart_resize(height, width, self.patch, self.min_pixels, self.max_pixels)
        return w, h

    def count(self, width: int, height: int, detail: str | None = None) -> int:
        w, h = self.effective_size(width, height, detail)
        return (h // self.patch) * (w // self.patch)


def _smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Line-for-line transformers' Qwen2-VL ``smart_resize``; returns (height, width)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# Google Gemini (Gemini API, also through its OpenAI-compatible endpoint).
# Gemini 1.5/2.x: https://ai.google.dev/gemini-api/docs/image-understanding ("Token calculation"):
# "Gemini 2.0 Flash and Gemini 2.5 Flash/Pro: 258 tokens if both dimensions <= 384 pixels. Larger images are tiled
# into 768x768 pixel tiles, each costing 258 tokens." "A rough formula for calculating the number of tiles is as
# follows: Calculate the crop unit size which is roughly: floor(min(width, height) / 1.5). Divide each dimension by
# the crop unit size and multiply together to get the number of tiles. For example, for an image of dimensions
# 960x540 would have a crop unit size of 360. Divide each dimension by 360 and the number of tile is 3 * 2 = 6."
# (the example rounds each quotient up: 960/360 -> 3, 540/360 -> 2). For 1.5 the same page says: "Larger images
# are tiled (min tile 256px, max 768px, resized to 768x768)"; its January 2025 revision also has "Gemini 1.0 Pro
# Vision: Each image accounts for 258 tokens." (https://ai.google.dev/gemini-api/docs/tokens says more broadly
# "Prior to Gemini 2.0, images used a fixed 258 tokens"; the image page's per-model text is followed here, so
# 1.5 uses tiles and only 1.0 is flat.) The 2.x text gives no bounds; the 1.5 floor of 256 px is kept for 2.x
# too (not documented for 2.x), so an image whose short side is under 384 px, where floor(short/1.5) would reach 0
# or cut a thin strip into hundreds of tiles, gets tiles of at least 256 px.
# Gemini 3: https://ai.google.dev/gemini-api/docs/gemini-3 ("Media resolution"): "The media_resolution parameter
# determines the maximum number of tokens allocated per input image or video frame", recommended for images:
# "media_resolution_high | 1120"; levels are set per part or globally ("global not available for ultra high"),
# details at https://ai.google.dev/gemini-api/docs/media-resolution. Per-image values from Vertex AI's Gemini 3
# guide (https://cloud.google.com/vertex-ai/generative-ai/docs/start/get-started-with-gemini-3, "Tokens" table):
# "MEDIA_RESOLUTION_UNSPECIFIED (DEFAULT) | 1120", LOW 280, MEDIUM 560, HIGH 1120. ultra_high = 2240 is not in
# the tables consulted here; it is as reported by third parties (SDK docs, release-note summaries). The budget does
# not depend on the image size, so `count` returns it as is (the pages call it a maximum: a small image may be
# billed less). No page documents a pixel resize for either rule, so `effective_size` returns the input size
# unchanged (the tiles are crops of the image, each scaled to 768x768; Gemini 3's own resize is undocumented).
_GEMINI3_BUDGETS = {"low": 280, "medium": 560, "high": 1120, "ultra_high": 2240}
_GEMINI3_DEFAULT = "high"  # what MEDIA_RESOLUTION_UNSPECIFIED means for an image
_GEMINI_GENERATIONS = ("1.0", "1.5", "2", "3")


@dataclass(frozen=True)
class GeminiModel(TokenModel):
    """Gemini image cost: 258 per 768-px tile (1.5/2.x), 258 flat (1.0), or a media_resolution budget (3).

    ``generation``: ``"1.0"``, ``"1.5"``, ``"2"`` (2.0 and 2.5) or ``"3"``. ``media_resolution`` (Gemini 3 only):
    ``low``/``medium``/``high``/``ultra_high``, or None for the API default; ``detail`` overrides it per call.
    """

    name: str = "gemini-2.5-flash"
    generation: str = "2"
    media_resolution: str | None = None
    tile_tokens: int = 258
    small_side: int = 384

    def __post_init__(self) -> None:
        if self.generation not in _GEMINI_GENERATIONS:
            raise ValueError(f"unknown Gemini generation {self.generation!r}; use one of {_GEMINI_GENERATIONS}")
        _gemini_level(self.media_resolution, self)

    def effective_size(self, width: int, height: int, detail: str | None = None) -> tuple[int, int]:
        _check_size(width, height)
        _gemini_level(detail, self)  # validates detail
        return width, height  # no documented resize (see the comment above the class)

    def crop_unit(self, width: int, height: int) -> int:
        """Tile edge in source pixels: floor(min(w, h) / 1.5), at least 256 (and at most 768 on Gemini 1.5)."""
        unit = max(256, math.floor(min(width, height) / 1.5 + _EPS))
        return min(unit, 768) if self.generation == "1.5" else unit

    def tiles(self, width: int, height: int) -> int:
        """768x768 tiles the image is cut into (1 for an image within 384x384; tile rule generations only)."""
        _check_size(width, height)
        if width <= self.small_side and height <= self.small_side:
            return 1
        unit = self.crop_unit(width, height)
        return math.ceil(width / unit) * math.ceil(height / unit)

    def count(self, width: int, height: int, detail: str | None = None) -> int:
        self.effective_size(width, height, detail)  # validates size and detail
        if self.generation == "3":
            level = _gemini_level(detail, self) or _gemini_level(self.media_resolution, self) or _GEMINI3_DEFAULT
            return _GEMINI3_BUDGETS[level]
        if self.generation == "1.0":
            return self.tile_tokens
        return self.tile_tokens * self.tiles(width, height)


def _gemini_level(detail: str | None, model: GeminiModel) -> str | None:
    """Normalised media_resolution level (None = the API default); raises for unknown or unsupported values."""
    d = (detail or "auto").strip().lower().replace("-", "_")
    d = d.removeprefix("media_resolution_")
    if d in ("auto", "unspecified"):
        return None
    if d not in _GEMINI3_BUDGETS:
        raise ValueError(
            f"unknown Gemini media resolution {detail!r} for {model.name!r}; use low, medium, high, ultra_high or auto"
        )
    if model.generation != "3":
        raise ValueError(
            f"media resolution {detail!r} is modelled only for Gemini 3, not {model.name!r} (pass None/'auto')"
        )
    return d


# Per-model OpenAI values from the images-vision page above. The page has been revised over time (budgets and
# multipliers changed); these follow the revision that documents the 1,536-patch examples, plus gpt-5.2, gpt-5.4
# and gpt-5.5 multipliers (1.2x) and the gpt-5.4/5.5 budgets (2,500 high / 10,000 original patches, 6000 px) from
# the later revision. The codex-mini variants are listed as 1,536-patch models with no multiplier (1.0 here).
# The longest matching name wins, so dated snapshots ("gpt-4.1-mini-2025-04-14") resolve to their family.
# fmt: off
_OPENAI_TILE = {  # name: (base_tokens, tile_tokens)
    "gpt-4o": (85, 170), "gpt-4.1": (85, 170), "gpt-4.5": (85, 170), "gpt-4o-mini": (2833, 5667),
    "gpt-5": (70, 140), "gpt-5-chat-latest": (70, 140), "gpt-5.1": (70, 140),
    "o1": (75, 150), "o1-pro": (75, 150), "o3": (75, 150), "computer-use-preview": (65, 129),
}
_OPENAI_PATCH = {  # name: (patch_budget, multiplier)
    "gpt-4.1-mini": (1536, 1.62), "gpt-4.1-nano": (1536, 2.46), "o4-mini": (1536, 1.72),
    "gpt-5-mini": (1536, 1.62), "gpt-5-nano": (1536, 2.46), "gpt-5.4-mini": (1536, 1.62),
    "gpt-5.4-nano": (1536, 2.46), "gpt-5.2": (1536, 1.2), "gpt-5.1-codex-mini": (1536, 1.0),
    "gpt-5-codex-mini": (1536, 1.0), "gpt-5.3-codex": (1536, 1.0),
}
# fmt: on
_OPENAI_ORIGINAL = {"gpt-5.4": "high", "gpt-5.5": "original"}  # name: what detail="auto" means there
_OPENAI_NAMES = sorted([*_OPENAI_TILE, *_OPENAI_PATCH, *_OPENAI_ORIGINAL], key=len, reverse=True)


def _openai_model(model: str | None) -> TokenModel:
    name = (model or "gpt-4o").lower().rsplit("/", 1)[-1]
    key = next((k for k in _OPENAI_NAMES if name == k or name.startswith(k + "-")), None)
    if key in _OPENAI_TILE:
        return OpenAITileModel(name, *_OPENAI_TILE[key])
    if key in _OPENAI_PATCH:
        budget, mult = _OPENAI_PATCH[key]
        return OpenAIPatchModel(name, patch_budget=budget, multiplier=mult)
    if key in _OPENAI_ORIGINAL:
        return OpenAIPatchModel(
            name,
            patch_budget=2500,
            multiplier=1.2,
            original_budget=10000,
            original_max_side=6000,
            auto_detail=_OPENAI_ORIGINAL[key],
        )
    if model is not None:
        _warn_guessed_rule(model, "the GPT-4o tile rule (85 + 170 per 512-px tile)")
    return OpenAITileModel(name)  # unknown OpenAI-compatible model: the classic 85 + 170/tile rule


def _is_gemini(model: str | None) -> bool:
    return "gemini" in (model or "").lower()


_GEMINI_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?(?=$|[-.@:_])")


def _gemini_model(model: str | None) -> GeminiModel:
    """Gemini rule by model id ("gemini-2.5-flash", "models/gemini-1.5-pro", "google/gemini-3-pro-preview")."""
    if model is None:
        return GeminiModel("gemini")  # no name given: the tokens page's general 258-per-tile rule
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith("gemini-pro-vision") or name.startswith("gemini-1.0-pro-vision"):
        return GeminiModel(model, generation="1.0")
    found = _GEMINI_VERSION.search(name)
    major, minor = (int(found.group(1)), int(found.group(2) or 0)) if found else (None, None)
    if major == 1 and minor == 5:
        return GeminiModel(model, generation="1.5")
    if major == 2:
        return GeminiModel(model, generation="2")
    if major == 3:
        return GeminiModel(model, generation="3")
    if major is not None and major > 3:
        _warn_guessed_rule(model, "the Gemini 3 media_resolution budgets (1120 tokens per image by default)")
        return GeminiModel(model, generation="3")
    _warn_guessed_rule(model, "the Gemini 2.x tile rule (258 tokens per 768-px tile)")
    return GeminiModel(model, generation="2")


def _is_qwen_vl(model: str | None) -> bool:
    m = (model or "").lower()
    return "qwen" in m and "vl" in m


def _qwen_for(model: str | None) -> QwenVLModel:
    return QwenVLModel.qwen3() if "qwen3" in (model or "").lower() else QwenVLModel.qwen25()


# Claude models the vision page above covers with the default limits (Claude 3, 3.5, 3.7, and the 4.x family up
# to 4.6), in the API's ids ("claude-3-5-sonnet-20241022", "claude-sonnet-4-5", "claude-opus-4-1-20250805") and
# the Bedrock/Vertex forms ("anthropic.claude-3-haiku-20240307-v1:0", "claude-sonnet-4-5@20250929").
_CLAUDE_KNOWN = re.compile(
    r"claude-(?:3(?:[-.][57])?-(?:haiku|sonnet|opus)|(?:haiku|sonnet|opus)-4(?:[-.][0-6])?)(?=$|[-@:_])"
)


def _anthropic_model(model: str | None) -> AnthropicModel:
    name = model or "claude"
    if "opus-4-7" in name.lower() or "opus-4.7" in name.lower():
        return AnthropicModel(name, **_CLAUDE_HIGH_RES)
    if model is not None and not _CLAUDE_KNOWN.search(model.lower()):
        _warn_guessed_rule(model, "the default Claude rule (w*h/750, long edge <= 1568 px, ~1.2 MP)")
    return AnthropicModel(name)


def _openai_compatible(model: str | None) -> TokenModel:
    if _is_qwen_vl(model):
        return _qwen_for(model)
    if _is_gemini(model):
        return _gemini_model(model)
    return _openai_model(model)


_PROVIDERS = {
    "openai": _openai_compatible,
    "anthropic": _anthropic_model,
    "gemini": _gemini_model,
    "qwen2-vl": lambda m: QwenVLModel.qwen25(),
    "qwen2.5-vl": lambda m: QwenVLModel.qwen25(),
    "qwen3-vl": lambda m: QwenVLModel.qwen3(),
    "reader": lambda m: QwenVLModel.qwen25(),  # the offline reader reports in Qwen2.5-VL units
    "hf": _qwen_for,
}
_ALIASES = {"openai-compatible": "openai", "transformers": "hf", "claude": "anthropic", "google": "gemini"}
KNOWN_PROVIDERS = tuple(sorted([*_PROVIDERS, *_ALIASES]))


def token_model_for(provider: str, model: str | None = None) -> TokenModel:
    """The token model for a provider (``openai``, ``anthropic``, ``gemini``, ``hf``, ``reader``, ...) and model id.

    ``openai``/``openai-compatible`` picks the tile or patch rule by model name (a served Qwen-VL model gets the
    Qwen rule, a Gemini model the Gemini rule; unknown names get the GPT-4o tile rule); ``gemini``/``google``
    picks the Gemini generation from the id; ``hf``/``transformers`` picks Qwen3-VL when the id contains "qwen3",
    else Qwen2.5-VL; ``reader`` uses Qwen2.5-VL so every report shares one unit. A model name that falls back to
    a guessed rule logs one warning per name on the ``cropper`` logger; pass ``ZoomWrapper(..., token_model=...)``
    to count with the right rule.
    """
    key = (provider or "").strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; known providers: {', '.join(KNOWN_PROVIDERS)}")
    return _PROVIDERS[key](model)


def visual_tokens(provider: str, model: str | None, width: int, height: int, detail: str | None = None) -> int:
    """Visual tokens for one ``width`` x ``height`` image on ``provider``/``model``."""
    return token_model_for(provider, model).count(width, height, detail)
