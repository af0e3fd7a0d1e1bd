"""PIL images to and from the base64 forms the HTTP APIs carry (data URLs, base64 + media type).

Shared by the OpenAI and Anthropic wire converters and by the test fakes; no SDK needed.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image

from .image_decode import ImageError, data_url_bytes, decode_image

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


@dataclass(frozen=True)
class ImageLimits:
    """A provider's documented limits on the images of one request (None: no documented limit).

    Byte limits count the base64 text, as the providers measure it. Each backend's wire module holds its
    provider's values with their sources; `per_image_bytes` is what one image the wrapper makes may take.
    """

    max_image_bytes: int | None = None
    max_images_bytes: int | None = None  # all images of one request together (or the whole request)
    max_images: int | None = None
    max_side: int | None = None
    many_images: int | None = None  # above this many images in a request, `many_max_side` applies
    many_max_side: int | None = None

    def per_image_bytes(self, count: int) -> int | None:
        """The byte cap for each of `count` images made for one request (the request cap shared equally)."""
        caps = [c for c in (self.max_image_bytes,
                            None if self.max_images_bytes is None else self.max_images_bytes // max(1, count))
                if c is not None]
        return min(caps) if caps else None

    def side_cap(self, count: int) -> int | None:
        """The largest side an image may have in a request holding `count` images."""
        if self.many_images is not None and count > self.many_images:
            return self.many_max_side
        return self.max_side


#: Fallbacks tried in order when PNG does not fit: (format, quality). JPEG at 90 keeps 8-px text legible
#: (small text is why the crop was sent); WebP at the same quality is usually 25-35% smaller again.
_FALLBACKS = (("jpeg", 92), ("webp", 90), ("jpeg", 85), ("webp", 80), ("jpeg", 75))


def encode_within(image: Image.Image, image_format: str = "png", max_bytes: int | None = None,
                  max_side: int | None = None) -> tuple[str, str]:
    """Encode `image` as (media_type, base64) in `image_format`, within `max_bytes` of base64 and `max_side` px.

    When the preferred encoding is too large, lossy JPEG/WebP at falling quality are tried; when none of
    them fits, the image is scaled down (by 0.8 a step) until one does. The image is never sent larger
    than the provider accepts, and never degraded when it already fits.
    """
    if max_side is not None and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.LANCZOS)
    encoded = encode_image(image, image_format)
    if max_bytes is None or len(encoded[1]) <= max_bytes:
        return encoded
    while True:
        for fmt, quality in _FALLBACKS:
            encoded = encode_image(image, fmt, quality=quality)
            if len(encoded[1]) <= max_bytes:
                return encoded
        if max(image.size) <= 16:
            raise ValueError(f"an image cannot be encoded within {max_bytes:,} bytes")
        image = image.resize((max(1, int(image.width * 0.8)), max(1, int(image.height * 0.8))), Image.LANCZOS)


def to_data_url(image: Image.Image, image_format: str = "png") -> str:
    """`image` as a `data:image/...;base64,...` URL."""
    media_type, data = encode_image(image, image_format)
    return f"data:{media_type};base64,{data}"


def decode_base64_image(data: str, label: str = "image", max_pixels: int | None = None) -> Image.Image:
    """Decode base64 image bytes into an RGB PIL image (`image_decode.decode_image`: the pixel cap is checked
    on the header, before decoding). ImageError (a ValueError) on bad base64, non-image bytes or a bomb."""
    return decode_image(data_url_bytes(data, label), label, max_pixels)


def from_data_url(url: str, label: str = "image", max_pixels: int | None = None) -> Image.Image:
    """Decode a base64 `data:` URL into an RGB PIL image, as `decode_base64_image` does.

    Remote (http/https) URLs raise ImageError: this library never downloads images on its own.
    """
    if not url.startswith(("data:", "http://", "https://")):
        raise ImageError(f"{label}: unsupported image URL {url[:40]!r}: expected a base64 data URL")
    return decode_image(data_url_bytes(url, label), label, max_pixels)
