"""cropper: make existing vision-language models see fine detail cheaply.

A frozen VLM gets a low-resolution global view plus only the high-resolution crops the question needs,
chosen by a cropper (`policy` strategy) or by the model itself through a `zoom` tool (`tool` strategy).
"""

from .answer import Answer
from .croppers import Cropper, GridCropper, TextRegionCropper
from .geometry import AWARES9, FULL, Box, crop_set, grid, multiscale
from .images import ImageError, View, global_view, load_image, render
from .strategies import STRATEGIES
from .tokens import TokenModel, token_model_for, visual_tokens
from .wrapper import ZoomWrapper, make_cropper

__version__ = "0.1.0"


def __getattr__(name: str):
    # CropPolicy pulls in torch and timm: import it only when asked for.
    if name in ("CropPolicy", "PolicyConfig"):
        from . import policy

        return getattr(policy, name)
    if name in ("compare", "Comparison"):
        from . import ab  # pulls in numpy statistics and the training package's judge on first use

        return getattr(ab, name)
    raise AttributeError(f"module 'cropper' has no attribute {name!r}")

__all__ = [
    "AWARES9", "FULL", "STRATEGIES", "Answer", "Box", "Comparison", "CropPolicy", "Cropper", "PolicyConfig", "GridCropper", "ImageError", "TextRegionCropper",
    "TokenModel", "View", "ZoomWrapper", "compare", "crop_set", "global_view", "grid", "load_image", "make_cropper",
    "multiscale", "render", "token_model_for", "visual_tokens", "__version__",
]
