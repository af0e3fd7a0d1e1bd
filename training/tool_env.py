"""The GRPO side of tool-use training: a `zoom` environment for TRL and the rewards of a tool conversation.

`ZoomEnvironment` is what `GRPOTrainer(environment_factory=...)` gets: TRL makes one per rollout, calls
`reset(**row)` with the dataset row (we need its `image` path), exposes the public method `zoom` as the
tool, and returns its result (the caption and the high-resolution crop, as content blocks) to the model.
The crop is made by the same `zoom_result` as at inference, and the method's docstring is generated from
the inference `zoom_tool` schema, so the model is offered the same tool in training as in use.

Rewards are plain functions `f(completions, **batch) -> list[float]` (TRL's convention):

    tool_answer_reward    the judge's score of the final answer (exact/ANLS/relaxed/semantic)
    tool_cost_reward      - alpha_use * [any zoom] - lam * (number of zooms, or crop area) - alpha_miss * [needed, none]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.messages import ImagePart, TextPart, ToolCall
from cropper.images import load_image
from cropper.strategies import StrategyConfig, zoom_result
from cropper.tokens import TokenModel, token_model_for
from cropper.zoom_tool import zoom_tool

from .judge import score

__all__ = ["ZoomEnvironment", "make_environment_factory", "ToolCostWeights", "tool_answer_reward",
           "tool_cost_reward", "completion_calls", "completion_answer"]


def _zoom_docstring(config: StrategyConfig) -> str:
    # transformers builds the tool schema from the docstring (Google style; "(choices: [...])" -> enum).
    import json

    spec = zoom_tool(config.crops or None, allow_boxes=config.allow_boxes)
    props = spec.parameters["properties"]
    lines = [spec.description, "", "Args:"]
    if "crop" in props:
        lines.append(f"    crop: {props['crop']['description']} (choices: {json.dumps(props['crop']['enum'])})")
    if "box" in props:
        lines.append(f"    box: {props['box']['description']}")
    return "\n".join(lines)


class ZoomEnvironment:
    """One rollout's image and the crops the model asked for. Subclass per config via `make_environment_factory`."""

    config: StrategyConfig = StrategyConfig()
    token_model: TokenModel | None = None

    def __init__(self) -> None:
        self.image = None
        self.crops: list[Any] = []
        self.errors: list[str] = []

    def reset(self, full_image: Any = None, image: Any = None, **row: Any) -> None:
        """Load this rollout's full-resolution image: the row's `full_image` (a path or PIL image), else `image`.

        (GRPO rows keep the low-res global view in TRL's `images` column and the original in `full_image`.)
        """
        source = full_image if full_image is not None else image
        if source is None:
            raise ValueError("the dataset row has no `full_image` (or `image`) for the zoom environment")
        self.image = load_image(source)
        self.crops = []
        self.errors = []
        return None

    def zoom(self, crop: str | None = None, box: list[float] | None = None) -> list[dict[str, Any]]:
        # The docstring is set per config by make_environment_factory (the inference schema's wording).
        if self.image is None:
            raise RuntimeError("zoom before reset: the environment has no image")
        arguments = {k: v for k, v in (("crop", crop), ("box", box)) if v is not None}
        call = ToolCall(id=f"call_{len(self.crops) + 1}", name="zoom", arguments=arguments)
        token_model = self.token_model or token_model_for("qwen2.5-vl")
        result, view = zoom_result(call, self.image, token_model, self.config, None)
        if view is None:
            message = result[0].text if result and isinstance(result[0], TextPart) else "zoom failed"
            self.errors.append(message)
            raise ValueError(message.removeprefix("error: "))  # TRL hands {"error": ...} back to the model
        self.crops.append(view.box)
        blocks: list[dict[str, Any]] = []
        for part in result:
            if isinstance(part, TextPart):
                blocks.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                if part.label:  # the caption, as the backends send it: a text block right before the image
                    blocks.append({"type": "text", "text": part.label})
                blocks.append({"type": "image", "image": part.image})
        return blocks


def make_environment_factory(config: StrategyConfig | None = None, token_model: TokenModel | None = None):
    """A `ZoomEnvironment` subclass bound to `config` (crop set, boxes, crop size) for `environment_factory`."""
    from .trajectories import default_config

    config = config or default_config()

    def zoom(self, crop: str | None = None, box: list[float] | None = None) -> list[dict[str, Any]]:
        return ZoomEnvironment.zoom(self, crop=crop, box=box)

    zoom.__doc__ = _zoom_docstring(config)
    return type("ZoomEnvironment", (ZoomEnvironment,), {"config": config, "token_model": token_model, "zoom": zoom})


# --- rewards ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCostWeights:
    """Weights of the crop cost: `lam` per zoom call (`per="call"`) or per unit of crop area (`per="area"`)."""

    alpha_use: float = 0.05
    lam: float = 0.05
    alpha_miss: float = 0.1
    per: str = "call"


def _messages(completion: Any) -> list[dict[str, Any]]:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return list(completion)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def completion_calls(completion: Any) -> list[dict[str, Any]]:
    """The zoom calls in a completion (assistant `tool_calls`, or `<tool_call>` blocks written as text)."""
    from backends.hf_wire import parse_tool_calls

    calls = []
    for message in _messages(completion):
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function", call)
            if function.get("name") == "zoom":
                calls.append(function.get("arguments") or {})
        if not message.get("tool_calls"):
            _, parsed = parse_tool_calls(_text(message.get("content")))
            calls.extend(c.arguments for c in parsed if c.name == "zoom")
    return calls


def completion_answer(completion: Any) -> str:
    """The final answer: the text of the last assistant message (tool-call markup removed)."""
    from backends.hf_wire import parse_tool_calls

    for message in reversed(_messages(completion)):
        if message.get("role") == "assistant":
            text, _ = parse_tool_calls(_text(message.get("content")))
            return text.strip()
    return ""


def tool_answer_reward(completions: Sequence[Any], answers: Sequence[Sequence[str]],
                       metric: str | Sequence[str] = "auto", **_: Any) -> list[float]:
    """The judge's score (0..1) of each completion's final answer against its item's answers.

    `metric` is one judge metric for all, or one per completion (TRL passes a dataset's `metric` column so).
    """
    metrics = [metric] * len(completions) if isinstance(metric, str) else list(metric)
    return [score(completion_answer(c), refs, m) for c, refs, m in zip(completions, answers, metrics, strict=True)]


def tool_cost_reward(completions: Sequence[Any], needs_zoom: Sequence[bool], environments: Sequence[Any] | None = None,
                     weights: ToolCostWeights = ToolCostWeights(), **_: Any) -> list[float]:
    """Minus the cost of the zooms each completion made (or of the zoom it should have made).

    With `per="area"` the crop area comes from the rollout's environment (`environments`, which TRL passes
    to reward functions when an `environment_factory` is used).
    """
    out = []
    for i, (completion, needed) in enumerate(zip(completions, needs_zoom, strict=True)):
        calls = completion_calls(completion)
        used = bool(calls)
        if weights.per == "area":
            env = environments[i] if environments is not None else None
            amount = sum(b.area for b in getattr(env, "crops", [])) if env is not None else 0.0
        else:
            amount = len(calls)
        out.append(-(weights.alpha_use * used + weights.lam * amount + weights.alpha_miss * (bool(needed) and not used)))
    return out
