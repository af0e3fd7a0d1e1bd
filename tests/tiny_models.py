"""Tiny, randomly initialised checkpoints built offline, for tests that need a real transformers model.

`build_tiny_qwen25vl(path)` (and `build_tiny_idefics3(path)`, SmolVLM's architecture) writes a complete Qwen2.5-VL checkpoint directory (config, safetensors weights,
tokenizer, image/video processors, chat template) that `AutoProcessor` / `AutoModelForImageTextToText` and
`TransformersBackend(path)` load exactly like a released one, in well under a second and with no download.
Its outputs are gibberish; what it is good for is exercising the real code paths: chat templating, the image
processor's resize and token expansion, `generate`, and (in training tests) forward/backward passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from training.chat_templates import QWEN_VL_TOOL_TEMPLATE

#: Qwen2.5-VL's control tokens, in the order they get ids 0.. in the tiny vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
)
#: Added but not special (as in Qwen2.5): decoding with skip_special_tokens keeps them, so tool calls survive.
TOOL_TOKENS = ("<tool_call>", "</tool_call>")

#: The tool-aware template (Qwen3-VL style) a tool-trained checkpoint is saved with; see training.chat_templates.
TOOL_CHAT_TEMPLATE = QWEN_VL_TOOL_TEMPLATE

#: Behaves like the template shipped with Qwen2.5-VL-Instruct: text and images only. It ignores `tools`,
#: drops `tool_calls` and prints role "tool" turns verbatim (what `TransformersBackend` must work around).
VISION_ONLY_TEMPLATE = r"""
{%- for message in messages -%}
  {%- if loop.first and message.role != 'system' -%}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}{%- endif -%}
  {{- '<|im_start|>' + message.role + '\n' -}}
  {%- if message.content is string -%}{{- message.content -}}
  {%- else -%}
    {%- for item in message.content -%}
      {%- if item.type == 'image' or 'image' in item or 'image_url' in item -%}<|vision_start|><|image_pad|><|vision_end|>
      {%- elif item.type == 'video' or 'video' in item -%}<|vision_start|><|video_pad|><|vision_end|>
      {%- elif 'text' in item -%}{{- item.text -}}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

#: Sentences the byte-level BPE merges are learned from. Any text still encodes (bytes are the fallback);
#: these only keep prompts from being one token per byte.
_CORPUS = (
    "You are a helpful assistant.",
    "What is written on the green sign? The answer is B7-4421.",
    "Look at the image and answer the question with a single word or phrase.",
    '{"type": "function", "function": {"name": "zoom", "description": "Zoom into a region of the image",'
    ' "parameters": {"type": "object", "properties": {"crop": {"type": "string"}}, "required": ["crop"]}}}',
    '{"name": "zoom", "arguments": {"crop": "top-left", "box": [0.1, 0.2, 0.5, 0.6]}}',
    "# Tools You may call one or more functions to assist with the user query.",
    "<tool_response> Crop of the top-left quarter. </tool_response>",
)


def build_tiny_qwen25vl(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    vision_hidden_size: int = 32,
    vision_depth: int = 1,
    vision_heads: int = 2,
    vocab_size: int = 400,
    min_pixels: int = 28 * 28 * 4,
    max_pixels: int = 28 * 28 * 16,
    chat_template: str = TOOL_CHAT_TEMPLATE,
    extra_texts: Iterable[str] = (),
    seed: int = 0,
) -> Path:
    """Write a tiny random Qwen2.5-VL checkpoint to `path` (created if missing) and return it as a Path.

    - `hidden_size`, `num_layers`, `num_heads`, `num_kv_heads`: the text decoder (head size =
      hidden_size / num_heads, even and at least 6 so M-RoPE can split it into temporal/height/width parts).
    - `vision_hidden_size`, `vision_depth`, `vision_heads`: the vision tower; its merger projects to
      `hidden_size`. Patch 14, merge 2, temporal patch 2 as in the real model, so one LLM token per 28x28 px.
    - `vocab_size`: upper bound for the byte-level BPE trained on a few sentences (+ `extra_texts`).
    - `min_pixels`, `max_pixels`: the image processor's resize bounds; the defaults (4..16 tokens per image)
      keep tests fast.
    - `chat_template`: `TOOL_CHAT_TEMPLATE` (tool-aware) or e.g. `VISION_ONLY_TEMPLATE` (like stock Qwen2.5-VL).
    - `seed`: weights are a deterministic function of it.
    """
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_tokenizer(vocab_size, [*_CORPUS, *extra_texts])
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    head_dim = hidden_size // num_heads
    if hidden_size % num_heads or head_dim % 2 or head_dim < 6:
        raise ValueError(f"hidden_size / num_heads must be an even head size >= 6, got {hidden_size}/{num_heads}")
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": _mrope_section(head_dim)},
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": vision_hidden_size,
            "intermediate_size": 2 * vision_hidden_size,
            "num_heads": vision_heads,
            "out_hidden_size": hidden_size,  # the merger feeds the text decoder directly
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [vision_depth - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    # As in the released generation_config.json: stop at end of turn or end of text.
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(path, safe_serialization=True)

    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=chat_template.strip(),
    )
    processor.save_pretrained(path)
    return path


#: SmolVLM / Idefics3's template as released: content lists only, no tools, no role "tool".
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tiny_idefics3(path: str | Path, *, image_size: int = 64, patch_size: int = 16, seed: int = 0) -> Path:
    """Write a tiny random Idefics3 (SmolVLM's architecture) checkpoint to `path`: a model whose processor,
    image-token layout and chat template (no tool support) differ from Qwen's. No image splitting: each image
    becomes one `image_size` square tile of (image_size / patch_size)^2 / 4 image tokens.
    """
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_tokenizer(400, [*_CORPUS, "User: Assistant:"])
    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]})
    scale = 2
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": image_size, "patch_size": patch_size},
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "pad_token_id": tokenizer.pad_token_id},
        scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    image_processor = Idefics3ImageProcessor(size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size},
                                             do_image_splitting=False)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=(image_size // patch_size) ** 2 // scale**2, chat_template=IDEFICS3_TEMPLATE)
    processor.save_pretrained(path)
    return path


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen2.5-VL splits the rotary half-dimension as [16, 24, 24] of 64: a quarter for time, the rest
    # shared by height and width.
    half = head_dim // 2
    t = half // 4 or 1
    h = (half - t) // 2
    return [half - 2 * h, h, h]


def _tiny_tokenizer(vocab_size: int, texts: list[str]):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte, so no text is out of vocabulary
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
