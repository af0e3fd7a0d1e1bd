"""Opening images safely and rendering views (the global view and crops) from the original.

Every image that enters the library goes through `load_image`, which decodes with the one decoder
(`backends.image_decode`): EXIF orientation applied, any mode converted to 8-bit RGB, a pixel cap
against decompression bombs checked BEFORE the pixels are decoded, and a clear `ImageError` naming the
item for non-images, empty and truncated files.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from backends import image_decode
from backends.image_decode import ImageError, check_size, data_url_bytes, decode_image, to_rgb

from .geometry import FULL, Box

__all__ = ["ImageError", "MAX_PIXELS", "View", "fit_size", "global_view", "load_image", "render", "to_rgb"]

#: Default cap on decoded pixels (width * height); the decoder's (`CROPPER_MAX_PIXELS`).
MAX_PIXELS = image_decode.MAX_PIXELS

ImageSource = "str | os.PathLike | bytes | Image.Image | np.ndarray"

#: Longer paths are not echoed whole in messages.
_LABEL_CHARS = 300


def load_image(source, *, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Open `source` (path, bytes, data URL, PIL image or HxWxC uint8 array) as an RGB PIL image.

    Raises `ImageError` naming `name` (or the path) when the input is missing, empty, not an image,
    truncated, of a type that is not an image source, or larger than `max_pixels` (default `MAX_PIXELS`).
    """
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    label = name or _label(source)
    if isinstance(source, Image.Image):
        check_size(source.size, cap, label)
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.ndim == 3 and source.shape[2] == 1:
            source = source[:, :, 0]
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (3, 4)):
            raise ImageError(f"{label}: array of shape {source.shape} is not an image (expected HxW, HxWx1, HxWx3 or HxWx4)")
        if source.dtype != np.uint8:
            raise ImageError(f"{label}: array dtype {source.dtype} is not supported (expected uint8)")
        check_size((source.shape[1], source.shape[0]), cap, label)
        return to_rgb(Image.fromarray(source))
    return decode_image(_read_bytes(source, label), label, cap)


def _label(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if text.startswith("data:"):
            return "data URL"
        return text if len(text) < _LABEL_CHARS else f"{text[:60]}...{text[-60:]} ({len(text)} characters)"
    return "image"


def _read_bytes(source, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(f"{label}: {type(source).__name__} is not an image source "
                         "(give a path, bytes, a data URL, a PIL image or a uint8 array)")
    if isinstance(source, str) and source.startswith(("data:", "http://", "https://")):
        return data_url_bytes(source, label)
    path = Path(source)
    try:
        if not path.exists():
            raise ImageError(f"{label}: file not found")
        if path.is_dir():
            raise ImageError(f"{label}: is a directory, not an image file")
        return path.read_bytes()
    except OSError as exc:  # a name too long for the file system, no permission, ...
        raise ImageError(f"{label}: cannot be read ({exc.strerror or exc})") from exc


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
