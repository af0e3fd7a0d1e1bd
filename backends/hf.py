"""A local transformers vision-language model (Qwen2.5-VL, Qwen3-VL, SmolVLM, ...) as a `Backend`.

Loads any `AutoModelForImageTextToText` checkpoint with its `AutoProcessor`, from a local directory or the
Hugging Face cache; nothing is downloaded unless `allow_download=True`. The conversation goes through the
processor's own chat template (see `backends.hf_wire` for how tools and tool results with images are
rendered), the processor turns text and images into model inputs, and generation is greedy by default.
torch and transformers are imported lazily, so `backends` imports without them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from typing import Any

from PIL import Image

from .base import BackendError, require
from .hf_wire import parse_tool_calls, template_handles_tools, to_chat, tool_schemas
from .messages import Message, Reply, ToolSpec, Usage

_INSTALL = "'torch' 'transformers'"

#: config.model_type -> provider name, which picks the visual-token model (`cropper.tokens`).
_PROVIDERS = {
    "qwen2_vl": "qwen2-vl",
    "qwen2_5_vl": "qwen2.5-vl",
    "qwen3_vl": "qwen3-vl",
    "qwen3_vl_moe": "qwen3-vl",
}

#: Tags a completion's tool calls are written in; kept when decoding even where a tokenizer marks them special.
_TOOL_TAGS = ("<tool_call>", "</tool_call>")


class TransformersBackend:
    """A local Hugging Face image-text-to-text model behind `generate`.

    - `model_path_or_id`: a checkpoint directory, or a hub id already in the local cache.
    - `device`: "cpu", "cuda", "cuda:1", "mps"; default the best available.
    - `dtype`: a torch dtype or its name ("bfloat16", "float32", "auto" for the checkpoint's); default
      bfloat16 on CUDA (float16 where bf16 is unsupported), float16 on MPS, float32 on CPU.
    - `max_new_tokens`: default generation length (per call: `max_new_tokens=` or `max_tokens=`).
    - `min_pixels`, `max_pixels`: the Qwen-VL image processor's resize bounds (fewer pixels, fewer tokens).
    - `allow_download`: fetch from the hub when the model is not local (off: runs must stay offline).
    - `trust_remote_code`: for checkpoints that ship their own modelling code.
    - `tool_format`: "auto" (probe the chat template), "native" or "hermes" (see `backends.hf_wire`).
    - other keyword arguments are default `model.generate` options (`temperature`, `top_p`, ...).

    Per call, `generate` also takes `max_tokens`, `temperature` (0 = greedy), `seed` and `stop`, like the API
    backends; anything else goes to `model.generate`.

    Attributes: `provider` ("qwen2.5-vl", "qwen2-vl", "qwen3-vl" from the config's model_type, else "hf"),
    `model` (the path or id), `processor`, `hf_model`, `device`, `dtype`, `image_token_id`, and `min_pixels` /
    `max_pixels` (the image processor's bounds in effect; None for non-Qwen processors), so a token model can
    count exactly what this processor feeds the model.
    """

    supports_tool_images = True

    def __init__(
        self,
        model_path_or_id: str,
        device: str | None = None,
        dtype: Any = None,
        max_new_tokens: int = 256,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        allow_download: bool = False,
        trust_remote_code: bool = False,
        tool_format: str = "auto",
        **generate_defaults: Any,
    ):
        if tool_format not in ("auto", "native", "hermes"):
            raise ValueError(f"tool_format must be 'auto', 'native' or 'hermes', not {tool_format!r}")
        self._torch = require("torch", _INSTALL)
        transformers = require("transformers", _INSTALL)
        self.model = str(model_path_or_id)
        self.device = device or _best_device(self._torch)
        self.dtype = _resolve_dtype(self._torch, dtype, self.device)
        self.max_new_tokens = max_new_tokens
        self.generate_defaults = generate_defaults
        self._tool_format = tool_format
        self._lock = threading.Lock()  # one generate at a time: the model and its caches are shared state

        load = {"local_files_only": not allow_download, "trust_remote_code": trust_remote_code}
        _check_local_path(self.model)
        source = os.path.expanduser(self.model)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(source, **load)
            self.hf_model = transformers.AutoModelForImageTextToText.from_pretrained(
                source, **_placement(transformers, self.dtype, self.device), **load
            )
        except OSError as exc:
            hint = "" if allow_download else " (not found locally; pass allow_download=True to fetch it from the hub)"
            raise BackendError(f"cannot load the transformers model {self.model!r}{hint}: {exc}") from exc
        except ValueError as exc:  # e.g. a config no image-text-to-text class is registered for
            raise BackendError(f"{self.model!r} is not an image-text-to-text model transformers can load: {exc}") from exc
        self.hf_model.to(self.device)  # a no-op where device_map already placed it
        self.hf_model.eval()
        if getattr(self.processor, "chat_template", None) is None:
            # Some checkpoints keep the template only in tokenizer_config.json.
            self.processor.chat_template = getattr(self.processor.tokenizer, "chat_template", None)
        if self.processor.chat_template is None:
            raise BackendError(f"{self.model!r} has no chat template (chat_template.jinja or in tokenizer_config.json)")
        self.provider = _PROVIDERS.get(getattr(self.hf_model.config, "model_type", ""), "hf")
        if min_pixels is not None or max_pixels is not None:
            _set_pixel_bounds(self.processor, min_pixels, max_pixels)
        self.min_pixels, self.max_pixels = _pixel_bounds(self.processor)
        self.image_token_id = _image_token_id(self.processor)

    # --- rendering ------------------------------------------------------------------------------------------

    @property
    def tool_format(self) -> str:
        """How tools reach the prompt: "native" where the chat template renders tools, calls and tool images
        itself, else "hermes" (written out by `backends.hf_wire`); probed once on first use."""
        if self._tool_format == "auto":
            self._tool_format = "native" if template_handles_tools(self._apply_template) else "hermes"
        return self._tool_format

    def render(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> tuple[str, list[Image.Image]]:
        """The prompt text (chat template applied, generation prompt added) and its images, in order."""
        native = self.tool_format == "native"
        conversation, images = to_chat(messages, tools, native_tools=native)
        prompt = self._apply_template(conversation, tools=tool_schemas(tools) if native and tools else None)
        image_token = getattr(self.processor, "image_token", None)
        placeholders = prompt.count(image_token) if image_token else 0
        # Templates that write another marker (Gemma's <start_of_image>) show none of image_token: no check then.
        if placeholders and placeholders != len(images):
            # The processor would fail later with a less telling message (or silently drop an image).
            raise BackendError(
                f"the chat template of {self.model!r} rendered {placeholders} image placeholders for "
                f"{len(images)} images (does it drop images in some message roles?)"
            )
        return prompt, images

    def _apply_template(self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        return self.processor.apply_chat_template(conversation, tools=tools, add_generation_prompt=True, tokenize=False)

    # --- generation -----------------------------------------------------------------------------------------

    def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Run the model on a conversation; tool calls are parsed from the output when `tools` are offered."""
        if options.pop("tool_choice", None) == "none":
            tools = None  # the neutral "no call this turn": a local model is simply not offered the tools
        torch = self._torch
        prompt, images = self.render(messages, tools)
        inputs = self.processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
        inputs = {k: _to_device(v, self.device, self.hf_model.dtype, torch) for k, v in inputs.items()}
        input_ids = inputs["input_ids"]
        prompt_len = int(input_ids.shape[1])
        image_tokens = int((input_ids == self.image_token_id).sum()) if self.image_token_id is not None else None
        with self._lock, torch.inference_mode():
            output = self.hf_model.generate(**inputs, **self._generation_kwargs(options))
        new_ids = output[0, prompt_len:].tolist()
        completion = self.decode(new_ids)
        if tools:
            made = sum(len(m.tool_calls) for m in messages if m.role == "assistant")
            text, calls = parse_tool_calls(completion, first_id=made + 1)
        else:
            text, calls = completion.strip(), []
        usage = Usage(input_tokens=prompt_len, output_tokens=len(new_ids), image_tokens=image_tokens)
        return Reply(text=text, tool_calls=calls, usage=usage, model=self.model,
                     raw={"prompt": prompt, "completion": completion})

    async def agenerate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """`generate` in a worker thread, so an event loop stays responsive while the model runs."""
        return await asyncio.to_thread(self.generate, messages, tools, **options)

    def decode(self, token_ids: list[int]) -> str:
        """Generated ids to text: special tokens (end of turn, padding) dropped, tool-call tags kept."""
        tokenizer = self.processor.tokenizer
        keep = {tokenizer.convert_tokens_to_ids(tag) for tag in _TOOL_TAGS}
        drop = set(tokenizer.all_special_ids) - keep
        return tokenizer.decode([i for i in token_ids if i not in drop], skip_special_tokens=False)

    def _generation_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        kwargs = {"max_new_tokens": self.max_new_tokens, **self.generate_defaults, **options}
        for alias in ("max_tokens", "max_completion_tokens"):  # the names the API backends take
            if alias in kwargs:
                kwargs["max_new_tokens"] = kwargs.pop(alias)
        temperature = kwargs.get("temperature")
        if temperature is not None and temperature <= 0:
            kwargs.pop("temperature")
            kwargs["do_sample"] = False
        # Greedy unless asked otherwise: checkpoints often ship sampling defaults in generation_config.json.
        kwargs.setdefault("do_sample", temperature is not None and temperature > 0)
        if "seed" in kwargs:
            self._torch.manual_seed(kwargs.pop("seed"))
        if "stop" in kwargs:
            stop = kwargs.pop("stop")
            kwargs["stop_strings"] = [stop] if isinstance(stop, str) else list(stop)
            kwargs["tokenizer"] = self.processor.tokenizer
        if self.hf_model.generation_config.pad_token_id is None:
            kwargs.setdefault("pad_token_id", self.processor.tokenizer.pad_token_id or self.processor.tokenizer.eos_token_id)
        return kwargs


def _check_local_path(path: str) -> None:
    # A hub id is "org/name"; something that looks like a filesystem path and is missing should say so plainly
    # rather than as a failed hub lookup.
    looks_local = os.path.isabs(path) or path in (".", "..") or path.startswith(("./", "../", "~"))
    if looks_local and not os.path.exists(os.path.expanduser(path)):
        raise BackendError(f"no model at {path!r}: the path does not exist")


def _placement(transformers: Any, dtype: Any, device: str) -> dict[str, Any]:
    """from_pretrained keywords that load straight onto `device` in `dtype`, across transformers versions."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kwargs = {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}  # renamed in 4.56
    try:  # device_map needs accelerate before transformers 5; without it we load on CPU and move
        import accelerate  # noqa: F401

        kwargs["device_map"] = device
    except ImportError:
        pass
    return kwargs


def _best_device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _resolve_dtype(torch: Any, dtype: Any, device: str) -> Any:
    if dtype is None:
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.startswith("mps") else torch.float32
    if dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'bfloat16', 'float16', 'float32' or 'auto'")
    return resolved


def _to_device(value: Any, device: str, dtype: Any, torch: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    # Pixel values come as float32; the vision tower runs in the model's dtype. Ids and grids stay integers.
    return value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device)


def _pixel_bounds(processor: Any) -> tuple[int | None, int | None]:
    """The Qwen-VL image processor's (min_pixels, max_pixels); (None, None) for other processors."""
    image_processor = getattr(processor, "image_processor", None)
    size = getattr(image_processor, "size", None)  # a dict, or transformers' SizeDict (which has .get too)
    if not hasattr(size, "get") or not hasattr(image_processor, "merge_size"):
        return None, None
    low, high = size.get("shortest_edge"), size.get("longest_edge")
    return (int(low), int(high)) if low is not None and high is not None else (None, None)


def _set_pixel_bounds(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    # Set on the image processor itself: passing min_pixels/max_pixels to AutoProcessor.from_pretrained also
    # makes every processor call resend them, which recent transformers deprecates.
    if _pixel_bounds(processor) == (None, None):
        raise ValueError("min_pixels/max_pixels apply to Qwen-VL style image processors; this model's has no such bounds")
    image_processor = processor.image_processor
    bounds = {k: v for k, v in (("shortest_edge", min_pixels), ("longest_edge", max_pixels)) if v is not None}
    size = image_processor.size
    image_processor.size = dataclasses.replace(size, **bounds) if dataclasses.is_dataclass(size) else {**size, **bounds}


def _image_token_id(processor: Any) -> int | None:
    token_id = getattr(processor, "image_token_id", None)
    if token_id is not None:
        return int(token_id)
    token = getattr(processor, "image_token", None)
    if token is None:
        return None
    token_id = processor.tokenizer.convert_tokens_to_ids(token)
    return None if token_id == processor.tokenizer.unk_token_id else int(token_id)
