"""Pure converters between the neutral messages and a transformers chat-template conversation (no torch needed).

A processor's chat template takes messages whose `content` is a list of `{"type": "text", "text": ...}` and
`{"type": "image"}` items; the images themselves go to the processor separately, in the order their
placeholders appear. An image's label is a text item right before it.

Tools use the Hermes format Qwen models are trained on: a `# Tools` block listing OpenAI-style function
schemas inside `<tools></tools>` in the system prompt, calls written as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, results wrapped in `<tool_response>` blocks inside a
user turn. Two ways to get there, picked per model by `TransformersBackend` (see `template_handles_tools`):

- **native**: the template knows tools (Qwen3-VL, fine-tuned checkpoints, our tiny test model). Tools go to
  `apply_chat_template(tools=...)`, assistant calls in the `tool_calls` field, results as role "tool"
  messages whose content holds the images, so the template puts image placeholders inside the response.
- **hermes**: the template only knows text and images. The stock Qwen2.5-VL / Qwen2-VL templates ignore
  `tools`, drop `tool_calls` and print a role "tool" turn verbatim, so the model would never see the tool.
  We then write, as plain text and image items, exactly what Qwen's tool templates produce: the tools block
  in the system message, calls as `<tool_call>` text in the assistant turn, and each run of tool results as
  one user turn of `<tool_response>` blocks holding the images.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from PIL import Image

from .messages import ImagePart, Message, Part, TextPart, ToolCall, ToolSpec

#: The system prompt Qwen's templates use when the conversation has none.
DEFAULT_SYSTEM = "You are a helpful assistant."

_TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)

# Non-greedy up to the closing tag; a block the generation cut off before `</tool_call>` still counts when its
# JSON is complete (some checkpoints stop right after the closing brace).
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)


def tool_schemas(tools: list[ToolSpec] | None) -> list[dict[str, Any]]:
    """OpenAI-style function schemas, the form `apply_chat_template(tools=...)` expects."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools or []
    ]


def hermes_tools_block(schemas: list[dict[str, Any]]) -> str:
    """The `# Tools` section Qwen's templates append to the system prompt (same JSON form as Jinja's tojson)."""
    return _TOOLS_INTRO + "".join("\n" + json.dumps(s, ensure_ascii=False) for s in schemas) + _TOOLS_OUTRO


def hermes_call_text(call: ToolCall) -> str:
    """One call as the model writes it."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def to_chat(
    messages: list[Message], tools: list[ToolSpec] | None = None, native_tools: bool = True
) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """Convert a conversation to (chat-template messages, images in placeholder order).

    With `native_tools`, tool calls and tool results keep their own fields and roles and `tools` is left for
    `apply_chat_template(tools=...)`; otherwise they are written out in the Hermes format (see the module
    docstring) and the tools block goes into the system message.
    """
    images: list[Image.Image] = []
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        msg = messages[i]
        if msg.role in ("system", "user"):
            out.append({"role": msg.role, "content": _content(msg.content, images)})
        elif msg.role == "assistant":
            out.append(_assistant(msg, images, native_tools))
        elif msg.role == "tool":
            if native_tools:
                out.append(_native_tool(msg, images))
            else:
                # The API wants every call of an assistant turn answered in a row; Qwen renders such a run as
                # one user turn, so gather it here.
                run = []
                while i < len(messages) and messages[i].role == "tool":
                    run.append(messages[i])
                    i += 1
                out.append({"role": "user", "content": _tool_responses(run, images)})
                continue
        else:
            raise ValueError(f"unknown message role {msg.role!r}")
        i += 1
    if tools and not native_tools:
        _add_tools_to_system(out, tool_schemas(tools))
    return out, images


def _content(parts: list[Part], images: list[Image.Image]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            items.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            if part.label:
                items.append({"type": "text", "text": part.label})
            items.append({"type": "image"})
            # Processors assume opaque RGB; a crop of an RGBA or palette image would otherwise fail there.
            images.append(part.image if part.image.mode == "RGB" else part.image.convert("RGB"))
        else:
            raise TypeError(f"unknown message part {type(part).__name__}")
    return items


def _assistant(msg: Message, images: list[Image.Image], native_tools: bool) -> dict[str, Any]:
    if native_tools or not msg.tool_calls:
        # Some templates index content[0] (SmolVLM's), so an empty reply keeps one empty text item.
        content = _content(msg.content, images) or ([] if msg.tool_calls else [{"type": "text", "text": ""}])
        wire: dict[str, Any] = {"role": "assistant", "content": content}
        if msg.tool_calls:
            wire["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in msg.tool_calls
            ]
        return wire
    # Qwen's templates put the calls after the text, each on its own line.
    content = _content(msg.content, images)
    calls = "\n".join(hermes_call_text(c) for c in msg.tool_calls)
    content.append({"type": "text", "text": ("\n" if msg.text else "") + calls})
    return {"role": "assistant", "content": content}


def _native_tool(msg: Message, images: list[Image.Image]) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": "tool", "content": _content(msg.content, images)}
    if msg.tool_call_id:
        wire["tool_call_id"] = msg.tool_call_id
    if msg.name:
        wire["name"] = msg.name
    return wire


def _tool_responses(run: list[Message], images: list[Image.Image]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for k, msg in enumerate(run):
        items.append({"type": "text", "text": ("\n" if k else "") + "<tool_response>\n"})
        items.extend(_content(msg.content, images))
        items.append({"type": "text", "text": "\n</tool_response>"})
    return items


def _add_tools_to_system(out: list[dict[str, Any]], schemas: list[dict[str, Any]]) -> None:
    if out and out[0]["role"] == "system":
        out[0]["content"].append({"type": "text", "text": "\n\n" + hermes_tools_block(schemas)})
    else:
        out.insert(0, {"role": "system", "content": [{"type": "text", "text": DEFAULT_SYSTEM + "\n\n" + hermes_tools_block(schemas)}]})


def template_handles_tools(render: Callable[..., str]) -> bool:
    """Whether a chat template renders tools, assistant `tool_calls` and images inside role "tool" messages.

    `render(conversation, tools=...)` applies the template. We render a probe conversation with made-up names
    and look for them in the output, and render it again without the tool result's image to see that the
    image made a difference (placeholder tokens differ per model). A template that raises (some reject role
    "tool") does not handle tools.
    """
    def probe(with_image: bool) -> str:
        result = [{"type": "image"}] if with_image else []
        conversation = [
            {"role": "user", "content": [{"type": "text", "text": "probe"}]},
            {"role": "assistant", "content": [], "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "probe_call_fn", "arguments": {"a": 1}}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "name": "probe_call_fn",
             "content": [*result, {"type": "text", "text": "probe result"}]},
        ]
        tool = {"type": "function", "function": {"name": "probe_offered_fn", "description": "probe",
                                                 "parameters": {"type": "object", "properties": {}}}}
        return render(conversation, tools=[tool])

    try:
        text, without_image = probe(True), probe(False)
    except Exception:  # noqa: BLE001 - any template error means "not natively"
        return False
    return all(name in text for name in ("probe_offered_fn", "probe_call_fn", "probe result")) and text != without_image


def parse_tool_calls(text: str, first_id: int = 1) -> tuple[str, list[ToolCall]]:
    """Split a completion into (text outside the calls, Hermes tool calls).

    Call ids are `call_<n>` counting from `first_id`. A block whose JSON does not parse, or has no name, is
    not a call: it stays in the text, so the caller sees what the model wrote.
    """
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _TOOL_CALL.finditer(text):
        parsed = _parse_call(match.group(1))
        if parsed is None:
            continue
        name, arguments = parsed
        calls.append(ToolCall(id=f"call_{first_id + len(calls)}", name=name, arguments=arguments))
        kept.append(text[last:match.start()])
        last = match.end()
    kept.append(text[last:])
    return "".join(kept).strip(), calls


def _parse_call(body: str) -> tuple[str, dict[str, Any]] | None:
    try:
        obj = json.loads(body.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    # Some checkpoints write "parameters", some an arguments JSON string (OpenAI's form).
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return None
    return obj["name"], arguments
