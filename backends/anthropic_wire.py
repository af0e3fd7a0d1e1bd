"""Pure converters between the neutral messages and Anthropic Messages-API JSON (no network, no SDK needed).

Wire rules this follows (https://docs.anthropic.com/en/api/messages):

- system text goes in the top-level `system` parameter, not in `messages`;
- images are `{"type": "image", "source": {"type": "base64", "media_type", "data"}}` blocks; an image's
  label is a text block right before it;
- assistant tool calls are `tool_use` blocks; a tool result is a `tool_result` block in a USER message,
  and its content may hold text AND image blocks;
- consecutive messages of one role are merged into one turn, and in a user turn the `tool_result` blocks
  come first (the API rejects text before them);
- empty text blocks are rejected by the API, so they are never sent.
"""

from __future__ import annotations

from typing import Any

from .image_codec import decode_base64_image, encode_image
from .messages import ImagePart, Message, Part, Reply, TextPart, ToolCall, ToolSpec, Usage


def to_anthropic_messages(
    messages: list[Message], image_format: str = "png"
) -> tuple[str | None, list[dict[str, Any]]]:
    """Convert a conversation to `(system, messages)` for `messages.create` (system is None when absent)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "system":
            if msg.images:
                raise ValueError("Anthropic system prompts cannot hold images; put them in a user message")
            if msg.text:
                system.append(msg.text)
            continue
        if msg.role == "user":
            role, blocks = "user", _blocks(msg.content, image_format)
        elif msg.role == "assistant":
            if msg.images:
                raise ValueError("Anthropic assistant messages cannot hold images")
            role = "assistant"
            blocks = _blocks(msg.content, image_format) + [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in msg.tool_calls
            ]
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise ValueError("a tool message needs the tool_call_id of the call it answers")
            role, blocks = "user", [_tool_result(msg, image_format)]
        else:
            raise ValueError(f"unknown message role {msg.role!r}")
        if not blocks:
            continue  # an empty turn carries nothing and the API rejects empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Stable sort: tool results first, everything else after, each group in its original order.
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return ("\n\n".join(system) if system else None), turns


def _blocks(parts: list[Part], image_format: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        else:
            if part.label:
                blocks.append({"type": "text", "text": part.label})
            media_type, data = encode_image(part.image, image_format)
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    return blocks


def _tool_result(msg: Message, image_format: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.tool_call_id}
    content = _blocks(msg.content, image_format)
    if content:
        block["content"] = content
    return block


def to_anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Convert tool specs to the `tools` list of a messages request."""
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


def from_anthropic_messages(messages: list[dict[str, Any]], system: Any = None) -> list[Message]:
    """Convert a messages-API request (`messages`, and `system` as a string or text blocks) to neutral messages.

    A user turn's `tool_result` blocks become `tool` messages (named after the `tool_use` they answer),
    followed by a user message with the turn's other blocks. Images must be base64 (URL sources raise
    ValueError: remote images are never fetched). Thinking and other non-content blocks are skipped.
    """
    out: list[Message] = []
    if system:
        out.append(Message("system", _parts(system)))
    names: dict[str, str] = {}
    for raw in messages:
        role, content = raw.get("role"), raw.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if role == "assistant":
            calls = [ToolCall(b["id"], b["name"], dict(b.get("input") or {})) for b in blocks if b.get("type") == "tool_use"]
            names.update({c.id: c.name for c in calls})
            out.append(Message("assistant", _parts([b for b in blocks if b.get("type") != "tool_use"]), tool_calls=calls))
        elif role == "user":
            rest = []
            for block in blocks:
                if block.get("type") == "tool_result":
                    call_id = block.get("tool_use_id")
                    out.append(Message("tool", _parts(block.get("content")), tool_call_id=call_id,
                                       name=names.get(call_id or "")))
                else:
                    rest.append(block)
            if rest:
                out.append(Message("user", _parts(rest)))
        else:
            raise ValueError(f"unsupported Anthropic message role {role!r}")
    return out


def _parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    parts: list[Part] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(block.get("text", "")))
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "url":
                raise ValueError(f"remote image URLs are not fetched ({str(source.get('url'))[:80]!r}); "
                                 "pass the image as a PIL image or base64 data")
            if source.get("type") != "base64":
                raise ValueError(f"unsupported image source type {source.get('type')!r}; expected base64")
            parts.append(ImagePart(decode_base64_image(source["data"])))
        # thinking, redacted_thinking, documents...: not part of the neutral vocabulary; skipped.
    return parts


def reply_from_message(message: Any) -> Reply:
    """Turn an SDK `Message` into a `Reply`: text blocks joined, `tool_use` blocks as `ToolCall`s, usage.

    Input tokens include cache reads and writes, which Anthropic reports apart from `input_tokens`:
    all of them were read by the model.
    """
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input or {})))
    usage = Usage()
    if message.usage is not None:
        u = message.usage
        extra = (getattr(u, "cache_creation_input_tokens", None) or 0) + (getattr(u, "cache_read_input_tokens", None) or 0)
        usage = Usage(input_tokens=u.input_tokens + extra, output_tokens=u.output_tokens)
    # Joined with "" because the API splits one passage into several text blocks (e.g. around citations).
    return Reply(text="".join(texts), tool_calls=calls, usage=usage, model=message.model, raw=message)
