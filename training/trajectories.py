"""AwaRes-style tool-use trajectories: the conversations an open VLM is fine-tuned on to call `zoom`.

For each item: the low-resolution global view and the question; then, if the item needs zoom (the
judge's label, or the dataset's `needs_zoom`), one assistant turn calling `zoom` on the oracle's crop
(the smallest crop of the crop set that holds the evidence, or a box around it when none does), the tool
results (caption + high-resolution crop), and the answer; otherwise the answer right away.

Every message is built by the same code the `tool` strategy runs at inference (`TOOL_PROMPT`, the
`zoom_tool` schema, `view_parts` for the captioned global view, `zoom_result` for the crop), so a trained
model sees exactly what `ZoomWrapper(strategy="tool")` will give it. `to_chat_example` then renders the
neutral messages with the transformers backend's own converter (`backends.hf_wire.to_chat`).

    traj = build_trajectory(image, "What is the invoice number?", "A1234", needs_zoom=True,
                            evidence=[Box(0.6, 0.7, 0.7, 0.74)])
    example = to_chat_example(traj)   # {"messages": [...], "images": [...], "tools": [...]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from backends.hf_wire import to_chat, tool_schemas
from backends.messages import Message, TextPart, ToolCall, ToolSpec
from cropper.geometry import Box, crop_set, union_all
from cropper.planning import plan_views
from cropper.strategies import StrategyConfig, view_parts, zoom_result
from cropper.tokens import TokenModel, token_model_for
from cropper.zoom_tool import TOOL_PROMPT, zoom_tool

from .oracle import best_crop

__all__ = ["Trajectory", "oracle_zoom_calls", "build_trajectory", "to_chat_example", "default_config"]


def default_config(crops: str | None = "awares9", allow_boxes: bool = True, global_side: int = 1024) -> StrategyConfig:
    """The tool strategy's settings as `ZoomWrapper` builds them by default (AwaRes-9 names + free boxes)."""
    return StrategyConfig(global_side=global_side, crops=crop_set(crops) if crops else {}, allow_boxes=allow_boxes)


@dataclass
class Trajectory:
    """One training conversation in neutral messages, plus what the oracle decided."""

    messages: list[Message]
    tools: list[ToolSpec]
    needs_zoom: bool
    calls: list[dict[str, Any]] = field(default_factory=list)
    item_id: str | None = None

    @property
    def answer(self) -> str:
        return self.messages[-1].text


def oracle_zoom_calls(evidence: Sequence[Box], crops: dict[str, Box], allow_boxes: bool = True,
                      coverage: float = 0.9, pad: float = 0.02) -> list[dict[str, Any]]:
    """The `zoom` arguments that show the evidence, fewest calls first.

    One call when one named crop holds all of it (the smallest such); else one call per evidence box
    (its smallest covering crop); a box that no named crop holds gets a free `box` call around it (when
    boxes are allowed; else the crop covering most of it). No evidence: no calls.
    """
    evidence = [Box.from_list(e) if not isinstance(e, Box) else e for e in evidence]
    if not evidence:
        return []
    if crops:
        whole = best_crop(evidence, crops, coverage)
        if whole is not None:
            return [{"crop": whole}]
    calls: list[dict[str, Any]] = []
    for box in evidence:
        name = best_crop([box], crops, coverage) if crops else None
        if name is None and allow_boxes:
            call = {"box": [round(v, 3) for v in box.pad(absolute=pad).to_list()]}
        elif name is None:
            call = {"crop": best_crop([box], crops, coverage, fallback=True)}
        else:
            call = {"crop": name}
        if call not in calls:
            calls.append(call)
    if len(calls) > 1 and allow_boxes and not crops:
        return [{"box": [round(v, 3) for v in union_all(evidence).pad(absolute=pad).to_list()]}]
    return calls


def build_trajectory(image: Image.Image, question: str, answer: str, *, needs_zoom: bool,
                     evidence: Sequence[Box] | None = None, config: StrategyConfig | None = None,
                     token_model: TokenModel | None = None, item_id: str | None = None) -> Trajectory:
    """The conversation teaching the model to answer `question` about `image` (zooming when needed).

    `token_model` is the target model's (default Qwen2.5-VL's), so the global view and crops get the
    sizes they will have at inference. An item that needs zoom but has no evidence cannot be taught
    where to look: it becomes a direct answer, and `needs_zoom` stays True so the caller can skip it.
    """
    config = config or default_config()
    token_model = token_model or token_model_for("qwen2.5-vl")
    tool = zoom_tool(config.crops or None, allow_boxes=config.allow_boxes)
    plan = plan_views(image, [], token_model, global_side=config.global_side, budget=config.budget)
    messages = [Message("system", [TextPart(TOOL_PROMPT)]),
                Message("user", [*view_parts(image, plan.global_view, []), TextPart(question)])]
    calls = oracle_zoom_calls(evidence or [], config.crops, config.allow_boxes) if needs_zoom else []
    if calls:
        tool_calls = [ToolCall(id=f"call_{i}", name="zoom", arguments=args) for i, args in enumerate(calls, 1)]
        messages.append(Message("assistant", [], tool_calls=tool_calls))
        spent = plan.tokens
        for call in tool_calls:
            left = None if config.budget is None else config.budget - spent
            result, view = zoom_result(call, image, token_model, config, left)
            if view is None:  # the oracle's call is always valid; only a spent budget refuses it
                raise ValueError(f"item {item_id!r}: zoom {call.arguments} refused: {result[0].text}")
            spent += token_model.count(*view.size)
            messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
    messages.append(Message("assistant", [TextPart(answer)]))
    return Trajectory(messages=messages, tools=[tool], needs_zoom=needs_zoom, calls=calls, item_id=item_id)


def to_chat_example(trajectory: Trajectory, native_tools: bool = True) -> dict[str, Any]:
    """The trajectory as a TRL conversational example: `messages`, `images` (in placeholder order), `tools`.

    `native_tools=True` for chat templates that render tools themselves (Qwen3-VL, our fine-tuned
    checkpoints), False for the stock Qwen2.5-VL template (calls written in Hermes form as text); see
    `backends.hf_wire`.
    """
    chat, images = to_chat(trajectory.messages, trajectory.tools, native_tools=native_tools)
    return {"messages": chat, "images": images, "tools": tool_schemas(trajectory.tools) if native_tools else None}
