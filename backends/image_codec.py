"""PIL images to and from the base64 forms the HTTP APIs carry (data URLs, base64 + media type).

Shared by the OpenAI and Anthropic wire converters and by the test fakes; no SDK needed.
"""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image

#: Formats we send. PNG is the default because crops usually hold small text, where JPEG artefacts hurt.
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


def encode_image(image: Image.Image, image_format: str = "png", quality: int = 90) -> tuple[str, str]:
    """Encode `image` as (media_type, base64 text). `image_format` is "png", "jpeg" or "webp"."""
    fmt = image_format.lower()
    if fmt not in _MEDIA_TYPES:
        raise ValueError(f"unsupported image format {image_format!r}; use one of png, jpeg, webp")
    # RGB always: JPEG cannot hold alpha, and the providers' token models assume opaque RGB pixels.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    buf = io.BytesIO()
    pil_fmt = "JPEG" if fmt in ("jpeg", "jpg") else fmt.upper()
    save_kwargs = {"quality": quality} if pil_fmt in ("JPEG", "WEBP") else {}
    rgb.save(buf, format=pil_fmt, **save_kwargs)
    return _MEDIA_TYPES[fmt], base64.b64encode(buf.getvalue()).decode("ascii")


def to_data_url(image: Image.Image, image_format: str = "png") -> str:
    """`image` as a `data:image/...;base64,...` URL."""
    media_type, data = encode_image(image, image_format)
    return f"data:{media_type};base64,{data}"


def decode_base64_image(data: str) -> Image.Image:
    """Decode base64 image bytes into an RGB PIL image (ValueError on bad base64 or non-image bytes)."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("image data is not valid base64") from exc
    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
    except Exception as exc:  # PIL raises several unrelated types for bad bytes
        raise ValueError(f"image data could not be decoded ({type(exc).__name__}: {exc})") from exc
    return img if img.mode == "RGB" else img.convert("RGB")


def from_data_url(url: str) -> Image.Image:
    """Decode a base64 `data:` URL into an RGB PIL image.

    Remote (http/https) URLs raise ValueError: this library never downloads images on its own.
    """
    if url.startswith(("http://", "https://")):
        raise ValueError(
            f"remote image URLs are not fetched ({url[:80]!r}); download the image and pass it as a PIL image "
            "or a base64 data URL"
        )
    if not url.startswith("data:"):
        raise ValueError(f"unsupported image URL {url[:40]!r}: expected a base64 data URL")
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise ValueError("only base64 data URLs are supported (data:image/...;base64,...)")
    return decode_base64_image(payload)
