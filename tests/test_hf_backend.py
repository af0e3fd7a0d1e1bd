"""TransformersBackend on a tiny random Qwen2.5-VL built offline: real processor, real chat template, real generate."""

from __future__ import annotations

import asyncio
import json
import os

# Nothing in this module may reach the hub: set before transformers is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from tiny_models import VISION_ONLY_TEMPLATE, build_tiny_idefics3, build_tiny_qwen25vl  # noqa: E402

from backends import load_backend  # noqa: E402
from backends.base import Backend, BackendError  # noqa: E402
from backends.hf import TransformersBackend  # noqa: E402
from backends.hf_wire import parse_tool_calls, to_chat  # noqa: E402
from backends.messages import ImagePart, Message, TextPart, ToolCall, ToolSpec, system, user  # noqa: E402

ZOOM = ToolSpec("zoom", "Look at a region of the image in full resolution.",
                {"type": "object", "properties": {"crop": {"type": "string", "enum": ["top-left", "centre"]}},
                 "required": ["crop"]})
PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("models") / "tiny-qwen25vl")


@pytest.fixture(scope="module")
def backend(tiny_path):
    return TransformersBackend(str(tiny_path), device="cpu", max_new_tokens=3)


@pytest.fixture(scope="module")
def stock_backend(tmp_path_factory):
    """The same kind of model with a template like stock Qwen2.5-VL's: no tool support at all."""
    path = build_tiny_qwen25vl(tmp_path_factory.mktemp("models") / "tiny-stock", chat_template=VISION_ONLY_TEMPLATE)
    return TransformersBackend(str(path), device="cpu", max_new_tokens=3)


def _image(w: int, h: int, colour: str = "white") -> Image.Image:
    return Image.new("RGB", (w, h), colour)


def _tokens_per_image(backend: TransformersBackend, images: list[Image.Image]) -> list[int]:
    """What the real image processor expands each image to: grid t*h*w patches, merged 2x2 into one token."""
    grids = backend.processor.image_processor(images=images, return_tensors="pt")["image_grid_thw"]
    merge = backend.processor.image_processor.merge_size
    return [int(g.prod()) // merge**2 for g in grids]


def _tool_conversation(global_view: Image.Image, crop: Image.Image) -> list[Message]:
    return [
        user(ImagePart(global_view, label="Global view:"), "What is written on the sign?"),
        Message("assistant", [TextPart("I need a closer look.")], tool_calls=[ToolCall("call_1", "zoom", {"crop": "top-left"})]),
        Message("tool", [TextPart("Crop top-left:"), ImagePart(crop)], tool_call_id="call_1", name="zoom"),
    ]


# --- loading ---------------------------------------------------------------------------------------------------


def test_loads_a_local_checkpoint_with_its_attributes(backend, tiny_path):
    assert isinstance(backend, Backend)
    assert backend.provider == "qwen2.5-vl"
    assert backend.model == str(tiny_path)
    assert backend.supports_tool_images is True
    assert backend.device == "cpu" and str(backend.dtype) == "torch.float32"
    assert (backend.min_pixels, backend.max_pixels) == (28 * 28 * 4, 28 * 28 * 16)
    assert backend.tool_format == "native"


def test_load_backend_spec_builds_the_transformers_backend(tiny_path):
    b = load_backend("hf:" + str(tiny_path), device="cpu", max_new_tokens=2)
    assert isinstance(b, TransformersBackend)
    assert b.provider == "qwen2.5-vl" and b.model == str(tiny_path)


def test_pixel_bounds_reach_the_image_processor(backend, tiny_path):
    b = TransformersBackend(str(tiny_path), device="cpu", min_pixels=28 * 28 * 2, max_pixels=28 * 28 * 8)
    assert (b.min_pixels, b.max_pixels) == (28 * 28 * 2, 28 * 28 * 8)
    wide = _image(420, 180)
    assert _tokens_per_image(backend, [wide]) == [12]  # the checkpoint's max_pixels: 168x56
    assert _tokens_per_image(b, [wide]) == [4]  # at most 8 blocks of 28x28: 112x28
    assert b.generate([user(wide, "Hi")], max_new_tokens=1).usage.image_tokens == 4


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(BackendError, match="no-such-model"):
        TransformersBackend(str(missing), device="cpu")


def test_uncached_hub_id_fails_offline_with_a_hint():
    with pytest.raises(BackendError, match=r"cropper-test/not-a-model.*allow_download=True"):
        TransformersBackend("cropper-test/not-a-model", device="cpu")


# --- images ----------------------------------------------------------------------------------------------------


def test_generate_with_one_image_counts_prompt_and_image_tokens(backend, tiny_path):
    img = _image(200, 120)
    reply = backend.generate([user(img, "What is written on the sign?")])

    prompt, images = backend.render([user(img, "What is written on the sign?")])
    assert prompt.count(PLACEHOLDER) == 1 and len(images) == 1
    expected = _tokens_per_image(backend, [img])[0]
    assert expected == (84 // 28) * (140 // 28)  # smart_resize into max_pixels: 200x120 -> 140x84
    inputs = backend.processor(text=[prompt], images=images, return_tensors="pt")
    assert reply.usage.image_tokens == expected
    assert reply.usage.input_tokens == inputs["input_ids"].shape[1]
    assert 1 <= reply.usage.output_tokens <= 3
    assert reply.model == str(tiny_path) and reply.tool_calls == []
    assert reply.raw["prompt"] == prompt


def test_global_view_plus_two_labelled_crops(backend):
    views = [_image(160, 120), _image(100, 100, "red"), _image(300, 80, "blue")]
    message = user(ImagePart(views[0], label="Global view:"), ImagePart(views[1], label="Crop 1 (top-left):"),
                   ImagePart(views[2], label="Crop 2 (bottom strip):"), "What is written on the sign?")
    prompt, images = backend.render([message])

    assert images == views  # in placeholder order
    # Each label sits right before its own image.
    for label in ("Global view:", "Crop 1 (top-left):", "Crop 2 (bottom strip):"):
        assert label + PLACEHOLDER in prompt
    assert prompt.index("Global view:") < prompt.index("Crop 1") < prompt.index("Crop 2") < prompt.index("What is")

    per_image = _tokens_per_image(backend, views)
    assert len(set(per_image)) > 1  # different sizes, different costs: the count is per image, not a constant
    reply = backend.generate([message])
    assert reply.usage.image_tokens == sum(per_image)
    assert reply.usage.input_tokens > reply.usage.image_tokens


def test_image_tokens_match_the_project_token_model(backend):
    from cropper.tokens import QwenVLModel

    model = QwenVLModel.qwen25(min_pixels=backend.min_pixels, max_pixels=backend.max_pixels)
    sizes = [(200, 120), (100, 100), (28, 28), (300, 80), (1000, 40)]
    assert _tokens_per_image(backend, [_image(w, h) for w, h in sizes]) == [model.count(w, h) for w, h in sizes]


def test_non_rgb_images_are_converted(backend):
    reply = backend.generate([user(Image.new("RGBA", (90, 60)), Image.new("L", (60, 90)), "Read it.")])
    assert reply.usage.image_tokens == sum(_tokens_per_image(backend, [_image(90, 60), _image(60, 90)]))


# --- tools -----------------------------------------------------------------------------------------------------


def test_tools_are_rendered_into_the_prompt(backend):
    prompt, _ = backend.render([system("Be brief."), user(_image(64, 64), "Read the sign.")], tools=[ZOOM])
    assert "# Tools" in prompt and "<tools>" in prompt
    assert json.dumps(ZOOM.parameters) in prompt
    assert '"name": "zoom"' in prompt and ZOOM.description in prompt
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert "Be brief." not in prompt.split("<|im_end|>", 1)[1]  # the system message is not repeated

    reply = backend.generate([user(_image(64, 64), "Read the sign.")], tools=[ZOOM])
    assert reply.usage.output_tokens >= 1


def test_tool_call_then_tool_result_with_an_image(backend):
    global_view, crop = _image(200, 120), _image(100, 100, "red")
    conversation = _tool_conversation(global_view, crop)
    prompt, images = backend.render(conversation, tools=[ZOOM])

    assert images == [global_view, crop]
    assert ('I need a closer look.\n<tool_call>\n{"name": "zoom", "arguments": {"crop": "top-left"}}\n'
            "</tool_call><|im_end|>") in prompt
    response = prompt[prompt.index("<tool_response>"):prompt.index("</tool_response>")]
    assert "Crop top-left:" + PLACEHOLDER in response  # the crop is inside the tool result
    assert "<|im_start|>user\n<tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")

    reply = backend.generate(conversation, tools=[ZOOM])
    assert reply.usage.image_tokens == sum(_tokens_per_image(backend, [global_view, crop]))
    # The last round of the tool loop offers no tools but keeps the history: it must still render and run.
    assert backend.generate(conversation).usage.image_tokens == reply.usage.image_tokens


def test_stock_template_gets_the_same_prompt_through_hermes_emulation(backend, stock_backend):
    """A template without tool support (stock Qwen2.5-VL) gets what a tool-aware Qwen template would render."""
    assert stock_backend.tool_format == "hermes"
    crop2 = _image(60, 90, "green")
    conversation = [
        *_tool_conversation(_image(200, 120), _image(100, 100, "red")),
        Message("assistant", [], tool_calls=[ToolCall("call_2", "zoom", {"crop": "centre"}),
                                             ToolCall("call_3", "zoom", {"crop": "nowhere"})]),
        Message("tool", [ImagePart(crop2)], tool_call_id="call_2", name="zoom"),
        Message("tool", [TextPart("unknown crop 'nowhere'")], tool_call_id="call_3", name="zoom"),
    ]
    for tools in ([ZOOM], None):
        native_prompt, native_images = backend.render(conversation, tools=tools)
        stock_prompt, stock_images = stock_backend.render(conversation, tools=tools)
        assert stock_prompt == native_prompt
        assert stock_images == native_images
    assert "<|im_start|>tool" not in stock_prompt
    assert "</tool_response>\n<tool_response>\nunknown crop" in stock_prompt  # one user turn for the run

    reply = stock_backend.generate(conversation, tools=[ZOOM])
    assert reply.usage.image_tokens == sum(_tokens_per_image(stock_backend, stock_images))


def test_smolvlm_like_model_runs_tools_through_hermes(tmp_path_factory):
    """Another architecture (Idefics3 = SmolVLM): other placeholder token, nested image batches, no tool support."""
    path = build_tiny_idefics3(tmp_path_factory.mktemp("models") / "tiny-idefics3")
    b = TransformersBackend(str(path), device="cpu", max_new_tokens=2)
    assert b.provider == "hf" and b.tool_format == "hermes" and (b.min_pixels, b.max_pixels) == (None, None)
    conversation = _tool_conversation(_image(200, 120), _image(100, 100, "red"))
    prompt, images = b.render(conversation, tools=[ZOOM])
    assert prompt.count("<image>") == len(images) == 2
    assert '"name": "zoom"' in prompt and "<tool_response>\nCrop top-left:<image>\n</tool_response>" in prompt
    reply = b.generate(conversation, tools=[ZOOM])
    assert reply.usage.image_tokens == 2 * 4  # one 64 px tile each: (64/16)^2 patches, merged 2x2
    with pytest.raises(ValueError, match="min_pixels"):
        TransformersBackend(str(path), device="cpu", max_pixels=1000)


def test_tool_messages_keep_role_and_images_for_native_templates():
    crop = _image(50, 50)
    chat, images = to_chat([Message("tool", [ImagePart(crop, label="Crop:")], tool_call_id="call_1", name="zoom")])
    assert chat == [{"role": "tool", "tool_call_id": "call_1", "name": "zoom",
                     "content": [{"type": "text", "text": "Crop:"}, {"type": "image"}]}]
    assert images == [crop]


def test_decode_keeps_tool_tags_and_drops_end_of_turn(backend):
    tokenizer = backend.processor.tokenizer
    written = '<tool_call>\n{"name": "zoom", "arguments": {"crop": "top-left"}}\n</tool_call><|im_end|>'
    text = backend.decode(tokenizer(written, add_special_tokens=False)["input_ids"])
    assert text == written.removesuffix("<|im_end|>")
    assert parse_tool_calls(text)[1] == [ToolCall("call_1", "zoom", {"crop": "top-left"})]


def test_generation_options(backend):
    message = [user(_image(64, 64), "Hi")]
    assert backend.generate(message, max_tokens=1).usage.output_tokens == 1
    greedy = backend.generate(message, temperature=0, max_new_tokens=2)
    assert backend.generate(message, max_new_tokens=2).raw["completion"] == greedy.raw["completion"]
    sampled = backend.generate(message, temperature=1.0, seed=0, max_new_tokens=2)
    assert 1 <= sampled.usage.output_tokens <= 2


def test_agenerate(backend):
    reply = asyncio.run(backend.agenerate([user(_image(64, 64), "Hi")]))
    assert reply.usage.image_tokens == _tokens_per_image(backend, [_image(64, 64)])[0]


# --- the tool-call parser ----------------------------------------------------------------------------------------


def test_parse_single_call():
    text, calls = parse_tool_calls('<tool_call>\n{"name": "zoom", "arguments": {"crop": "centre"}}\n</tool_call>')
    assert text == "" and calls == [ToolCall("call_1", "zoom", {"crop": "centre"})]


def test_parse_two_calls_with_text_and_ids_after_earlier_calls():
    out = ('Let me zoom twice.\n<tool_call>\n{"name": "zoom", "arguments": {"crop": "top-left"}}\n</tool_call>\n'
           '<tool_call>\n{"name": "zoom", "arguments": {"box": [0.1, 0.2, 0.5, 0.6]}}\n</tool_call>')
    text, calls = parse_tool_calls(out, first_id=3)
    assert text == "Let me zoom twice."
    assert calls == [ToolCall("call_3", "zoom", {"crop": "top-left"}),
                     ToolCall("call_4", "zoom", {"box": [0.1, 0.2, 0.5, 0.6]})]


@pytest.mark.parametrize("bad", [
    '<tool_call>\n{"name": "zoom", "arguments": {"crop": "top-left"\n</tool_call>',  # truncated JSON
    "<tool_call>\nzoom(crop='top-left')\n</tool_call>",  # not JSON at all
    '<tool_call>\n{"arguments": {"crop": "top-left"}}\n</tool_call>',  # no name
    '<tool_call>\n{"name": "zoom", "arguments": [1, 2]}\n</tool_call>',  # arguments not an object
])
def test_parse_malformed_call_keeps_the_text(bad):
    text, calls = parse_tool_calls("Hmm. " + bad)
    assert calls == [] and text == ("Hmm. " + bad).strip()


def test_parse_no_call():
    assert parse_tool_calls("  The sign says B7-4421.\n") == ("The sign says B7-4421.", [])


def test_parse_variants_real_checkpoints_write():
    # arguments as a JSON string (OpenAI's form), "parameters" instead of "arguments", no closing tag at the end
    _, calls = parse_tool_calls('<tool_call>{"name": "zoom", "arguments": "{\\"crop\\": \\"centre\\"}"}</tool_call>')
    assert calls[0].arguments == {"crop": "centre"}
    _, calls = parse_tool_calls('<tool_call>{"name": "zoom", "parameters": {"crop": "centre"}}</tool_call>')
    assert calls[0].arguments == {"crop": "centre"}
    text, calls = parse_tool_calls('ok <tool_call>{"name": "zoom", "arguments": {}}')
    assert text == "ok" and calls == [ToolCall("call_1", "zoom", {})]


def test_parse_keeps_a_malformed_block_next_to_a_good_one():
    good = '<tool_call>{"name": "zoom", "arguments": {"crop": "centre"}}</tool_call>'
    bad = "<tool_call>{oops}</tool_call>"
    text, calls = parse_tool_calls(bad + "\n" + good)
    assert text == bad and [c.name for c in calls] == ["zoom"]
