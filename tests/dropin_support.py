"""Shared by the drop-in tests: the real SDK clients on the fake providers (`conftest.py` starts those) and the
images and replies the tests send."""

from __future__ import annotations

import base64
import functools
import io
import random

import anthropic
import openai
from PIL import Image

from cropper import AWARES9

OPENAI_KEY = "sk-rules-FAKE-KEY-0b1c2d3e"
ANTHROPIC_KEY = "sk-ant-rules-FAKE-KEY-4f5a6b7c"
ANTHROPIC_MAX_IMAGE_B64 = 5 * 1024 * 1024  # "image exceeds 5 MB maximum: ... bytes > 5242880 bytes"


@functools.cache
def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=OPENAI_KEY, max_retries=0)


@functools.cache
def anthropic_client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=ANTHROPIC_KEY, max_retries=0)


@functools.cache
def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A noisy photo-like image: PNG cannot compress it, as with a real photograph."""
    rng = random.Random(seed)
    small = Image.effect_noise((max(1, width // 4), max(1, height // 4)), 80).convert("RGB")
    tint = Image.new("RGB", small.size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    small = Image.blend(small, tint, 0.3)
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    return Image.blend(small.resize((width, height)), noise, 0.5)


def encoded(image: Image.Image, fmt: str = "PNG", **save) -> tuple[str, str]:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return f"image/{fmt.lower()}", base64.b64encode(buf.getvalue()).decode("ascii")


def openai_image(image: Image.Image, fmt: str = "PNG", detail: str | None = None, **save) -> dict:
    media, data = encoded(image, fmt, **save)
    spec = {"url": f"data:{media};base64,{data}"}
    if detail:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def anthropic_image(image: Image.Image, fmt: str = "PNG", **save) -> dict:
    media, data = encoded(image, fmt, **save)
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


def quadrants(width: int = 3000, height: int = 2000) -> Image.Image:
    img = Image.new("RGB", (width, height))
    for name, colour in {"top_left": (255, 0, 0), "top_right": (0, 255, 0), "bottom_left": (0, 0, 255),
                         "bottom_right": (255, 255, 0)}.items():
        img.paste(colour, AWARES9[name].to_pixels(width, height))
    return img


def centre(img: Image.Image) -> tuple[int, int, int]:
    return img.convert("RGB").getpixel((img.width // 2, img.height // 2))


def zoom_call(arguments: dict, call_id: str = "call_1") -> dict:
    return {"tool_calls": [{"id": call_id, "name": "zoom", "arguments": arguments}]}
