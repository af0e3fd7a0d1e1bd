"""Token models checked against the providers' documented worked examples.

Expected numbers are the ones the cited pages state (or the page's own constants combined as the page says),
never values produced by the code under test. Qwen is checked against transformers' own implementation.
"""

import logging

import pytest

from cropper import tokens
from cropper.tokens import (
    KNOWN_PROVIDERS,
    AnthropicModel,
    GeminiModel,
    OpenAIPatchModel,
    OpenAITileModel,
    QwenVLModel,
    token_model_for,
    visual_tokens,
)

OPENAI_DOC = "https://developers.openai.com/api/docs/guides/images-vision"
ANTHROPIC_DOC = "https://platform.claude.com/docs/en/build-with-claude/vision"
GEMINI_DOC = "https://ai.google.dev/gemini-api/docs/image-understanding"
GEMINI3_DOC = "https://cloud.google.com/vertex-ai/generative-ai/docs/start/get-started-with-gemini-3"


# --- OpenAI tile models -----------------------------------------------------------------------------------
# OPENAI_DOC, "Calculating costs": "A 1024 x 1024 square image in detail: high mode costs 765 tokens ...
# we scale the image down to 768 x 768."
def test_openai_tile_1024_square_high_is_765():
    m = OpenAITileModel()
    assert m.effective_size(1024, 1024, "high") == (768, 768)
    assert m.count(1024, 1024, "high") == 765
    assert m.count(1024, 1024) == 765  # detail omitted = auto = high


# OPENAI_DOC: "A 2048 x 4096 image in detail: high mode costs 1105 tokens ... scale down to 1024 x 2048 ...
# further scale down to 768 x 1536. 6 512px tiles are needed."
def test_openai_tile_2048x4096_high_is_1105():
    m = OpenAITileModel()
    assert m.effective_size(2048, 4096, "high") == (768, 1536)
    assert m.tiles(2048, 4096) == 6
    assert m.count(2048, 4096, "high") == 1105


# OPENAI_DOC: "A 4096 x 8192 image in detail: low most costs 85 tokens. Regardless of input size, low detail
# images are a fixed cost."
@pytest.mark.parametrize("size", [(4096, 8192), (64, 64), (512, 512), (3000, 200)])
def test_openai_tile_low_detail_is_flat_base(size):
    assert OpenAITileModel().count(*size, "low") == 85


# OPENAI_DOC, tile table: gpt-4o-mini 2833 base / 5667 per tile; o1, o1-pro, o3 75/150; gpt-5 70/140;
# computer-use-preview 65/129. A 1024x1024 high image is 4 tiles (the 765 example above).
@pytest.mark.parametrize(
    "model, base, tile",
    [("gpt-4o-mini", 2833, 5667), ("o3", 75, 150), ("o1-pro", 75, 150), ("gpt-5", 70, 140),
     ("computer-use-preview", 65, 129), ("gpt-4.1", 85, 170), ("gpt-4o-2024-08-06", 85, 170)],
)  # fmt: skip
def test_openai_tile_per_model_constants(model, base, tile):
    m = token_model_for("openai", model)
    assert isinstance(m, OpenAITileModel)
    assert m.count(4096, 8192, "low") == base
    assert m.count(1024, 1024, "high") == base + 4 * tile


# OPENAI_DOC (current revision): "Scale down to fit in a 2048px x 2048px square ... Smaller images are not
# enlarged. If the shortest side exceeds 768px, scale it down to 768px". A 512x512 image is one tile.
def test_openai_tile_small_images_not_enlarged():
    m = OpenAITileModel()
    assert m.effective_size(512, 512) == (512, 512)
    assert m.count(512, 512) == 85 + 170
    assert m.effective_size(700, 1500) == (700, 1500)  # shortest side 700 <= 768: untouched


# --- OpenAI patch models ----------------------------------------------------------------------------------
# OPENAI_DOC, "Cost calculation examples for a model with a 1,536-patch budget": "A 1024 x 1024 image has a
# post-resize patch count of 1024 ... 1024 is below the 1,536 patch budget, so no resize is needed."
def test_openai_patch_1024_square_is_1024_patches():
    m = OpenAIPatchModel(patch_budget=1536)
    assert m.effective_size(1024, 1024) == (1024, 1024)
    assert m.patches(1024, 1024) == 1024


# OPENAI_DOC: "A 1800 x 2400 image has a post-resize patch count of 1452 ... Resized image in integer pixels:
# 1056 x 1408 ... resized_patch_count = 33 * 44 = 1452".
def test_openai_patch_1800x2400_is_1452_patches():
    m = OpenAIPatchModel(patch_budget=1536)
    assert m.effective_size(1800, 2400) == (1056, 1408)
    assert m.patches(1800, 2400) == 1452


# OPENAI_DOC multiplier table: gpt-4.1-mini 1.62, gpt-4.1-nano 2.46, o4-mini 1.72; billed tokens = patches times
# the multiplier, rounded up. 1024 patches: 1024*1.62 = 1658.88, 1024*2.46 = 2519.04, 1024*1.72 = 1761.28.
@pytest.mark.parametrize(
    "model, expected",
    [("gpt-4.1-mini", 1659), ("gpt-4.1-mini-2025-04-14", 1659), ("gpt-4.1-nano", 2520), ("o4-mini", 1762)],
)
def test_openai_patch_multipliers(model, expected):
    m = token_model_for("openai", model)
    assert isinstance(m, OpenAIPatchModel)
    assert m.patches(1024, 1024) == 1024
    assert m.count(1024, 1024) == expected


# OPENAI_DOC, "Cost calculation examples for gpt-5.4 with detail: high": "A 1024 x 1024 image needs 32 x 32 =
# 1024 patches ... ceil(1024 x 1.2) = 1229 tokens. A 2048 x 2048 image ... reduces it to 1600 x 1600 pixels, or
# 50 x 50 = 2500 patches. The estimate is ceil(2500 x 1.2) = 3000 tokens."
def test_openai_gpt54_high_examples():
    m = token_model_for("openai", "gpt-5.4")
    assert m.count(1024, 1024, "high") == 1229
    assert m.effective_size(2048, 2048, "high") == (1600, 1600)
    assert m.count(2048, 2048, "high") == 3000


# OPENAI_DOC: patch counts stay within the patch budget ("When a patch budget applies, this count stays within
# that budget") and the image fits within the 2048-pixel maximum dimension.
@pytest.mark.parametrize("w", [1, 31, 33, 500, 1023, 1800, 2047, 2049, 4000, 9000])
@pytest.mark.parametrize("h", [1, 32, 640, 1366, 2400, 7000])
def test_openai_patch_budget_and_max_side_respected(w, h):
    m = OpenAIPatchModel(patch_budget=1536)
    ew, eh = m.effective_size(w, h)
    assert m.patches(w, h) <= 1536
    assert max(ew, eh) <= 2048
    assert ew <= w and eh <= h  # never enlarged


# OPENAI_DOC: "low": "The model receives a low-resolution 512px x 512px version of the image" -> at most 16x16.
def test_openai_patch_low_detail_fits_512():
    m = OpenAIPatchModel(patch_budget=1536, multiplier=1.62)
    assert m.effective_size(4096, 4096, "low") == (512, 512)
    assert m.patches(4096, 4096, "low") == 256


# --- Anthropic ----------------------------------------------------------------------------------------------
# ANTHROPIC_DOC, "Calculate image costs": tokens = (width px * height px)/750; table: 200x200 ~54,
# 1000x1000 ~1334, 1092x1092 ~1590.
@pytest.mark.parametrize("size, expected", [((200, 200), 54), ((1000, 1000), 1334), ((1092, 1092), 1590)])
def test_anthropic_documented_costs(size, expected):
    assert AnthropicModel().count(*size) == expected


# ANTHROPIC_DOC: "maximum image sizes accepted by the API that will not be resized for common aspect ratios ...
# these images use approximately 1,600 tokens".
@pytest.mark.parametrize("size", [(1092, 1092), (951, 1268), (896, 1344), (819, 1456), (784, 1568)])
def test_anthropic_table_sizes_are_not_resized(size):
    m = AnthropicModel()
    assert m.effective_size(*size) == size
    assert m.effective_size(size[1], size[0]) == (size[1], size[0])  # the landscape form too
    assert m.count(*size) == pytest.approx(1600, rel=0.03)


# ANTHROPIC_DOC: "If your image's long edge is more than 1568 pixels, or your image is more than ~1,600 tokens,
# it is first scaled down, preserving aspect ratio, until it's within the size limits."
@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (8000, 8000), (1920, 1080), (1300, 1300)])
def test_anthropic_large_images_scaled_to_about_1600_tokens(size):
    m = AnthropicModel()
    w, h = m.effective_size(*size)
    assert max(w, h) <= 1568
    assert w / h == pytest.approx(size[0] / size[1], rel=0.01)
    assert m.count(*size) == pytest.approx(1600, rel=0.03)


def test_anthropic_long_thin_image_capped_at_1568_long_edge():
    # ANTHROPIC_DOC: long edge above 1568 px is scaled down even when the pixel count is small.
    w, h = AnthropicModel().effective_size(3136, 100)
    assert (w, h) == (1568, 50)


# --- Qwen-VL (checked against transformers' own smart_resize) -------------------------------------------
SIZES = [(1, 1), (28, 28), (56, 56), (100, 37), (224, 224), (333, 517), (640, 480), (1000, 700), (1280, 720),
         (1920, 1080), (2048, 4096), (3000, 2000), (4032, 3024), (8000, 6000), (10000, 60), (27, 5000)]  # fmt: skip


@pytest.fixture(scope="module")
def hf_smart_resize():
    mod = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    return mod.smart_resize


@pytest.mark.parametrize("factor, min_pixels, max_pixels", [
    (28, 3136, 12845056),      # Qwen2.5-VL preprocessor_config.json
    (28, 3136, 28 * 28 * 1280),  # the common eval cap
    (28, 256 * 28 * 28, 28 * 28 * 16384),
    (32, 65536, 16777216),     # Qwen3-VL preprocessor_config.json
    (32, 65536, 32 * 32 * 1024),
])  # fmt: skip
def test_qwen_matches_transformers_smart_resize(hf_smart_resize, factor, min_pixels, max_pixels):
    m = QwenVLModel(patch=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    for w, h in SIZES:
        rh, rw = hf_smart_resize(h, w, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
        assert m.effective_size(w, h) == (rw, rh), (w, h)
        assert m.count(w, h) == (rh // factor) * (rw // factor), (w, h)


def test_qwen_count_matches_hf_processor_patches():
    # The processor's own count (used by vLLM for placeholders), divided by the 2x2 merge.
    mod = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    proc = mod.Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056, patch_size=14, merge_size=2)
    q3 = mod.Qwen2VLImageProcessor(min_pixels=65536, max_pixels=16777216, patch_size=16, merge_size=2)
    for w, h in SIZES:
        assert QwenVLModel.qwen25().count(w, h) == proc.get_number_of_image_patches(h, w, {}) // 4
        assert QwenVLModel.qwen3().count(w, h) == q3.get_number_of_image_patches(h, w, {}) // 4


def test_qwen_count_matches_real_preprocessing():
    # End to end: the processor's image_grid_thw on actual images, merged 2x2, is the LLM token count.
    mod = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    from PIL import Image

    proc = mod.Qwen2VLImageProcessor(min_pixels=3136, max_pixels=28 * 28 * 1280, patch_size=14, merge_size=2)
    model = QwenVLModel(patch=28, min_pixels=3136, max_pixels=28 * 28 * 1280)
    for w, h in [(333, 517), (100, 37), (1600, 1200)]:
        t, gh, gw = proc(images=[Image.new("RGB", (w, h))], return_tensors="pt")["image_grid_thw"][0].tolist()
        assert model.count(w, h) == t * gh * gw // 4
        assert model.effective_size(w, h) == (gw * 14, gh * 14)


def test_qwen_extreme_aspect_ratio_raises_like_transformers(hf_smart_resize):
    with pytest.raises(ValueError, match="aspect ratio"):
        hf_smart_resize(10, 2010, factor=28, min_pixels=3136, max_pixels=12845056)
    with pytest.raises(ValueError, match="aspect ratio"):
        QwenVLModel().count(2010, 10)


def test_qwen_defaults():
    # Qwen2.5-VL preprocessor_config.json: min_pixels 3136, max_pixels 12845056, patch 14 x merge 2 = 28.
    # Qwen3-VL preprocessor_config.json: shortest_edge 65536, longest_edge 16777216, patch 16 x merge 2 = 32.
    assert (QwenVLModel().patch, QwenVLModel().min_pixels, QwenVLModel().max_pixels) == (28, 3136, 12845056)
    q3 = QwenVLModel.qwen3()
    assert (q3.patch, q3.min_pixels, q3.max_pixels) == (32, 65536, 16777216)
    assert QwenVLModel.qwen25(max_pixels=28 * 28 * 1280).max_pixels == 1003520
    # 28*28 px per token: a 1120x840 image (divisible by 28, within limits) is 40*30 tokens.
    assert QwenVLModel().count(1120, 840) == 40 * 30


# --- mapping ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "provider, model, cls",
    [("openai", "gpt-4o", OpenAITileModel), ("openai", "gpt-4.1", OpenAITileModel),
     ("openai", "o3", OpenAITileModel), ("openai", "gpt-5", OpenAITileModel),
     ("openai", "gpt-4.1-mini", OpenAIPatchModel), ("openai", "gpt-4.1-nano", OpenAIPatchModel),
     ("openai", "o4-mini", OpenAIPatchModel), ("openai", "gpt-5-mini", OpenAIPatchModel),
     ("openai", "gpt-5-nano-2025-08-07", OpenAIPatchModel), ("OpenAI", "GPT-4.1-MINI", OpenAIPatchModel),
     ("openai", "some-local-model", OpenAITileModel), ("openai", None, OpenAITileModel),
     ("openai-compatible", "llava-v1.6", OpenAITileModel),
     ("openai-compatible", "Qwen/Qwen2.5-VL-7B-Instruct", QwenVLModel),
     ("anthropic", "claude-sonnet-4-5", AnthropicModel), ("anthropic", None, AnthropicModel),
     ("qwen2.5-vl", None, QwenVLModel), ("qwen2-vl", None, QwenVLModel), ("qwen3-vl", None, QwenVLModel),
     ("reader", None, QwenVLModel), ("hf", "Qwen/Qwen2.5-VL-3B-Instruct", QwenVLModel)],
)  # fmt: skip
def test_token_model_for_picks_the_right_rule(provider, model, cls):
    assert isinstance(token_model_for(provider, model), cls)


def test_qwen_family_selection():
    assert token_model_for("qwen2.5-vl").patch == 28
    assert token_model_for("qwen2-vl").patch == 28
    assert token_model_for("qwen3-vl").patch == 32
    assert token_model_for("hf", "Qwen/Qwen3-VL-8B-Instruct").patch == 32
    assert token_model_for("hf", "HuggingFaceTB/SmolVLM-Instruct").patch == 28
    assert token_model_for("transformers", "qwen3-vl-2b").patch == 32


def test_reader_shares_the_qwen25_unit():
    for w, h in [(640, 480), (1920, 1080), (3000, 4000)]:
        assert token_model_for("reader").count(w, h) == QwenVLModel(patch=28).count(w, h)


def test_unknown_provider_error_names_it_and_lists_known():
    with pytest.raises(ValueError) as err:
        token_model_for("mistral", "pixtral-12b")
    msg = str(err.value)
    assert "'mistral'" in msg
    for name in ("openai", "anthropic", "gemini", "google", "hf", "reader", "qwen2.5-vl", "qwen3-vl"):
        assert name in msg and name in KNOWN_PROVIDERS


def test_visual_tokens_convenience():
    assert visual_tokens("openai", "gpt-4o", 1024, 1024) == 765  # OPENAI_DOC example
    assert visual_tokens("openai", "gpt-4o", 4096, 8192, detail="low") == 85  # OPENAI_DOC example
    assert visual_tokens("anthropic", "claude-sonnet-4-5", 1000, 1000) == 1334  # ANTHROPIC_DOC example


def test_claude_opus_47_uses_the_larger_limit():
    # Reported at launch: Opus 4.7 reads up to 2576 px on the long edge (earlier models: 1568).
    m = token_model_for("anthropic", "claude-opus-4-7")
    assert max(m.effective_size(2576, 1200)) == 2576
    assert max(token_model_for("anthropic", "claude-opus-4-6").effective_size(2576, 1200)) == 1568


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        OpenAITileModel().count(0, 100)
    with pytest.raises(ValueError):
        OpenAITileModel().count(100, 100, detail="ultra")
    with pytest.raises(ValueError):
        OpenAITileModel().count(100, 100, detail="original")  # tile models have no "original" detail
    with pytest.raises(ValueError):
        AnthropicModel().count(100, -1)
    assert token_model_for("openai", "gpt-5.4").count(1024, 1024, "original") == 1229  # no resize at 1024 patches


# --- Gemini -------------------------------------------------------------------------------------------------
# GEMINI_DOC, "Token calculation": "Gemini 2.0 Flash and Gemini 2.5 Flash/Pro: 258 tokens if both dimensions <= 384
# pixels." A 384x384 image is at the limit: one 258-token unit.
@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-2.0-flash", "models/gemini-2.5-pro"])
def test_gemini_384_square_is_258(model):
    m = token_model_for("openai", model)
    assert m.count(384, 384) == 258
    assert m.count(100, 384) == 258
    assert m.effective_size(384, 384) == (384, 384)


# GEMINI_DOC: "Calculate the crop unit size which is roughly: floor(min(width, height) / 1.5). Divide each dimension
# by the crop unit size and multiply together to get the number of tiles. For example, for an image of dimensions
# 960x540 would have a crop unit size of 360. Divide each dimension by 360 and the number of tile is 3 * 2 = 6."
# By hand: floor(540 / 1.5) = 360; ceil(960 / 360) = 3, ceil(540 / 360) = 2; 6 tiles x 258 = 1548 tokens.
def test_gemini_960x540_is_six_tiles():
    m = GeminiModel("gemini-2.5-flash")
    assert m.crop_unit(960, 540) == 360
    assert m.tiles(960, 540) == 6
    assert m.count(960, 540) == 1548
    assert m.count(540, 960) == 1548  # portrait: same tiles
    assert m.effective_size(960, 540) == (960, 540)  # no documented resize


# GEMINI_DOC: "Larger images are tiled (min tile 256px, max 768px, resized to 768x768)" on Gemini 1.5. By hand for
# 3840x2160: floor(2160 / 1.5) = 1440, capped at 768; ceil(3840 / 768) = 5, ceil(2160 / 768) = 3; 15 x 258 = 3870.
# On 2.x the unit stays 1440: ceil(3840 / 1440) = 3, ceil(2160 / 1440) = 2; 6 x 258 = 1548.
def test_gemini_15_caps_the_tile_at_768():
    assert token_model_for("openai", "models/gemini-1.5-pro").count(3840, 2160) == 3870
    assert token_model_for("openai", "gemini-2.5-flash").count(3840, 2160) == 1548


# GEMINI_DOC (January 2025 revision): "Gemini 1.0 Pro Vision: Each image accounts for 258 tokens."
def test_gemini_10_is_flat_258():
    m = token_model_for("gemini", "gemini-pro-vision")
    assert m.count(4000, 3000) == m.count(100, 100) == 258


# GEMINI3_DOC, "Tokens" table: "MEDIA_RESOLUTION_UNSPECIFIED (DEFAULT) | 1120", LOW 280, MEDIUM 560, HIGH 1120 for
# an image, whatever its size.
@pytest.mark.parametrize("size", [(100, 100), (960, 540), (4000, 3000)])
def test_gemini3_media_resolution_budgets(size):
    m = token_model_for("openai", "gemini-3-pro-preview")
    assert isinstance(m, GeminiModel) and m.generation == "3"
    assert m.count(*size) == 1120
    assert m.count(*size, "low") == 280
    assert m.count(*size, "media_resolution_medium") == 560
    assert m.count(*size, "high") == 1120
    assert GeminiModel("gemini-3-flash-preview", generation="3", media_resolution="low").count(*size) == 280


def test_gemini_invalid_detail_raises():
    with pytest.raises(ValueError):
        GeminiModel(generation="3").count(100, 100, "original")
    with pytest.raises(ValueError):
        GeminiModel(generation="2").count(100, 100, "low")  # media resolution modelled for Gemini 3 only
    with pytest.raises(ValueError):
        GeminiModel(generation="2.5")
    with pytest.raises(ValueError):
        GeminiModel().count(0, 10)


@pytest.mark.parametrize(
    "provider, model, generation",
    [("openai", "gemini-2.5-flash", "2"), ("openai", "gemini-2.0-flash", "2"), ("openai", "gemini-2.0-flash-001", "2"),
     ("openai", "models/gemini-1.5-pro", "1.5"), ("openai-compatible", "gemini-1.5-flash-8b", "1.5"),
     ("openai", "gemini-3-pro-preview", "3"), ("openai", "gemini-3.1-pro-preview", "3"),
     ("openai", "google/gemini-2.5-pro", "2"), ("gemini", "gemini-2.5-flash-lite", "2"),
     ("google", "gemini-3-flash-preview", "3"), ("gemini", None, "2"), ("GEMINI", "Gemini-2.5-Flash", "2")],
)  # fmt: skip
def test_gemini_names_route_to_gemini_model(provider, model, generation):
    m = token_model_for(provider, model)
    assert isinstance(m, GeminiModel)
    assert m.generation == generation


def test_gpt4o_keeps_the_tile_rule():
    m = token_model_for("openai", "gpt-4o")
    assert isinstance(m, OpenAITileModel)
    assert m.count(1024, 1024) == 765  # OPENAI_DOC example


# --- warnings for guessed rules -----------------------------------------------------------------------------
@pytest.fixture
def fresh_warnings(monkeypatch, caplog):
    monkeypatch.setattr(tokens, "_WARNED", set())
    caplog.set_level(logging.WARNING, logger="cropper")
    return caplog


def _guess_warnings(caplog):
    return [r for r in caplog.records if r.name == "cropper" and r.levelno == logging.WARNING]


def test_unknown_openai_compatible_model_warns_once(fresh_warnings):
    for _ in range(2):
        assert isinstance(token_model_for("openai", "my-unknown-vlm-7b"), OpenAITileModel)
    records = _guess_warnings(fresh_warnings)
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "my-unknown-vlm-7b" in msg and "GPT-4o tile rule" in msg and "ZoomWrapper(..., token_model=...)" in msg


def test_unknown_anthropic_model_warns_once(fresh_warnings):
    token_model_for("anthropic", "claude-sonnet-9")
    token_model_for("claude", "claude-sonnet-9")
    records = _guess_warnings(fresh_warnings)
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "claude-sonnet-9" in msg and "default Claude rule" in msg and "token_model=" in msg


def test_unknown_gemini_model_warns_once(fresh_warnings):
    token_model_for("openai", "gemini-flash-latest")
    token_model_for("gemini", "gemini-flash-latest")
    records = _guess_warnings(fresh_warnings)
    assert len(records) == 1 and "gemini-flash-latest" in records[0].getMessage()


@pytest.mark.parametrize(
    "provider, model",
    [("openai", "gpt-4.1-mini"), ("openai", "gpt-4o"), ("openai", "gpt-5.4"), ("openai", None),
     ("openai", "Qwen/Qwen2.5-VL-7B-Instruct"), ("openai", "gemini-2.5-flash"), ("gemini", "gemini-3-pro-preview"),
     ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-3-5-sonnet-20241022"),
     ("anthropic", "claude-sonnet-4-20250514"), ("anthropic", "claude-opus-4-7"), ("anthropic", None),
     ("reader", "anything"), ("hf", "some/unknown-model"), ("qwen2.5-vl", "whatever"), ("qwen3-vl", None)],
)  # fmt: skip
def test_known_names_and_local_providers_do_not_warn(fresh_warnings, provider, model):
    token_model_for(provider, model)
    assert _guess_warnings(fresh_warnings) == []
