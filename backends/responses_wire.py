"""Pure converters between the neutral messages and OpenAI's Responses API (`responses.create`) JSON.

Wire rules this follows (https://platform.openai.com/docs/api-reference/responses/create):

- `input` is a list of items: messages `{"role", "content": [input_text | input_image ...]}`, the model's
  `function_call` items (`call_id`, `name`, `arguments` as a JSON string) and our `function_call_output`
  items, whose `output` may be a list of `input_text` / `input_image` parts: the zoom tool's crops go back
  natively, not in a user message as on chat completions;
- `input_image` is `{"type": "input_image", "image_url": data URL, "detail": ...}`; an image's label is an
  `input_text` part right before it;
- function tools are `{"type": "function", "name", "description", "parameters", "strict"}`;
- items that carry their own JSON (`wire`: the caller's items, the model's reasoning items) go out unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from .image_codec import from_data_url
from .messages import ImagePart, Message, Part, RawPart, Reply, TextPart, ToolCall, ToolSpec, Usage, Wire, own_wire
from .openai_wire import OPENAI_IMAGE_LIMITS, ImageEncoder, parse_arguments

PROVIDER = "openai-responses"


def to_responses_input(messages: list[Message], image_format: str = "png") -> list[dict[str, Any]]:
    """Convert a conversation to the `input` list of a Responses request."""
    encoder = ImageEncoder(image_format, OPENAI_IMAGE_LIMITS, messages)
    items: list[dict[str, Any]] = []
    for msg in messages:
        verbatim = own_wire(msg, PROVIDER)
        if verbatim is not None:
            items.append(verbatim)
        elif msg.role in ("system", "user"):
            items.append({"role": msg.role, "content": _parts(msg.content, encoder)})
        elif msg.role == "assistant":
            items += [p.block for p in msg.content if isinstance(p, RawPart) and own_wire(p, PROVIDER) is not None]
            if msg.text:
                items.append({"role": "assistant", "content": msg.text})
            items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": json.dumps(c.arguments)}
                      for c in msg.tool_calls]
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise ValueError("a tool message needs the tool_call_id of the call it answers")
            output: Any = _parts(msg.content, encoder) if msg.images else msg.text
            items.append({"type": "function_call_output", "call_id": msg.tool_call_id, "output": output})
        else:
            raise ValueError(f"unknown message role {msg.role!r}")
    return items


def _parts(parts: list[Part], encoder: ImageEncoder) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        verbatim = own_wire(part, PROVIDER)
        if isinstance(part, RawPart):
            if verbatim is None:
                raise ValueError(f"a {part.wire.provider} block cannot be sent to the Responses API")
            out.append(verbatim)
        elif isinstance(part, TextPart):
            out.append(verbatim if verbatim is not None else {"type": "input_text", "text": part.text})
        else:
            if part.label:
                out.append({"type": "input_text", "text": part.label})
            out.append(verbatim if verbatim is not None else
                       {"type": "input_image", "image_url": encoder.data_url(part.image), "detail": part.detail or "auto"})
    return out


def to_responses_tools(tools: list[ToolSpec | dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool specs as Responses function tools (dicts go as they are)."""
    return [t if isinstance(t, dict) else {"type": "function", "name": t.name, "description": t.description,
                                           "parameters": t.parameters, "strict": t.strict} for t in tools]


def from_responses_input(items: Any) -> list[Message]:
    """The caller's `input` (a string or a list of items) as neutral messages, each keeping its own JSON.

    Images in messages are decoded only when asked for; remote image URLs, file ids and item types this
    module does not model stay `RawPart`s / whole items, sent back as they came.
    """
    if isinstance(items, str):
        return [Message("user", [TextPart(items)])]
    if not isinstance(items, list):
        raise ValueError("the Responses `input` must be a string or a list of items")
    out: list[Message] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"input[{index}] is a {type(item).__name__}, not an item object")
        wire = Wire(PROVIDER, item)
        kind, role = item.get("type", "message"), item.get("role")
        if kind == "message" and role in ("user", "system", "developer", "assistant"):
            neutral_role = "system" if role == "developer" else role
            out.append(Message(neutral_role, _parts_from(item.get("content")), wire=wire))
        elif kind == "function_call":
            call = ToolCall(item.get("call_id", ""), item.get("name", ""), parse_arguments(item.get("arguments")))
            out.append(Message("assistant", [], tool_calls=[call], wire=wire))
        elif kind == "function_call_output":
            out.append(Message("tool", [], tool_call_id=item.get("call_id"), wire=wire))
        else:  # reasoning, web search calls, item references...: kept whole
            out.append(Message("assistant" if kind != "message" else "user", [RawPart(wire)], wire=wire))
    return out


def _parts_from(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    parts: list[Part] = []
    for block in content if isinstance(content, list) else []:
        wire = Wire(PROVIDER, block)
        kind = block.get("type") if isinstance(block, dict) else None
        url = block.get("image_url") if kind == "input_image" else None
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(block.get("text", ""), wire=wire))
        elif isinstance(url, str) and url.startswith("data:"):
            parts.append(ImagePart(detail=block.get("detail"), wire=wire, loader=lambda url=url: from_data_url(url)))
        else:
            parts.append(RawPart(wire))
    return parts


def reply_from_response(response: Any) -> Reply:
    """An SDK `Response` as a `Reply`: its output text, `function_call` items as calls, reasoning kept."""
    calls, kept = [], []
    for item in response.output or []:
        if item.type == "function_call":
            calls.append(ToolCall(id=item.call_id, name=item.name, arguments=parse_arguments(item.arguments)))
        elif item.type == "reasoning":
            # Reasoning items go back with the function calls they led to, as the API asks of stateless use.
            kept.append(Wire(PROVIDER, item.model_dump(mode="json", exclude_none=True)))
    usage = Usage()
    if response.usage is not None:
        usage = Usage(input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens)
    return Reply(text=response.output_text or "", tool_calls=calls, usage=usage, model=response.model, raw=response,
                 thinking=kept)
