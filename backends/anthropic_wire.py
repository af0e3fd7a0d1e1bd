"""Pure converters between the neutral messages and Anthropic Messages-API JSON (no network, no SDK needed).

Wire rules this follows (https://docs.anthropic.com/en/api/messages):

- system text goes in the top-level `system` parameter, not in `messages`;
- images are `{"type": "image", "source": {"type": "base64", "media_type", "data"}}` blocks; an image's
  label is a text block right before it;
- assistant tool calls are `tool_use` blocks; a tool result is a `tool_result` block in a USER message,
  and its content may hold text AND image blocks;
- consecutive messages of one role are merged into one turn, and in a user turn the `tool_result` blocks
  come first (the API rejects text before them);
- empty text blocks are rejected by the API, so they are never sent;
- a message or block that carries its own Anthropic JSON (`wire`, a dict tool) goes out unchanged.
"""

from __future__ import annotations

from typing import Any

from .image_codec import ImageLimits, decode_base64_image, encode_within
from .messages import ImagePart, Message, Part, RawPart, Reply, TextPart, ToolCall, ToolSpec, Usage, Wire, own_wire

PROVIDER = "anthropic"

# Anthropic's documented image limits, one place: https://platform.claude.com/docs/en/build-with-claude/vision
# - 8000x8000 px an image; 2000x2000 px an image when one request holds more than 20 images;
# - a base64 image of at most 5 MB: the API page now gives 10 MB on the Claude API itself, but 5 MB on Bedrock
#   and Vertex, and the API's own error read "image exceeds 5 MB maximum: ... bytes > 5242880 bytes" (2025),
#   so 5 MB of base64 is the cap that holds everywhere;
# - 32 MB a request on the standard endpoints; 100 images a request (200k-context models; 600 on others).
ANTHROPIC_IMAGE_LIMITS = ImageLimits(max_image_bytes=5 * 1024 * 1024, max_images_bytes=30 * 1024 * 1024,
                                     max_images=100, max_side=8000, many_images=20, many_max_side=2000)


def to_anthropic_messages(
    messages: list[Message], image_format: str = "png", limits: ImageLimits | None = None,
) -> tuple[str | None, list[dict[str, Any]]]:
    """Convert a conversation to `(system, messages)` for `messages.create` (system is None when absent).

    Images the conversation makes are encoded within `limits` (default: Anthropic's documented ones);
    messages and blocks that carry their own Anthropic JSON (`wire`) go out unchanged.
    """
    limits = limits or ANTHROPIC_IMAGE_LIMITS
    images = sum(1 for m in messages for p in m.content if isinstance(p, ImagePart))
    made = sum(1 for m in messages if own_wire(m, PROVIDER) is None
               for p in m.content if isinstance(p, ImagePart) and own_wire(p, PROVIDER) is None)
    encode = _Encode(image_format, limits.per_image_bytes(made), limits.side_cap(images))
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for msg in messages:
        verbatim = own_wire(msg, PROVIDER)
        if msg.role == "system":
            if msg.images:
                raise ValueError("Anthropic system prompts cannot hold images; put them in a user message")
            if msg.text:
                system.append(msg.text)
            continue
        if verbatim is not None:
            role = verbatim.get("role")
            content = verbatim.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        elif msg.role == "user":
            role, blocks = "user", _blocks(msg.content, encode)
        elif msg.role == "assistant":
            if msg.images:
                raise ValueError("Anthropic assistant messages cannot hold images")
            role = "assistant"
            blocks = _blocks(msg.content, encode) + [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in msg.tool_calls
            ]
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise ValueError("a tool message needs the tool_call_id of the call it answers")
            role, blocks = "user", [_tool_result(msg, encode)]
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
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    return ("\n\n".join(system) if system else None), turns


class _Encode:
    def __init__(self, image_format: str, max_bytes: int | None, max_side: int | None):
        self.image_format, self.max_bytes, self.max_side = image_format, max_bytes, max_side

    def __call__(self, image) -> dict[str, Any]:
        media_type, data = encode_within(image, self.image_format, self.max_bytes, self.max_side)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _blocks(parts: list[Part], encode: _Encode) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        verbatim = own_wire(part, PROVIDER)
        if isinstance(part, RawPart):
            if verbatim is None:
                raise ValueError(f"a {part.wire.provider} block cannot be sent to Anthropic: {str(part.block)[:80]}")
            blocks.append(verbatim)
        elif isinstance(part, TextPart):
            if verbatim is not None:
                blocks.append(verbatim)
            elif part.text:
                blocks.append({"type": "text", "text": part.text})
        else:
            if part.label:
                blocks.append({"type": "text", "text": part.label})
            blocks.append(verbatim if verbatim is not None else encode(part.image))
    return blocks


def _tool_result(msg: Message, encode: _Encode) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.tool_call_id}
    content = _blocks(msg.content, encode)
    if content:
        block["content"] = content
    return block


def to_anthropic_tools(tools: list[ToolSpec | dict[str, Any]]) -> list[dict[str, Any]]:
    """Convert tool specs to the `tools` list of a messages request (dicts go as they are)."""
    return [t if isinstance(t, dict) else {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools]


def from_anthropic_messages(messages: list[dict[str, Any]], system: Any = None,
                            keep_wire: bool = False) -> list[Message]:
    """Convert a messages-API request (`messages`, and `system` as a string or text blocks) to neutral messages.

    A user turn's `tool_result` blocks become `tool` messages (named after the `tool_use` they answer),
    followed by a user message with the turn's other blocks. Images must be base64 (URL sources raise
    ValueError: remote images are never fetched). Thinking and other non-content blocks are skipped.

    `keep_wire=True` (the drop-in wrapper) keeps one neutral message per turn, each holding its own JSON
    (`wire`) so that it goes back to Anthropic unchanged; blocks this module does not model (`tool_result`,
    `thinking`, `document`, URL images...) are kept as `RawPart`s, and images are decoded only when
    something asks for their pixels.
    """
    out: list[Message] = []
    if system:
        out.append(Message("system", _parts(system)))
    names: dict[str, str] = {}
    for index, raw in enumerate(messages):
        if not isinstance(raw, dict):
            raise ValueError(f"messages[{index}] is a {type(raw).__name__}, not a message object")
        role, content = raw.get("role"), raw.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if any(not isinstance(b, dict) for b in blocks):
            raise ValueError(f"messages[{index}].content holds something that is not a content block")
        if role not in ("user", "assistant"):
            raise ValueError(f"unsupported Anthropic message role {role!r}")
        if keep_wire:
            calls = [ToolCall(b.get("id", ""), b.get("name", ""), dict(b.get("input") or {}))
                     for b in blocks if b.get("type") == "tool_use"]
            out.append(Message(role, _parts(blocks, keep_wire=True), tool_calls=calls, wire=Wire(PROVIDER, raw)))
        elif role == "assistant":
            calls = [ToolCall(b["id"], b["name"], dict(b.get("input") or {})) for b in blocks if b.get("type") == "tool_use"]
            names.update({c.id: c.name for c in calls})
            out.append(Message("assistant", _parts([b for b in blocks if b.get("type") != "tool_use"]), tool_calls=calls))
        else:
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
    return out


def _parts(content: Any, keep_wire: bool = False) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    parts: list[Part] = []
    for block in content:
        kind = block.get("type")
        wire = Wire(PROVIDER, block) if keep_wire else None
        if kind == "text":
            parts.append(TextPart(block.get("text", ""), wire=wire))
        elif kind == "image":
            source = block.get("source") or {}
            if keep_wire and source.get("type") == "base64" and isinstance(source.get("data"), str):
                parts.append(ImagePart(wire=wire, loader=lambda data=source["data"]: decode_base64_image(data)))
                continue
            if keep_wire:
                parts.append(RawPart(wire))  # a URL or file image: never fetched here, sent on as it is
                continue
            if source.get("type") == "url":
                raise ValueError(f"remote image URLs are not fetched ({str(source.get('url'))[:80]!r}); "
                                 "pass the image as a PIL image or base64 data")
            if source.get("type") != "base64":
                raise ValueError(f"unsupported image source type {source.get('type')!r}; expected base64")
            parts.append(ImagePart(decode_base64_image(source["data"])))
        elif keep_wire:
            parts.append(RawPart(wire))
        # else: thinking, redacted_thinking, documents...: not part of the neutral vocabulary; skipped.
    return parts


def reply_from_message(message: Any) -> Reply:
    """Turn an SDK `Message` into a `Reply`: text blocks joined, `tool_use` blocks as `ToolCall`s, usage.

    Input tokens include cache reads and writes, which Anthropic reports apart from `input_tokens`:
    all of them were read by the model.
    """
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[Wire] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input or {})))
        elif block.type in ("thinking", "redacted_thinking"):
            # Sent back exactly as returned, first in the turn, when the conversation goes on (tool use):
            # https://platform.claude.com/docs/en/build-with-claude/extended-thinking ("Include the complete
            # unmodified block back to the API"; a final assistant turn must start with a thinking block).
            thinking.append(Wire(PROVIDER, block.model_dump(mode="json", exclude_none=True)))
    usage = Usage()
    if message.usage is not None:
        u = message.usage
        extra = (getattr(u, "cache_creation_input_tokens", None) or 0) + (getattr(u, "cache_read_input_tokens", None) or 0)
        usage = Usage(input_tokens=u.input_tokens + extra, output_tokens=u.output_tokens)
    # Joined with "" because the API splits one passage into several text blocks (e.g. around citations).
    return Reply(text="".join(texts), tool_calls=calls, usage=usage, model=message.model, raw=message,
                 thinking=thinking)
