"""The `zoom` tool offered to the model in the `tool` strategy, and the captions put on every view.

The same schema and prompt are used at inference and (later) in tool-use training, so a model trained
on them sees exactly what it will be given.
"""

from __future__ import annotations

from typing import Any

from backends.messages import ToolSpec

from .geometry import Box

TOOL_PROMPT = (
    "You see a low-resolution view of the image. Small text and details may be unreadable at this "
    "resolution. If you need detail to answer, call the `zoom` tool to see a region of the original "
    "image at high resolution; otherwise answer directly. Answer with just the answer."
)


def zoom_tool(crops: dict[str, Box] | None = None, allow_boxes: bool = True, images: int = 1,
              strict: bool = False) -> ToolSpec:
    """The `zoom` tool: by crop name (from `crops`), by free box, or both; with `images` > 1, of which image.

    `strict=True` gives the form OpenAI's strict mode takes (every property required, null meaning "not
    given", no other properties), which `chat.completions.parse` demands of every tool.
    """
    props: dict[str, Any] = {}
    described = ""
    if crops:
        described = ", ".join(f"{name}={box.to_list(3)}" for name, box in crops.items())
        props["crop"] = {
            "type": "string",
            "enum": list(crops),
            "description": "A named region of the image ([x1, y1, x2, y2] in 0..1): " + described,
        }
    if allow_boxes:
        props["box"] = {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 4,
            "maxItems": 4,
            "description": "A region [x1, y1, x2, y2] in 0..1 of the image width and height, origin top-left.",
        }
    if not props:
        raise ValueError("the zoom tool needs a crop set, free boxes, or both")
    if images > 1:
        props["image"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": images,
            "description": f"Which image to zoom into: 1 to {images}, in the order they were shown (default 1).",
        }
    what = "either `crop` (a named region) or `box`." if crops and allow_boxes else ("`crop`." if crops else "`box`.")
    parameters: dict[str, Any] = {"type": "object", "properties": props}
    if strict:
        # https://platform.openai.com/docs/guides/structured-outputs#supported-schemas: all fields required,
        # optional ones as a union with null, additionalProperties false.
        for prop in props.values():
            prop["type"] = [prop["type"], "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        parameters.update(required=list(props), additionalProperties=False)
    return ToolSpec(
        name="zoom",
        description="Look at a region of the original image at high resolution. Give " + what,
        parameters=parameters,
        strict=strict,
    )


def parse_zoom_image(arguments: dict[str, Any], images: int) -> int:
    """The 0-based index of the image a zoom call names (`image`, 1-based; default the first)."""
    raw = arguments.get("image") if isinstance(arguments, dict) else None
    if raw is None:
        return 0
    try:
        number = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"image must be a number from 1 to {images}, got {raw!r}") from None
    if not 1 <= number <= images:
        raise ValueError(f"image {number} does not exist; the message holds {images} image(s), numbered from 1")
    return number - 1


def parse_zoom_arguments(arguments: dict[str, Any], crops: dict[str, Box] | None) -> Box:
    """The Box a zoom call asks for; raises ValueError with a message the model can act on."""
    if not isinstance(arguments, dict):
        raise ValueError("zoom arguments must be an object with `crop` or `box`")
    if arguments.get("crop") is not None:
        name = str(arguments["crop"]).strip().lower()
        if crops and name in crops:
            return crops[name]
        raise ValueError(f"unknown crop {arguments['crop']!r}; use one of: {', '.join(crops or {})}")
    if arguments.get("box") is not None:
        raw = arguments["box"]
        if isinstance(raw, str):
            raw = [v for v in raw.strip("[]() ").replace(",", " ").split() if v]
        try:
            values = [float(v) for v in raw]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"box must be 4 numbers [x1, y1, x2, y2] in 0..1, got {raw!r}") from exc
        if len(values) != 4:
            raise ValueError(f"box must be 4 numbers [x1, y1, x2, y2] in 0..1, got {raw!r}")
        if max(values) > 1.0 and max(values) <= 100.0:
            values = [v / 100.0 for v in values]  # a percentage box: a common model habit
        box = Box.from_list(values)
        if box.area <= 0:
            raise ValueError(f"box {values} is empty")
        return box
    raise ValueError("zoom needs `crop` (a region name) or `box` [x1, y1, x2, y2]")


def global_caption(width: int, height: int, view_w: int, view_h: int, image: int | None = None) -> str:
    """Caption of the global view (parsed back by the reader; readable by any VLM).

    `image` (1-based) names which image of the message it shows, when there are several.
    """
    prefix = "Global view" if image is None else f"Image {image}, global view"
    return (
        f"{prefix}: region [0.000, 0.000, 1.000, 1.000] of the {width}x{height} original image, "
        f"shown at {view_w}x{view_h} px."
    )


def crop_caption(box: Box, width: int, height: int, view_w: int, view_h: int, index: int | None = None,
                 image: int | None = None) -> str:
    """Caption of a crop: which region of the original it shows and at what size (and of which image)."""
    prefix = f"Crop {index}" if index is not None else "Crop"
    if image is not None:
        prefix = f"Image {image}, {prefix.lower()}"
    return f"{prefix}: region {box.describe()} of the {width}x{height} original image, shown at {view_w}x{view_h} px."
