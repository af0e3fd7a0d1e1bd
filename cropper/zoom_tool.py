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


def zoom_tool(crops: dict[str, Box] | None = None, allow_boxes: bool = True) -> ToolSpec:
    """The `zoom` tool: by crop name (from `crops`), by free box, or both."""
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
    return ToolSpec(
        name="zoom",
        description="Look at a region of the original image at high resolution. Give "
        + (" either `crop` (a named region) or `box`." if crops and allow_boxes else ("`crop`." if crops else "`box`.")),
        parameters={"type": "object", "properties": props},
    )


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


def global_caption(width: int, height: int, view_w: int, view_h: int) -> str:
    """Caption of the global view (parsed back by the reader; readable by any VLM)."""
    return (
        f"Global view: region [0.000, 0.000, 1.000, 1.000] of the {width}x{height} original image, "
        f"shown at {view_w}x{view_h} px."
    )


def crop_caption(box: Box, width: int, height: int, view_w: int, view_h: int, index: int | None = None) -> str:
    """Caption of a crop: which region of the original it shows and at what size."""
    prefix = f"Crop {index}" if index is not None else "Crop"
    return f"{prefix}: region {box.describe()} of the {width}x{height} original image, shown at {view_w}x{view_h} px."
