"""The one image decoder: bytes, base64 and data URLs to 8-bit RGB, the pixel cap checked before decoding.

Every path that turns encoded bytes into pixels goes through `decode_image` (the library's `load_image`,
the wire converters' lazy loaders, the proxy), so they all see the same pixels: EXIF orientation applied,
16-bit grey scaled to 8 bits (not clipped to white), alpha composited on white. The declared size is
checked against the cap on the header, before a single pixel is decoded: a 13000x13000 PNG is a few
hundred KB on the wire and 500 MB in memory.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "MAX_PIXELS", "check_size", "data_url_bytes", "decode_image", "declared_size",
           "to_rgb"]

#: Default cap on decoded pixels (width * height). 100 MP holds a 10k x 10k scan; larger is refused.
MAX_PIXELS = int(os.environ.get("CROPPER_MAX_PIXELS", 100_000_000))


class ImageError(ValueError):
    """An input could not be used as an image; the message names the item and the problem."""


def data_url_bytes(source: str, label: str = "image") -> bytes:
    """The bytes of a base64 `data:` URL, or of bare base64 text (ImageError when it is neither)."""
    if source.startswith(("http://", "https://")):
        raise ImageError(f"{label}: remote image URLs are not fetched ({source[:80]!r}); download the image and "
                         "pass its path or bytes (or a base64 data URL)")
    payload = source
    if source.startswith("data:"):
        header, sep, payload = source.partition(",")
        if not sep or ";base64" not in header:
            raise ImageError(f"{label}: only base64 data URLs are supported (data:image/...;base64,...)")
    try:
        # Whitespace is dropped first: some clients wrap base64 at 76 columns (MIME style).
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"{label}: image data is not valid base64") from exc


def declared_size(data: bytes, label: str = "image", max_pixels: int | None = None) -> tuple[int, int]:
    """The (width, height) the image's header declares, without decoding its pixels; ImageError when the
    bytes are not an image or declare more than `max_pixels` (default `MAX_PIXELS`)."""
    image = _open(data, label, MAX_PIXELS if max_pixels is None else max_pixels)
    size = image.size
    image.close()
    return size


def decode_image(data: bytes, label: str = "image", max_pixels: int | None = None) -> Image.Image:
    """Decode image bytes to an RGB PIL image, refusing (ImageError) more than `max_pixels` before decoding."""
    image = _open(data, label, MAX_PIXELS if max_pixels is None else max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: image data is truncated or corrupt ({exc})") from exc
    return to_rgb(image)


def _open(data: bytes, label: str, cap: int) -> Image.Image:
    if not data:
        raise ImageError(f"{label}: file is empty (0 bytes)")
    try:
        image = _open_with_our_cap(data, cap)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not an image file (PIL cannot identify the format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label}: image exceeds the pixel cap of {cap:,} ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: image header is truncated or corrupt ({exc})") from exc
    check_size(image.size, cap, label)  # on the header: no pixel has been decoded yet
    return image


_PIL_LIMIT_LOCK = threading.Lock()
_ORIENTATION = 0x0112  # the EXIF Orientation tag


def _open_with_our_cap(data: bytes, cap: int) -> Image.Image:
    """`Image.open` with Pillow's own bomb limit lifted to our cap (we check the size ourselves)."""
    with _PIL_LIMIT_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        # Pillow refuses at 2x its limit and warns above it; our cap is the one that applies.
        Image.MAX_IMAGE_PIXELS = max(previous or 0, cap)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def check_size(size: tuple[int, int], cap: int, label: str) -> None:
    """ImageError when `size` has no pixels or more than `cap` of them."""
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"{label}: image has no pixels ({w}x{h})")
    if w * h > cap:
        raise ImageError(
            f"{label}: image is {w}x{h} = {w * h:,} pixels, over the cap of {cap:,} "
            "(decompression-bomb guard; raise it with max_pixels= or CROPPER_MAX_PIXELS)"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """EXIF-orient and convert any PIL mode to 8-bit RGB (alpha composited on white)."""
    try:
        # Only when the tag asks for it: exif_transpose copies the image otherwise too, which for a 99 MP
        # image is 300 MB more and a copy made holding the GIL (the proxy's event loop stalls meanwhile).
        if img.getexif().get(_ORIENTATION, 1) != 1:
            img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make a readable image unusable
        pass
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Deep greyscale: scale by the format's range (not clipped to white by PIL's convert("L")).
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or 255 < hi <= 65535:
            arr = arr / 257.0
        elif hi > 65535:
            lo = float(arr.min())
            arr = (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")
