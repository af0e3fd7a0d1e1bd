"""Request checks the fake servers apply, mirroring the 400s the real APIs give.

Written independently of `backends/*_wire.py` (these read the documented rules, not our converters), so a
converter bug shows up as a 400 from the fake just as it would from the real service. Each function returns
a problem description, or None when the request is acceptable.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image

_MEDIA = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def decode_b64_image(data: str) -> Image.Image:
    """Decode base64 image bytes (ValueError when they are not an image)."""
    try:
        raw = base64.b64decode(data, validate=True)
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (binascii.Error, OSError, ValueError) as exc:
        raise ValueError(f"invalid image data ({exc})") from exc
    return img


def decode_data_url(url: str) -> Image.Image:
    """Decode a `data:image/...;base64,...` URL; ValueError for anything else."""
    header, sep, payload = url.partition(",")
    if not (url.startswith("data:image/") and sep and header.endswith(";base64")):
        raise ValueError(f"not a base64 image data URL: {url[:40]!r}")
    img = decode_b64_image(payload)
    if header[len("data:"):-len(";base64")] != _MEDIA.get(img.format or ""):
        raise ValueError(f"data URL says {header} but holds {img.format}")
    return img


# ---- OpenAI chat completions -------------------------------------------------------------------------


def openai_problem(body: Any) -> str | None:
    """Why OpenAI would reject this chat-completions body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "'messages' must be a non-empty array"
    open_calls: set[str] = set()
    for i, msg in enumerate(msgs):
        role = msg.get("role")
        if open_calls and role != "tool":
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}")
        problem = _openai_message_problem(msg, i)
        if problem:
            return problem
        if role == "assistant":
            open_calls = {c["id"] for c in msg.get("tool_calls") or []}
        elif role == "tool":
            if msg.get("tool_call_id") not in open_calls:
                return (f"Invalid parameter: messages[{i}] with role 'tool' must be a response to a preceding message "
                        "with 'tool_calls'")
            open_calls.discard(msg["tool_call_id"])
    if open_calls:
        return f"tool_call_ids without response messages: {sorted(open_calls)}"
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if tool.get("type") != "function" or not isinstance(fn.get("name"), str):
            return "each tool needs type 'function' and a function name"
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            return "tool parameters must be a JSON schema object"
    return None


def _openai_message_problem(msg: dict, i: int) -> str | None:
    role, content = msg.get("role"), msg.get("content")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        return f"Invalid value for messages[{i}].role: {role!r}"
    if role == "assistant" and content is None and not msg.get("tool_calls"):
        return f"messages[{i}]: assistant content is required unless tool_calls is set"
    if content is not None and not isinstance(content, (str, list)):
        return f"messages[{i}].content must be a string or an array of parts"
    for part in content if isinstance(content, list) else []:
        kind = part.get("type")
        if kind == "image_url":
            if role != "user":
                return f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user'"
            url = (part.get("image_url") or {}).get("url", "")
            if not url.startswith(("http://", "https://")):
                try:
                    decode_data_url(url)
                except ValueError as exc:
                    return f"messages[{i}]: {exc}"
            if (part["image_url"].get("detail") or "auto") not in ("auto", "low", "high", "original"):
                return f"messages[{i}]: invalid image detail"
        elif kind != "text" or not isinstance(part.get("text"), str):
            return f"messages[{i}]: unsupported content part {kind!r}"
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        return f"messages[{i}]: tool messages need a tool_call_id"
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        if call.get("type") != "function" or not call.get("id") or not isinstance(fn.get("name"), str):
            return f"messages[{i}]: malformed tool call"
        if not isinstance(fn.get("arguments"), str):
            return f"messages[{i}]: tool call arguments must be a JSON string"
    return None


# ---- Anthropic messages ------------------------------------------------------------------------------


def anthropic_problem(body: Any) -> str | None:
    """Why Anthropic would reject this messages body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or any(b.get("type") != "text" for b in system):
            return "system: must be a string or a list of text blocks"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: at least one message is required"
    pending: set[str] = set()  # tool_use ids of the previous assistant turn
    for i, msg in enumerate(msgs):
        role, content = msg.get("role"), msg.get("content")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if pending and (role != "user" or set(results) != pending):
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{sorted(pending - set(results))}")
        if results and not pending:
            return f"messages.{i}: tool_result block(s) provided when previous message does not contain any tool_use blocks"
        kinds = [b.get("type") for b in blocks]
        if results and kinds[: len(results)] != ["tool_result"] * len(results):
            return f"messages.{i}: tool_result blocks must come first in the content, before any other block"
        for j, block in enumerate(blocks):
            problem = _anthropic_block_problem(block, role, f"messages.{i}.content.{j}")
            if problem:
                return problem
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    # Ending on an assistant turn with open tool_use blocks is a prefill; the real API accepts it.
    for tool in body.get("tools") or []:
        schema = tool.get("input_schema")
        if not isinstance(tool.get("name"), str) or not isinstance(schema, dict) or schema.get("type") != "object":
            return "tools: each tool needs a name and an input_schema of type 'object'"
    return None


def _anthropic_block_problem(block: dict, role: str, where: str) -> str | None:
    kind = block.get("type")
    allowed = {"user": {"text", "image", "tool_result"}, "assistant": {"text", "tool_use", "thinking"}}[role]
    if kind not in allowed:
        return f"{where}: block type {kind!r} is not allowed in a {role} message"
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"].strip()):
        return f"{where}: text content blocks must contain non-whitespace text"
    if kind == "image":
        return _image_block_problem(block, where)
    if kind == "tool_use" and (not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict)):
        return f"{where}: tool_use needs id, name and an input object"
    if kind == "tool_result":
        inner = block.get("content")
        if inner is None or isinstance(inner, str):
            return None
        for k, sub in enumerate(inner):
            if sub.get("type") not in ("text", "image"):
                return f"{where}.content.{k}: tool_result content may hold only text and image blocks"
            problem = _anthropic_block_problem(sub, "user", f"{where}.content.{k}")
            if problem:
                return problem
    return None


def _image_block_problem(block: dict, where: str) -> str | None:
    source = block.get("source") or {}
    if source.get("type") == "url":
        return None
    if source.get("type") != "base64" or source.get("media_type") not in _MEDIA.values():
        return f"{where}.source: expected a base64 source with an image media_type"
    try:
        img = decode_b64_image(source.get("data", ""))
    except ValueError as exc:
        return f"{where}.source.data: {exc}"
    if _MEDIA.get(img.format or "") != source["media_type"]:
        return f"{where}: Image does not match the provided media type {source['media_type']}"
    return None
