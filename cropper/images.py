"""Opening images safely and rendering views (the global view and crops) from the original.

Every image that enters the library goes through `load_image`: EXIF orientation applied, any mode
converted to 8-bit RGB, a pixel cap against decompression bombs checked BEFORE the pixels are decoded,
and a clear `ImageError` naming the item for non-images, empty and truncated files.
"""

from __future__ import annotations

import base64
import io
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .geometry import FULL, Box

#: Default cap on decoded pixels (width * height). 100 MP holds a 10k x 10k scan; larger is refused.
MAX_PIXELS = int(os.environ.get("CROPPER_MAX_PIXELS", 100_000_000))

ImageSource = "str | os.PathLike | bytes | Image.Image | np.ndarray"


class ImageError(ValueError):
    """An input could not be used as an image; the message names the item and the problem."""


def load_image(source, *, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Open `source` (path, bytes, data URL, PIL image or HxWxC uint8 array) as an RGB PIL image.

    Raises `ImageError` naming `name` (or the path) when the input is missing, empty, not an image,
    truncated, or larger than `max_pixels` (default `MAX_PIXELS`).
    """
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) and len(str(source)) < 300 else "image")
    if isinstance(source, Image.Image):
        _check_size(source.size, cap, label)
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.ndim == 3 and source.shape[2] == 1:
            source = source[:, :, 0]
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (3, 4)):
            raise ImageError(f"{label}: array of shape {source.shape} is not an image (expected HxW, HxWx1, HxWx3 or HxWx4)")
        if source.dtype != np.uint8:
            raise ImageError(f"{label}: array dtype {source.dtype} is not supported (expected uint8)")
        _check_size((source.shape[1], source.shape[0]), cap, label)
        return to_rgb(Image.fromarray(source))
    data = _read_bytes(source, label)
    if not data:
        raise ImageError(f"{label}: file is empty (0 bytes)")
    try:
        img = _open_with_our_cap(data, cap)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not an image file (PIL cannot identify the format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label}: image exceeds the pixel cap of {cap:,} ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: image header is truncated or corrupt ({exc})") from exc
    # Check the declared size before decoding a single pixel: a 40k x 40k PNG is a few KB on disk.
    _check_size(img.size, cap, label)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: image data is truncated or corrupt ({exc})") from exc
    return to_rgb(img)


_PIL_LIMIT_LOCK = threading.Lock()


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


def _read_bytes(source, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, str) and source.startswith("data:"):
        header, _, payload = source.partition(",")
        if ";base64" not in header:
            raise ImageError(f"{label}: only base64 data URLs are supported")
        try:
            return base64.b64decode(payload, validate=False)
        except ValueError as exc:
            raise ImageError(f"{label}: data URL is not valid base64") from exc
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise ImageError(f"{label}: remote image URLs are not fetched; download the image and pass its path or bytes")
    path = Path(source)
    if not path.exists():
        raise ImageError(f"{label}: file not found")
    if path.is_dir():
        raise ImageError(f"{label}: is a directory, not an image file")
    return path.read_bytes()


def _check_size(size: tuple[int, int], cap: int, label: str) -> None:
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


# --- views -----------------------------------------------------------------------------------------------


@dataclass
class View:
    """A region of the original image (`box`) rendered at a pixel size (`image`)."""

    box: Box
    image: Image.Image

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def pixels(self) -> int:
        return self.image.width * self.image.height


def fit_size(width: int, height: int, max_side: int | None = None, max_pixels: int | None = None) -> tuple[int, int]:
    """The largest size <= (width, height) with the same aspect whose long side <= max_side and area <= max_pixels."""
    scale = 1.0
    if max_side:
        scale = min(scale, max_side / max(width, height))
    if max_pixels:
        scale = min(scale, (max_pixels / (width * height)) ** 0.5)
    if scale >= 1.0:
        return width, height
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if max_pixels and w * h > max_pixels:  # rounding up must not break the pixel cap
        w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return w, h


def render(image: Image.Image, box: Box = FULL, max_side: int | None = None, max_pixels: int | None = None) -> View:
    """Cut `box` from the ORIGINAL `image` and downscale it (never upscale) to the limits."""
    left, top, right, bottom = box.to_pixels(image.width, image.height)
    region = image if (left, top, right, bottom) == (0, 0, image.width, image.height) else image.crop(
        (left, top, right, bottom)
    )
    size = fit_size(region.width, region.height, max_side, max_pixels)
    if size != region.size:
        region = region.resize(size, Image.Resampling.LANCZOS if size[0] * 2 > region.width else Image.Resampling.BOX)
    return View(box, region)


def global_view(image: Image.Image, max_side: int = 1024) -> View:
    """The whole image downscaled so its longest side is at most `max_side`."""
    return render(image, FULL, max_side=max_side)


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes of an image (used for data URLs and reports)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
