"""The four ways to show an image to a model: `low`, `full`, `policy` and `tool`.

Each strategy turns a `ZoomRequest` (a conversation and the message whose images get zoomed; `ask`
makes one from an image and a question) into one or more `generate` calls on a backend and returns an
`Answer`. Only the zoomed images change: each is replaced by its views (global view, crops) in place, and
every other turn goes to the model as it was. With several images in the message, each gets its own
global view and crops, and the `zoom` tool takes the image's number.
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
from .planning import Plan, fit_crop, plan_views, view_tokens
from .tokens import TokenModel
from .zoom_request import ZoomRequest
from .zoom_tool import TOOL_PROMPT, crop_caption, global_caption, parse_zoom_arguments, parse_zoom_image, zoom_tool

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
    awares_prompt: str = "plugin"  # with protocol "awares": the plugin's system prompt or the README's ("readme")


def run_strategy(
    strategy: str,
    backend: Backend,
    token_model: TokenModel,
    image: Image.Image | None,
    question: str | None,
    config: StrategyConfig,
    cropper: Cropper | None = None,
    prefix: list[Message] | None = None,
    options: dict[str, Any] | None = None,
    request: ZoomRequest | None = None,
) -> Answer:
    """Answer `question` about `image` (or the whole `request`, when given) with `strategy` on `backend`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if request is None:
        if image is None or question is None:
            raise ValueError("run_strategy needs an image and a question, or a ZoomRequest")
        request = ZoomRequest.single(image, question, prefix)
    started = time.perf_counter()
    options = dict(options or {})
    if strategy == "full":
        answer = _full(backend, token_model, request, options)
    elif strategy == "low":
        plans = _plans(request, token_model, config, None)
        answer = _single(backend, token_model, request, plans, None, "low", options)
    elif strategy == "policy":
        if cropper is None:
            raise ValueError("strategy 'policy' needs a cropper (an object with propose(image, question))")
        answer = _policy(backend, token_model, request, config, cropper, options)
    elif config.protocol == "awares":
        from .awares import run_awares

        if len(request.images) != 1:
            raise ValueError("the AwaRes protocol zooms one image per request; this one holds "
                             f"{len(request.images)}")
        answer = run_awares(backend, token_model, request.images[0], request.question, config.budget,
                            config.crop_side, request.messages[:request.target], options, prompt=config.awares_prompt)
    else:
        answer = _tool_loop(backend, token_model, request, config, options)
    answer.latency_s = time.perf_counter() - started
    return answer


def _full(backend, token_model, request: ZoomRequest, options) -> Answer:
    """The request as it is: every image at its own size (what the plain model is sent)."""
    reply = backend.generate(request.messages, tools=request.tools or None, **options)
    sizes = [img.size for img in request.images]
    # A strip past the model's aspect limit is counted at the size it could be sent at (`fit_aspect`).
    tokens = sum(token_model.count(*token_model.fit_aspect(w, h), d) for (w, h), d in zip(sizes, request.details, strict=True))
    pixels = sum(effective_pixels(token_model, w, h, d) for (w, h), d in zip(sizes, request.details, strict=True))
    return Answer(text=reply.text.strip(), strategy="full", visual_tokens=tokens, pixels=pixels, view_sizes=sizes,
                  input_tokens=reply.usage.input_tokens, output_tokens=reply.usage.output_tokens, replies=[reply])


def _shares(budget: int | None, count: int) -> list[int | None]:
    """`budget` split over `count` images (None stays None)."""
    if budget is None:
        return [None] * count
    return [budget // count + (1 if i < budget % count else 0) for i in range(count)]


def _plans(request: ZoomRequest, token_model, config: StrategyConfig, boxes: list[list[Box]] | None) -> list[Plan]:
    """A view plan per image: its global view plus its boxes, each image within its share of the budget."""
    plans = []
    carry = 0  # what one image's plan leaves unused goes to the next
    for i, (image, share) in enumerate(zip(request.images, _shares(config.budget, len(request.images)), strict=True)):
        share = None if share is None else share + carry
        plan = plan_views(image, boxes[i] if boxes else [], token_model, global_side=config.global_side,
                          crop_side=config.crop_side, budget=share, detail=request.details[i])
        carry = 0 if share is None else max(0, share - plan.tokens)
        plans.append(plan)
    return plans


def _single(backend, token_model, request: ZoomRequest, plans: list[Plan], note: str | None, strategy: str,
            options) -> Answer:
    views = [view_parts(img, p.global_view, p.crops, number=_number(request, i), detail=request.details[i])
             for i, (img, p) in enumerate(zip(request.images, plans, strict=True))]
    reply = backend.generate(request.render(views, note), tools=request.tools or None, **options)
    answer = Answer(text=reply.text.strip(), strategy=strategy, input_tokens=reply.usage.input_tokens,
                    output_tokens=reply.usage.output_tokens, replies=[reply])
    for i, plan in enumerate(plans):
        _count_views(answer, token_model, plan.views, request.details[i])
        answer.crops += [c.box for c in plan.crops]
        answer.crop_images += [i] * len(plan.crops)
    return answer


def _count_views(answer: Answer, token_model, views: list[View], detail: str | None) -> None:
    answer.view_sizes += [v.size for v in views]
    answer.visual_tokens += sum(view_tokens(v, token_model, detail) for v in views)
    answer.pixels += sum(effective_pixels(token_model, *v.size, detail) for v in views)


def _number(request: ZoomRequest, index: int) -> int | None:
    """The 1-based image number captions show, or None when the message holds one image."""
    return index + 1 if len(request.image_parts) > 1 else None


def _policy(backend, token_model, request: ZoomRequest, config: StrategyConfig, cropper: Cropper, options) -> Answer:
    """The cropper's crops in one call; while the model abstains, the next-best crops in the same conversation."""
    question = request.question
    shares = _shares(config.budget, len(request.images))
    boxes = [list(cropper.propose(img, question, k=config.k, budget=share))
             for img, share in zip(request.images, shares, strict=True)]
    plans = _plans(request, token_model, config, boxes)
    note = POLICY_PROMPT if config.prompts and any(p.crops for p in plans) else None
    answer = _single(backend, token_model, request, plans, note, "policy", options)
    views = [view_parts(img, p.global_view, p.crops, number=_number(request, i), detail=request.details[i])
             for i, (img, p) in enumerate(zip(request.images, plans, strict=True))]
    messages = request.render(views, note)  # the conversation a retry continues
    more = getattr(cropper, "propose_more", None)
    # A reply that asks for a tool is not an abstention (and continuing it without tool results is invalid).
    while (more is not None and answer.rounds < config.abstain_retries and not answer.replies[-1].tool_calls
           and is_abstention(answer.text)):
        budget_left = None if config.budget is None else config.budget - answer.visual_tokens
        if budget_left is not None and budget_left <= 0:
            answer.notes.append("abstained; no visual-token budget left for more crops")
            break
        parts: list[Part] = []
        added: list[tuple[int, View]] = []
        for i, (img, share) in enumerate(zip(request.images, _shares(budget_left, len(request.images)), strict=True)):
            shown = [b for b, at in zip(answer.crops, answer.crop_images, strict=True) if at == i]
            extra = plan_views(img, list(more(img, question, shown, k=config.k, budget=share)), token_model,
                               global_side=None, crop_side=config.crop_side, budget=share,
                               detail=request.details[i]).crops
            first = len(answer.crops) + len(added) + 1
            parts += view_parts(img, None, extra, first=first, number=_number(request, i), detail=request.details[i])
            added += [(i, v) for v in extra]
        if not added:
            answer.notes.append("abstained; the cropper has nothing more to show")
            break
        # Continue the conversation (the model keeps what it saw) with only the new crops: the views it
        # was shown are not sent as new images, so visual tokens count each view once, as in `tool`.
        messages.append(answer.replies[-1].as_message())
        prompt = MORE_PROMPT if config.prompts else ""
        messages.append(Message("user", [*parts, TextPart(f"{prompt}\n{question}".strip())]))
        reply = backend.generate(messages, tools=request.tools or None, **options)
        answer.replies.append(reply)
        answer.text = reply.text.strip()
        answer.rounds += 1
        for i, view in added:
            _count_views(answer, token_model, [view], request.details[i])
            answer.crops.append(view.box)
            answer.crop_images.append(i)
        answer.input_tokens = add_usage(answer.input_tokens, reply.usage.input_tokens)
        answer.output_tokens = add_usage(answer.output_tokens, reply.usage.output_tokens)
        answer.notes.append(f"abstained; retried with {len(added)} more crop(s)")
    return answer


def view_parts(image: Image.Image, glob: View | None, crops: list[View], first: int = 1, number: int | None = None,
               detail: str | None = None) -> list[Part]:
    """The captioned image parts of a global view and crops of `image` (crops numbered from `first`).

    `number` is the image's 1-based number in its message when there are several (None: the only one);
    `detail` is the OpenAI detail they are sent with (the caller's own, for the image they come from).
    The same captions are used in tool-use training, so a trained model sees what it will be given.
    """
    parts: list[Part] = []
    if glob is not None:
        parts.append(ImagePart(glob.image, detail=detail,
                               label=global_caption(image.width, image.height, *glob.size, image=number)))
    for i, view in enumerate(crops, first):
        caption = crop_caption(view.box, image.width, image.height, *view.size, index=i, image=number)
        parts.append(ImagePart(view.image, detail=detail, label=caption))
    return parts


def effective_pixels(token_model: TokenModel, w: int, h: int, detail: str | None = None) -> int:
    """Pixels the provider processes for a `w` x `h` image (after its own resize)."""
    ew, eh = token_model.effective_size(*token_model.fit_aspect(w, h), detail)
    return ew * eh


def _tool_loop(backend, token_model, request: ZoomRequest, config: StrategyConfig, options) -> Answer:
    plans = _plans(request, token_model, config, None)
    spent = sum(p.tokens for p in plans)
    tool = zoom_tool(config.crops or None, allow_boxes=config.allow_boxes, images=len(request.images),
                     strict=getattr(backend, "needs_strict_tools", False))
    views = [view_parts(img, p.global_view, [], number=_number(request, i), detail=request.details[i])
             for i, (img, p) in enumerate(zip(request.images, plans, strict=True))]
    system = [Message("system", [TextPart(TOOL_PROMPT)])] if config.prompts else []
    messages: list[Message] = [*system, *request.render(views)]
    answer = Answer(text="", strategy="tool")
    for i, plan in enumerate(plans):
        _count_views(answer, token_model, plan.views, request.details[i])
    # The caller's own tool_choice stands in every round, except that it may not force a call in the last.
    callers_choice = options.pop("tool_choice", None)
    reply = Reply()
    for round_index in range(config.max_rounds + 1):
        budget_left = None if config.budget is None else config.budget - spent
        can_zoom = round_index < config.max_rounds and (budget_left is None or budget_left > 0)
        # The last round keeps the tool definitions (the history holds calls to them) and forbids a call:
        # OpenAI `tool_choice: "none"` ("the model will not call any tool and instead generates a message",
        # https://platform.openai.com/docs/api-reference/chat/create); Anthropic `{"type": "none"}`
        # ("`none` prevents Claude from using any tools", .../agents-and-tools/tool-use/define-tools), which
        # the Anthropic backend spells from "none". Requests holding tool_use blocks must define tools.
        choice = callers_choice if can_zoom or callers_choice not in (None, "auto") else "none"
        round_options = {**options, **({"tool_choice": choice} if choice is not None else {})}
        reply = backend.generate(messages, tools=[*request.tools, tool], **round_options)
        answer.replies.append(reply)
        answer.input_tokens = add_usage(answer.input_tokens, reply.usage.input_tokens)
        answer.output_tokens = add_usage(answer.output_tokens, reply.usage.output_tokens)
        if not reply.tool_calls or not can_zoom:
            break
        if any(call.name != "zoom" for call in reply.tool_calls):
            # A call to one of the caller's own tools: the caller runs it; the reply goes back to them.
            answer.notes.append("the model called the caller's own tool; its reply is returned for the caller to run")
            break
        answer.rounds += 1
        messages.append(reply.as_message())
        for call in reply.tool_calls:
            left = None if config.budget is None else config.budget - spent
            result, view, at = _zoom_in(call, request, token_model, config, left)
            messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
            if view is None:
                answer.notes.append(result[0].text if result and isinstance(result[0], TextPart) else "zoom failed")
                continue
            answer.crops.append(view.box)
            answer.crop_images.append(at)
            _count_views(answer, token_model, [view], request.details[at])
            spent += view_tokens(view, token_model, request.details[at])
    answer.text = reply.text.strip()
    if reply.tool_calls and not answer.text and reply.tool_calls[0].name == "zoom":
        answer.notes.append("the model still asked to zoom after the last round")
    return answer


def _zoom_in(call, request: ZoomRequest, token_model, config: StrategyConfig,
             budget_left: int | None) -> tuple[list[Part], View | None, int]:
    """A zoom call on one of the request's images: (tool result parts, the view or None, the image index)."""
    try:
        at = parse_zoom_image(call.arguments, len(request.images))
    except ValueError as exc:
        return [TextPart(f"error: {exc}")], None, 0
    result, view = zoom_result(call, request.images[at], token_model, config, budget_left,
                               number=_number(request, at), detail=request.details[at])
    return result, view, at


def zoom_result(call, image: Image.Image, token_model: TokenModel, config: StrategyConfig, budget_left: int | None,
                number: int | None = None, detail: str | None = None) -> tuple[list[Part], View | None]:
    """What one `zoom` call returns: the captioned crop (and the view), or an error text the model can act on.

    Shared with tool-use training (`training.tool_env`, `training.trajectories`), so a trained model sees
    exactly what inference gives it. `number` names the image when a message holds several.
    """
    if call.name != "zoom":
        return [TextPart(f"error: unknown tool {call.name!r}; the only tool is `zoom`")], None
    try:
        box = parse_zoom_arguments(call.arguments, config.crops or None)
    except ValueError as exc:
        return [TextPart(f"error: {exc}")], None
    view = fit_crop(image, box, token_model, budget_left, config.crop_side, detail)
    if view is None:
        return [TextPart("error: the visual-token budget is spent; answer from what you have seen")], None
    # The caption travels once, as the image's label (a text block right before it).
    caption = crop_caption(box, image.width, image.height, *view.size, image=number)
    return [ImagePart(view.image, detail=detail, label=caption)], view
