"""Pure converters between the neutral messages and OpenAI chat-completions JSON (no network, no SDK needed).

Wire rules this follows (https://platform.openai.com/docs/api-reference/chat/create):

- images are `image_url` parts holding base64 data URLs, with `detail` when the part sets it; an image's
  label is sent as a text part right before it;
- assistant tool calls are `{"id", "type": "function", "function": {"name", "arguments": JSON string}}`;
- a `tool` message is `{"role": "tool", "tool_call_id", "content": text}`. Tool messages cannot carry
  images, so a tool result's images go into a user message after the run of tool messages (the API wants
  every call of an assistant turn answered before any other message);
- a message, part or tool that carries its own OpenAI JSON (`wire`, a dict tool) goes out unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from .base import BackendError
from .image_codec import ImageLimits, encode_within, from_data_url
from .messages import ImagePart, Message, Part, RawPart, Reply, TextPart, ToolCall, ToolSpec, Usage, Wire, own_wire

PROVIDER = "openai"

# OpenAI's documented image input limits ("Image input requirements"), one place:
# https://platform.openai.com/docs/guides/images-vision#image-input-requirements
# "Up to 50 MB total payload size per request; Up to 500 individual image inputs per request"
# and, in the same table, 20 MB an image (PNG, JPEG, WEBP, non-animated GIF).
OPENAI_IMAGE_LIMITS = ImageLimits(max_image_bytes=20 * 1024 * 1024, max_images_bytes=50 * 1024 * 1024,
                                  max_images=500)

#: Text sent as a tool message's content when the result is images only (the API wants some content).
TOOL_IMAGES_FOLLOW = "The result images follow in the next message."


def to_openai_messages(messages: list[Message], image_format: str = "png",
                       limits: ImageLimits | None = None) -> list[dict[str, Any]]:
    """Convert a conversation to the `messages` list of a chat-completions request.

    Images the conversation makes (views, crops) are encoded as `image_format`, falling back to smaller
    encodings where one would break `limits` (see `image_codec.encode_within`); images that carry their
    own wire block are sent as they came.
    """
    encoder = ImageEncoder(image_format, limits or OPENAI_IMAGE_LIMITS, messages)
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # user messages holding tool-result images, sent after the tool run
    for msg in messages:
        if msg.role != "tool" and pending:
            out.extend(pending)
            pending = []
        verbatim = own_wire(msg, PROVIDER)
        if verbatim is not None:
            out.append(verbatim)
        elif msg.role == "system":
            if msg.images:
                raise ValueError("OpenAI system messages cannot hold images; put them in a user message")
            out.append({"role": "system", "content": msg.text})
        elif msg.role == "user":
            out.append({"role": "user", "content": _user_content(msg.content, encoder)})
        elif msg.role == "assistant":
            out.append(_assistant(msg))
        elif msg.role == "tool":
            out.append(_tool(msg))
            if msg.images:
                pending.append(_tool_images_message(msg, encoder))
        else:
            raise ValueError(f"unknown message role {msg.role!r}")
    out.extend(pending)
    return out


class ImageEncoder:
    """Encodes the images a request makes, each within its share of the request's byte limits (images that
    carry their own wire block are sent as they came and are not counted)."""

    def __init__(self, image_format: str, limits: ImageLimits, messages: list[Message]):
        self.image_format = image_format
        made = sum(1 for m in messages if own_wire(m, PROVIDER) is None
                   for p in m.content if isinstance(p, ImagePart) and own_wire(p, PROVIDER) is None)
        self.max_bytes = limits.per_image_bytes(made)

    def data_url(self, image) -> str:
        media_type, data = encode_within(image, self.image_format, self.max_bytes)
        return f"data:{media_type};base64,{data}"


def _user_content(parts: list[Part], encoder: ImageEncoder) -> str | list[dict[str, Any]]:
    # Text-only messages go as a plain string: every OpenAI-compatible server accepts that form.
    if all(isinstance(p, TextPart) and p.wire is None for p in parts):
        return "\n".join(p.text for p in parts)
    content: list[dict[str, Any]] = []
    for part in parts:
        content.extend(_content_parts(part, encoder))
    return content


def _content_parts(part: Part, encoder: ImageEncoder) -> list[dict[str, Any]]:
    verbatim = own_wire(part, PROVIDER)
    if isinstance(part, RawPart):
        if verbatim is None:
            raise ValueError(f"a {part.wire.provider} block cannot be sent to OpenAI: {str(part.block)[:80]}")
        return [verbatim]
    if isinstance(part, TextPart):
        return [verbatim if verbatim is not None else {"type": "text", "text": part.text}]
    label = [{"type": "text", "text": part.label}] if part.label else []
    if verbatim is not None:
        return label + [verbatim]
    image_url: dict[str, Any] = {"url": encoder.data_url(part.image)}
    if part.detail:
        image_url["detail"] = part.detail
    return label + [{"type": "image_url", "image_url": image_url}]


def _assistant(msg: Message) -> dict[str, Any]:
    if msg.images:
        raise ValueError("OpenAI assistant messages cannot hold images")
    wire: dict[str, Any] = {"role": "assistant", "content": msg.text or (None if msg.tool_calls else "")}
    if msg.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in msg.tool_calls
        ]
    return wire


def _tool(msg: Message) -> dict[str, Any]:
    if not msg.tool_call_id:
        raise ValueError("a tool message needs the tool_call_id of the call it answers")
    text = msg.text or (TOOL_IMAGES_FOLLOW if msg.images else "")
    return {"role": "tool", "tool_call_id": msg.tool_call_id, "content": text}


def _tool_images_message(msg: Message, encoder: ImageEncoder) -> dict[str, Any]:
    who = f"{msg.name} call {msg.tool_call_id}" if msg.name else f"tool call {msg.tool_call_id}"
    content: list[dict[str, Any]] = [{"type": "text", "text": f"Images returned by the {who}:"}]
    for part in msg.images:
        content.extend(_content_parts(part, encoder))
    return {"role": "user", "content": content}


def to_openai_tools(tools: list[ToolSpec | dict[str, Any]]) -> list[dict[str, Any]]:
    """Convert tool specs to the `tools` list of a chat-completions request (dicts go as they are)."""
    return [t if isinstance(t, dict) else {"type": "function", "function": _function(t)} for t in tools]


def _function(tool: ToolSpec) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    if tool.strict:
        function["strict"] = True
    return function


def from_openai_messages(messages: list[dict[str, Any]], keep_wire: bool = False) -> list[Message]:
    """Convert a chat-completions `messages` list (as a user would pass it) to neutral messages.

    Accepts string content and part lists; images must be base64 data URLs (remote http(s) URLs raise
    ValueError: they are never fetched). A tool message gets its `name` from the call it answers.
    `developer` messages become system messages.

    `keep_wire=True` (the drop-in wrapper) keeps each message's and part's own JSON on it, so that sent
    back to OpenAI they go out unchanged; images are then decoded only when something asks for their
    pixels, and parts this module does not model (audio, files, remote image URLs) become `RawPart`s
    instead of raising.
    """
    names: dict[str, str] = {}
    out: list[Message] = []
    for index, raw in enumerate(messages):
        if not isinstance(raw, dict):
            raise ValueError(f"messages[{index}] is a {type(raw).__name__}, not a message object")
        role = raw.get("role")
        wire = Wire(PROVIDER, raw) if keep_wire else None

        def parts(as_role: str, raw=raw) -> list[Part]:
            return _parts_from_content(raw.get("content"), as_role, keep_wire)

        if role in ("system", "developer"):
            out.append(Message("system", parts("system"), wire=wire))
        elif role == "user":
            out.append(Message("user", parts("user"), wire=wire))
        elif role == "assistant":
            calls = [_tool_call_from_wire(c) for c in raw.get("tool_calls") or []]
            names.update({c.id: c.name for c in calls})
            out.append(Message("assistant", parts("assistant"), tool_calls=calls, wire=wire))
        elif role == "tool":
            call_id = raw.get("tool_call_id")
            out.append(Message("tool", parts("tool"), tool_call_id=call_id, name=names.get(call_id or ""),
                               wire=wire))
        else:
            raise ValueError(f"unsupported OpenAI message role {role!r}")
    return out


def _parts_from_content(content: Any, role: str, keep_wire: bool = False) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise ValueError(f"the content of a {role} message must be a string or a list of parts")
    parts: list[Part] = []
    for item in content:
        if not isinstance(item, dict):
            raise ValueError(f"a content part of a {role} message is a {type(item).__name__}, not an object")
        wire = Wire(PROVIDER, item) if keep_wire else None
        kind = item.get("type")
        if kind in ("text", "input_text"):
            parts.append(TextPart(item.get("text", ""), wire=wire))
        elif kind == "image_url":
            spec = item.get("image_url")
            url, detail = (spec, None) if isinstance(spec, str) else ((spec or {}).get("url"), (spec or {}).get("detail"))
            if not isinstance(url, str):
                raise ValueError(f"an image_url part of a {role} message has no url string")
            if keep_wire and not url.startswith("data:"):
                parts.append(RawPart(wire))  # a remote URL: never fetched here, sent on as it is
            elif keep_wire:
                parts.append(ImagePart(detail=detail, wire=wire, loader=lambda url=url: from_data_url(url)))
            else:
                parts.append(ImagePart(from_data_url(url), detail=detail))
        elif kind == "refusal":
            parts.append(TextPart(item.get("refusal", ""), wire=wire))
        elif keep_wire:
            parts.append(RawPart(wire))
        else:
            raise ValueError(f"unsupported content part type {kind!r} in a {role} message")
    return parts


def _tool_call_from_wire(call: dict[str, Any]) -> ToolCall:
    fn = call.get("function") or {}
    return ToolCall(id=call.get("id", ""), name=fn.get("name", ""), arguments=parse_arguments(fn.get("arguments")))


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Parse tool-call arguments; JSON that is malformed or not an object is kept as `{"_raw": text}`.

    Models do emit broken JSON now and then; the caller decides what to do with it, we must not crash.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def reply_from_completion(completion: Any) -> Reply:
    """Turn an SDK `ChatCompletion` into a `Reply` (text, tool calls, usage, model; `raw` is the SDK object)."""
    if not completion.choices:
        raise BackendError("the OpenAI response holds no choices")
    message = completion.choices[0].message
    calls = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is not None:
            calls.append(ToolCall(id=call.id, name=function.name, arguments=parse_arguments(function.arguments)))
        else:  # a custom (free-text) tool call: keep its raw input
            custom = call.custom
            calls.append(ToolCall(id=call.id, name=custom.name, arguments={"_raw": custom.input}))
    usage = Usage()
    if completion.usage is not None:
        details = getattr(completion.usage, "prompt_tokens_details", None)
        usage = Usage(
            input_tokens=completion.usage.prompt_tokens,
            output_tokens=completion.usage.completion_tokens,
            image_tokens=getattr(details, "image_tokens", None) if details is not None else None,
        )
    text = message.content or ""
    if not text and not calls and getattr(message, "refusal", None):
        text = message.refusal
    return Reply(text=text, tool_calls=calls, usage=usage, model=completion.model, raw=completion)
