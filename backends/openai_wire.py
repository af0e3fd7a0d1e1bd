"""Pure converters between the neutral messages and OpenAI chat-completions JSON (no network, no SDK needed).

Wire rules this follows (https://platform.openai.com/docs/api-reference/chat/create):

- images are `image_url` parts holding base64 data URLs, with `detail` when the part sets it; an image's
  label is sent as a text part right before it;
- assistant tool calls are `{"id", "type": "function", "function": {"name", "arguments": JSON string}}`;
- a `tool` message is `{"role": "tool", "tool_call_id", "content": text}`. Tool messages cannot carry
  images, so a tool result's images go into a user message after the run of tool messages (the API wants
  every call of an assistant turn answered before any other message).
"""

from __future__ import annotations

import json
from typing import Any

from .base import BackendError
from .image_codec import from_data_url, to_data_url
from .messages import ImagePart, Message, Part, Reply, TextPart, ToolCall, ToolSpec, Usage

#: Text sent as a tool message's content when the result is images only (the API wants some content).
TOOL_IMAGES_FOLLOW = "The result images follow in the next message."


def to_openai_messages(messages: list[Message], image_format: str = "png") -> list[dict[str, Any]]:
    """Convert a conversation to the `messages` list of a chat-completions request."""
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # user messages holding tool-result images, sent after the tool run
    for msg in messages:
        if msg.role != "tool" and pending:
            out.extend(pending)
            pending = []
        if msg.role == "system":
            if msg.images:
                raise ValueError("OpenAI system messages cannot hold images; put them in a user message")
            out.append({"role": "system", "content": msg.text})
        elif msg.role == "user":
            out.append({"role": "user", "content": _user_content(msg.content, image_format)})
        elif msg.role == "assistant":
            out.append(_assistant(msg))
        elif msg.role == "tool":
            out.append(_tool(msg))
            if msg.images:
                pending.append(_tool_images_message(msg, image_format))
        else:
            raise ValueError(f"unknown message role {msg.role!r}")
    out.extend(pending)
    return out


def _user_content(parts: list[Part], image_format: str) -> str | list[dict[str, Any]]:
    # Text-only messages go as a plain string: every OpenAI-compatible server accepts that form.
    if all(isinstance(p, TextPart) for p in parts):
        return "\n".join(p.text for p in parts)
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        else:
            content.extend(_image_parts(part, image_format))
    return content


def _image_parts(part: ImagePart, image_format: str) -> list[dict[str, Any]]:
    image_url: dict[str, Any] = {"url": to_data_url(part.image, image_format)}
    if part.detail:
        image_url["detail"] = part.detail
    label = [{"type": "text", "text": part.label}] if part.label else []
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


def _tool_images_message(msg: Message, image_format: str) -> dict[str, Any]:
    who = f"{msg.name} call {msg.tool_call_id}" if msg.name else f"tool call {msg.tool_call_id}"
    content: list[dict[str, Any]] = [{"type": "text", "text": f"Images returned by the {who}:"}]
    for part in msg.images:
        content.extend(_image_parts(part, image_format))
    return {"role": "user", "content": content}


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Convert tool specs to the `tools` list of a chat-completions request."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def from_openai_messages(messages: list[dict[str, Any]]) -> list[Message]:
    """Convert a chat-completions `messages` list (as a user would pass it) to neutral messages.

    Accepts string content and part lists; images must be base64 data URLs (remote http(s) URLs raise
    ValueError: they are never fetched). A tool message gets its `name` from the call it answers.
    `developer` messages become system messages.
    """
    names: dict[str, str] = {}
    out: list[Message] = []
    for raw in messages:
        role = raw.get("role")
        if role in ("system", "developer"):
            out.append(Message("system", _parts_from_content(raw.get("content"), role="system")))
        elif role == "user":
            out.append(Message("user", _parts_from_content(raw.get("content"), role="user")))
        elif role == "assistant":
            calls = [_tool_call_from_wire(c) for c in raw.get("tool_calls") or []]
            names.update({c.id: c.name for c in calls})
            out.append(Message("assistant", _parts_from_content(raw.get("content"), role="assistant"),
                               tool_calls=calls))
        elif role == "tool":
            call_id = raw.get("tool_call_id")
            out.append(Message("tool", _parts_from_content(raw.get("content"), role="tool"),
                               tool_call_id=call_id, name=names.get(call_id or "")))
        else:
            raise ValueError(f"unsupported OpenAI message role {role!r}")
    return out


def _parts_from_content(content: Any, role: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    parts: list[Part] = []
    for item in content:
        kind = item.get("type")
        if kind in ("text", "input_text"):
            parts.append(TextPart(item.get("text", "")))
        elif kind == "image_url":
            spec = item["image_url"]
            url, detail = (spec, None) if isinstance(spec, str) else (spec["url"], spec.get("detail"))
            parts.append(ImagePart(from_data_url(url), detail=detail))
        elif kind == "refusal":
            parts.append(TextPart(item.get("refusal", "")))
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
