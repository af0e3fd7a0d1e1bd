"""The four ways to show an image to a model: `low`, `full`, `policy` and `tool`.

Each strategy turns (image, question) into one or more `generate` calls on a backend and returns an
`Answer`. `prefix` holds the messages that come before the image message (a system prompt, earlier
turns): the drop-in wrapper uses it to keep the user's conversation intact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from backends.base import Backend
from backends.messages import ImagePart, Message, Part, Reply, TextPart

from .abstain import is_abstention
from .answer import Answer, add_usage
from .croppers import Cropper
from .geometry import Box
from .images import View
from .planning import fit_crop, plan_views, view_tokens
from .tokens import TokenModel
from .zoom_tool import TOOL_PROMPT, crop_caption, global_caption, parse_zoom_arguments, zoom_tool

STRATEGIES = ("low", "full", "policy", "tool")

MORE_PROMPT = (
    "Here are more high-resolution crops of the same image (each caption says which region). Answer with "
    "just the answer."
)

POLICY_PROMPT = (
    "The first image is a low-resolution view of the whole image; the next images are high-resolution "
    "crops of regions of it (each caption says which). Answer with just the answer."
)


@dataclass
class StrategyConfig:
    """Knobs shared by the strategies (see `ZoomWrapper` for what each means)."""

    global_side: int = 1024
    crop_side: int | None = None
    budget: int | None = None
    k: int | None = None
    max_rounds: int = 3
    abstain_retries: int = 2  # `policy`: how many times to show the next-best crops when the model abstains
    crops: dict[str, Box] = field(default_factory=dict)
    allow_boxes: bool = True
    prompts: bool = True
    protocol: str = "tools"  # how `tool` asks for crops: "tools" (a zoom tool call) or "awares" (GET_CROPS text)


def run_strategy(
    strategy: str,
    backend: Backend,
    token_model: TokenModel,
    image: Image.Image,
    question: str,
    config: StrategyConfig,
    cropper: Cropper | None = None,
    prefix: list[Message] | None = None,
    options: dict[str, Any] | None = None,
) -> Answer:
    """Answer `question` about `image` with `strategy` on `backend`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    started = time.perf_counter()
    prefix = list(prefix or [])
    options = dict(options or {})
    if strategy == "full":
        answer = _single(backend, token_model, prefix, [ImagePart(image)], question, [], strategy, options,
                         sizes=[image.size])
    elif strategy == "low":
        plan = plan_views(image, [], token_model, global_side=config.global_side, budget=config.budget)
        answer = _single(backend, token_model, prefix, _parts(image, plan.global_view, []), question, [],
                         strategy, options, sizes=[v.size for v in plan.views])
    elif strategy == "policy":
        if cropper is None:
            raise ValueError("strategy 'policy' needs a cropper (an object with propose(image, question))")
        answer = _policy(backend, token_model, image, question, config, cropper, prefix, options)
    elif config.protocol == "awares":
        from .awares import run_awares

        answer = run_awares(backend, token_model, image, question, config.budget, config.crop_side, prefix, options)
    else:
        answer = _tool_loop(backend, token_model, image, question, config, prefix, options)
    answer.latency_s = time.perf_counter() - started
    return answer


def _policy(backend, token_model, image, question, config: StrategyConfig, cropper: Cropper, prefix,
            options) -> Answer:
    """The cropper's crops in one call; while the model abstains, the next-best crops in the same conversation."""
    boxes = list(cropper.propose(image, question, k=config.k, budget=config.budget))
    plan = plan_views(image, boxes, token_model, global_side=config.global_side, crop_side=config.crop_side,
                      budget=config.budget)
    parts = _parts(image, plan.global_view, plan.crops)
    text = question if not (plan.crops and config.prompts) else f"{POLICY_PROMPT}\n{question}"
    answer = _single(backend, token_model, prefix, parts, text, [c.box for c in plan.crops], "policy", options,
                     sizes=[v.size for v in plan.views])
    messages = [*prefix, Message("user", [*parts, TextPart(text)])]  # the conversation a retry continues
    more = getattr(cropper, "propose_more", None)
    # A reply that asks for a tool is not an abstention (and continuing it without tool results is invalid).
    while (more is not None and answer.rounds < config.abstain_retries and not answer.replies[-1].tool_calls
           and is_abstention(answer.text)):
        budget_left = None if config.budget is None else config.budget - answer.visual_tokens
        if budget_left is not None and budget_left <= 0:
            answer.notes.append("abstained; no visual-token budget left for more crops")
            break
        boxes = list(more(image, question, list(answer.crops), k=config.k, budget=budget_left))
        extra = plan_views(image, boxes, token_model, global_side=None, crop_side=config.crop_side,
                           budget=budget_left).crops
        if not extra:
            answer.notes.append("abstained; the cropper has nothing more to show" if not boxes else
                                "abstained; no visual-token budget left for more crops")
            break
        # Continue the conversation (the model keeps what it saw) with only the new crops: the views it
        # was shown are not sent as new images, so visual tokens count each view once, as in `tool`.
        messages.append(answer.replies[-1].as_message())
        first = len(answer.crops) + 1
        prompt = MORE_PROMPT if config.prompts else ""
        parts = [*_parts(image, None, extra, first=first), TextPart(f"{prompt}\n{question}".strip())]
        messages.append(Message("user", parts))
        reply = backend.generate(messages, **options)
        answer.replies.append(reply)
        answer.text = reply.text.strip()
        answer.rounds += 1
        answer.crops += [v.box for v in extra]
        answer.view_sizes += [v.size for v in extra]
        answer.visual_tokens += sum(view_tokens(v, token_model) for v in extra)
        answer.pixels += sum(_effective_pixels(token_model, *v.size) for v in extra)
        answer.input_tokens = add_usage(answer.input_tokens, reply.usage.input_tokens)
        answer.output_tokens = add_usage(answer.output_tokens, reply.usage.output_tokens)
        answer.notes.append(f"abstained; retried with {len(extra)} more crop(s)")
    return answer


def _parts(image: Image.Image, glob: View | None, crops: list[View], first: int = 1) -> list[Part]:
    parts: list[Part] = []
    if glob is not None:
        parts.append(ImagePart(glob.image, label=global_caption(image.width, image.height, *glob.size)))
    for i, view in enumerate(crops, first):
        parts.append(ImagePart(view.image, label=crop_caption(view.box, image.width, image.height, *view.size, index=i)))
    return parts


def _single(backend, token_model, prefix, parts, question, crops, strategy, options, sizes) -> Answer:
    message = Message("user", [*parts, TextPart(question)])
    reply = backend.generate([*prefix, message], **options)
    tokens = sum(token_model.count(w, h) for w, h in sizes)
    pixels = sum(_effective_pixels(token_model, w, h) for w, h in sizes)
    return Answer(
        text=reply.text.strip(), strategy=strategy, crops=crops, visual_tokens=tokens, pixels=pixels,
        rounds=0, view_sizes=list(sizes), input_tokens=reply.usage.input_tokens,
        output_tokens=reply.usage.output_tokens, replies=[reply],
    )


def _effective_pixels(token_model: TokenModel, w: int, h: int) -> int:
    ew, eh = token_model.effective_size(w, h)
    return ew * eh


def _tool_loop(backend, token_model, image, question, config: StrategyConfig, prefix, options) -> Answer:
    plan = plan_views(image, [], token_model, global_side=config.global_side, budget=config.budget)
    glob = plan.global_view
    spent = plan.tokens
    tool = zoom_tool(config.crops or None, allow_boxes=config.allow_boxes)
    system = [Message("system", [TextPart(TOOL_PROMPT)])] if config.prompts else []
    messages: list[Message] = [*system, *prefix, Message("user", [*_parts(image, glob, []), TextPart(question)])]
    sizes = [glob.size] if glob else []
    crops: list[Box] = []
    replies: list[Reply] = []
    notes: list[str] = []
    input_tokens = output_tokens = None
    rounds = 0
    reply = Reply()
    for round_index in range(config.max_rounds + 1):
        budget_left = None if config.budget is None else config.budget - spent
        can_zoom = round_index < config.max_rounds and (budget_left is None or budget_left > 0)
        reply = backend.generate(messages, tools=[tool] if can_zoom else None, **options)
        replies.append(reply)
        input_tokens = add_usage(input_tokens, reply.usage.input_tokens)
        output_tokens = add_usage(output_tokens, reply.usage.output_tokens)
        if not reply.tool_calls or not can_zoom:
            break
        rounds += 1
        messages.append(reply.as_message())
        for call in reply.tool_calls:
            result, view = _zoom_result(call, image, token_model, config, None if config.budget is None else config.budget - spent)
            messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
            if view is None:
                notes.append(result[0].text if result and isinstance(result[0], TextPart) else "zoom failed")
                continue
            crops.append(view.box)
            sizes.append(view.size)
            spent += view_tokens(view, token_model)
    text = reply.text.strip()
    if reply.tool_calls and not text:
        notes.append("the model still asked to zoom after the last round")
    return Answer(
        text=text, strategy="tool", crops=crops, visual_tokens=spent,
        pixels=sum(_effective_pixels(token_model, w, h) for w, h in sizes), rounds=rounds, view_sizes=sizes,
        input_tokens=input_tokens, output_tokens=output_tokens, replies=replies, notes=notes,
    )


def _zoom_result(call, image, token_model, config: StrategyConfig, budget_left: int | None) -> tuple[list[Part], View | None]:
    if call.name != "zoom":
        return [TextPart(f"error: unknown tool {call.name!r}; the only tool is `zoom`")], None
    try:
        box = parse_zoom_arguments(call.arguments, config.crops or None)
    except ValueError as exc:
        return [TextPart(f"error: {exc}")], None
    view = fit_crop(image, box, token_model, budget_left, config.crop_side)
    if view is None:
        return [TextPart("error: the visual-token budget is spent; answer from what you have seen")], None
    caption = crop_caption(box, image.width, image.height, *view.size)
    return [TextPart(caption), ImagePart(view.image, label=caption)], view
