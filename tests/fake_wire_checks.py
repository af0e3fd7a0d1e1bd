"""Request checks the fake servers apply, mirroring the 400s the real APIs give.

Written independently of `backends/*_wire.py` (these read the documented rules, not our converters), so a
converter bug shows up as a 400 from the fake just as it would from the real service. Each `*_problem`
function returns a problem description, or None when the request is acceptable. The fake servers run the
official schemas (`provider_schemas`) first and these semantic checks after, as the real APIs do. Every rule
names its source; where the API's own error text is known (quoted in a cited thread) it is used verbatim,
else the wording is ours (marked so).

Images are checked from their headers (`Image.open` without `.load()`), byte sizes by base64 length
arithmetic, so a 20 MB body is checked in milliseconds.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image

_MEDIA = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
MB = 1024 * 1024

# https://platform.openai.com/docs/guides/images-vision ("Image input requirements": up to 50 MB total
# payload per request, up to 500 image inputs per request, non-animated GIF); 20 MB per image: the same
# guide's earlier "up to 20MB per image" and the API reference's `input_image.image_url` maxLength 20971520.
OPENAI_MAX_IMAGE_BYTES = 20 * MB
OPENAI_MAX_TOTAL_IMAGE_BYTES = 50 * MB
OPENAI_MAX_IMAGES = 500
# https://platform.claude.com/docs/en/build-with-claude/vision ("Image size limits"): 5 MB per image, sides up
# to 8000 px, at most 2000 px when a request holds more than 20 images, at most 100 images per API request.
ANTHROPIC_MAX_IMAGE_B64 = 5 * MB  # 5,242,880: compared with the base64 text, as the API's error shows
ANTHROPIC_MAX_SIDE = 8000
ANTHROPIC_MANY_IMAGES = 20
ANTHROPIC_MANY_MAX_SIDE = 2000
ANTHROPIC_MAX_IMAGES = 100
# https://platform.claude.com/docs/en/api/overview#request-size-limits ("Messages API: 32 MB"); answered 413
# `request_too_large` "Request exceeds the maximum size" (anthropics/anthropic-sdk-python#938).
ANTHROPIC_MAX_BODY_BYTES = 32 * MB


def decode_b64_image(data: str) -> Image.Image:
    """Decode base64 image bytes, pixels loaded (ValueError when they are not an image)."""
    try:
        raw = base64.b64decode(data, validate=True)
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (binascii.Error, OSError, ValueError) as exc:
        raise ValueError(f"invalid image data ({exc})") from exc
    return img


def decode_data_url(url: str) -> Image.Image:
    """Decode a `data:image/...;base64,...` URL; ValueError for anything else."""
    media, payload = _split_data_url(url)
    img = decode_b64_image(payload)
    if media != _MEDIA.get(img.format or ""):
        raise ValueError(f"data URL says {media} but holds {img.format}")
    return img


def b64_decoded_size(data: str) -> int:
    """How many bytes base64 text decodes to, from its length alone."""
    return len(data) * 3 // 4 - (2 if data.endswith("==") else 1 if data.endswith("=") else 0)


def peek_b64_image(data: str) -> tuple[str | None, tuple[int, int], bool]:
    """(format, (width, height), animated) from the header alone; PNG chunk CRCs are verified, no pixels decoded."""
    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            fmt, size = img.format, img.size
            animated = fmt == "GIF" and bool(getattr(img, "is_animated", False))
            if not animated:
                img.verify()
    except (binascii.Error, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"invalid image data ({exc})") from exc
    return fmt, size, animated


def _split_data_url(url: str) -> tuple[str, str]:
    header, sep, payload = url.partition(",")
    if not (url.startswith("data:image/") and sep and header.endswith(";base64")):
        raise ValueError(f"not a base64 image data URL: {url[:40]!r}")
    return header[len("data:"):-len(";base64")], payload


def _peek_data_url(url: str) -> tuple[tuple[int, int], int]:
    """((width, height), decoded bytes) of a data-URL image; ValueError when it is not one."""
    media, payload = _split_data_url(url)
    fmt, size, animated = peek_b64_image(payload)
    if media != _MEDIA.get(fmt or ""):
        raise ValueError(f"data URL says {media} but holds {fmt}")
    if animated:  # images-vision guide: "non-animated GIF" (wording ours)
        raise ValueError("animated GIFs are not supported; only non-animated GIF images are")
    return size, b64_decoded_size(payload)


# ---- OpenAI chat completions -------------------------------------------------------------------------


def _openai_image_limits(sizes: list[int]) -> str | None:
    """The per-request image limits of the images-vision guide; `sizes`: decoded bytes (0 for web URLs)."""
    if len(sizes) > OPENAI_MAX_IMAGES:  # wording ours
        return f"Too many images in request: {len(sizes)} > {OPENAI_MAX_IMAGES} (at most 500 image inputs per request)."
    total = sum(sizes)
    if total > OPENAI_MAX_TOTAL_IMAGE_BYTES:  # the API's text (the task's brief; "X MB" in MiB, 2 decimals ours)
        return f"Total image size is {total / MB:.2f} MB, which exceeds the allowed limit of 50MB."
    return None


def _openai_image_problem(url: str, where: str, sizes: list[int]) -> str | None:
    if url.startswith(("http://", "https://")):
        sizes.append(0)
        return None
    try:
        _, nbytes = _peek_data_url(url)
    except ValueError as exc:
        return f"Invalid '{where}': {exc}"
    if nbytes > OPENAI_MAX_IMAGE_BYTES:  # wording ours
        return f"Invalid '{where}': the image is {nbytes} bytes, over the 20 MB per-image limit."
    sizes.append(nbytes)
    return None


def openai_problem(body: Any) -> str | None:
    """Why OpenAI would reject this chat-completions body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "'messages' must be a non-empty array"
    open_calls: set[str] = set()
    sizes: list[int] = []
    for i, msg in enumerate(msgs):
        role = msg.get("role")
        # https://platform.openai.com/docs/guides/function-calling: every tool call is answered by a tool
        # message before the conversation goes on (the API's text).
        if open_calls and role != "tool":
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(open_calls)}")
        problem = _openai_message_problem(msg, i, sizes)
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
    # https://platform.openai.com/docs/api-reference/chat/create (`tool_choice`, `parallel_tool_calls` act on
    # `tools`); the API's text, quoted in Upsonic/Upsonic#323.
    if not body.get("tools"):
        for key in ("parallel_tool_calls", "tool_choice"):
            if body.get(key) is not None:
                return f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified."
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if tool.get("type") != "function" or not isinstance(fn.get("name"), str):
            return "each tool needs type 'function' and a function name"
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            return "tool parameters must be a JSON schema object"
    return _openai_image_limits(sizes)


def _openai_message_problem(msg: dict, i: int, sizes: list[int]) -> str | None:
    role, content = msg.get("role"), msg.get("content")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        return f"Invalid value for messages[{i}].role: {role!r}"
    if role == "assistant" and content is None and not msg.get("tool_calls"):
        return f"messages[{i}]: assistant content is required unless tool_calls is set"
    if content is not None and not isinstance(content, (str, list)):
        return f"messages[{i}].content must be a string or an array of parts"
    for j, part in enumerate(content if isinstance(content, list) else []):
        kind = part.get("type")
        if kind == "image_url":
            # https://platform.openai.com/docs/api-reference/chat/create: images only in user messages ("For
            # tool messages, only type `text` is supported."); the API's text.
            if role != "user":
                return f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user'"
            problem = _openai_image_problem((part.get("image_url") or {}).get("url", ""),
                                            f"messages[{i}].content[{j}].image_url.url", sizes)
            if problem:
                return problem
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


# ---- OpenAI Responses --------------------------------------------------------------------------------


def openai_responses_problem(body: Any) -> str | None:
    """Why OpenAI would reject this POST /v1/responses body, or None.

    https://platform.openai.com/docs/api-reference/responses/create and
    https://platform.openai.com/docs/guides/function-calling: every `function_call` item needs its
    `function_call_output` (same `call_id`) and every output its call, unless `previous_response_id` holds
    them (the API's texts). Images ARE allowed in a `function_call_output`: its `output` is a string or a list
    of `input_text` / `input_image` / `input_file` parts.
    """
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
    calls: list[str] = []
    answered: set[str] = set()
    sizes: list[int] = []
    for i, item in enumerate(items):
        kind = item.get("type") or ("message" if "role" in item else None)
        parts: list = []
        if kind == "message":
            parts = item["content"] if isinstance(item.get("content"), list) else []
            for j, part in enumerate(parts):
                # Assistant turns hold output parts only (the API's text).
                if item.get("role") == "assistant" and part.get("type") not in ("output_text", "refusal"):
                    return (f"Invalid value: '{part.get('type')}'. Supported values are: 'output_text' and "
                            f"'refusal'. (input[{i}].content[{j}])")
        elif kind == "function_call":
            calls.append(item.get("call_id"))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in calls and not body.get("previous_response_id"):
                return f"No tool call found for function call output with call_id {call_id}."
            answered.add(call_id)
            parts = item["output"] if isinstance(item.get("output"), list) else []
        for j, part in enumerate(parts):
            if part.get("type") == "input_image" and isinstance(part.get("image_url"), str):
                where = f"input[{i}].{'content' if kind == 'message' else 'output'}[{j}].image_url"
                problem = _openai_image_problem(part["image_url"], where, sizes)
                if problem:
                    return problem
    missing = [c for c in calls if c not in answered]
    if missing:
        return f"No tool output found for function call {missing[0]}."
    return _openai_image_limits(sizes)


# ---- Anthropic messages ------------------------------------------------------------------------------


def _blocks(msg: dict) -> list:
    content = msg.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def anthropic_problem(body: Any, betas: str = "") -> str | None:
    """Why Anthropic would reject this messages body, or None. `betas`: the `anthropic-beta` header."""
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
    images: list[tuple[str, tuple[int, int]]] = []  # (where, size) of every image, tool_result contents included
    for i, msg in enumerate(msgs):
        role = msg.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        blocks = _blocks(msg)
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
            problem = _anthropic_block_problem(block, role, f"messages.{i}.content.{j}", images)
            if problem:
                return problem
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    # Ending on an assistant turn with open tool_use blocks is a prefill; the real API accepts it.
    for tool in body.get("tools") or []:
        schema = tool.get("input_schema")
        if not isinstance(tool.get("name"), str) or not isinstance(schema, dict) or schema.get("type") != "object":
            return "tools: each tool needs a name and an input_schema of type 'object'"
    if not body.get("tools"):
        # The API's text, anthropics/anthropic-sdk-python#494.
        if any(b.get("type") in ("tool_use", "tool_result") for m in msgs for b in _blocks(m)):
            return "Requests which include `tool_use` or `tool_result` blocks must define tools."
        # https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use
        # (`tool_choice` picks among `tools`; wording ours).
        if body.get("tool_choice") is not None:
            return "tool_choice: tool_choice may only be specified while providing tools."
    return _anthropic_image_limits(images) or _anthropic_thinking_problem(body, msgs, betas)


def _anthropic_image_limits(images: list[tuple[str, tuple[int, int]]]) -> str | None:
    # https://platform.claude.com/docs/en/build-with-claude/vision ("Image size limits").
    if len(images) > ANTHROPIC_MAX_IMAGES:  # wording ours
        return f"messages: too many images: {len(images)} > {ANTHROPIC_MAX_IMAGES} (at most 100 images per request)"
    if len(images) > ANTHROPIC_MANY_IMAGES:
        for where, (w, h) in images:
            if max(w, h) > ANTHROPIC_MANY_MAX_SIDE:  # the API's text
                return (f"{where}.image.source.base64.data: At least one of the image dimensions exceed max allowed "
                        f"size for many-image requests: {ANTHROPIC_MANY_MAX_SIDE} pixels")
    return None


def _anthropic_thinking_problem(body: dict, msgs: list, betas: str) -> str | None:
    """https://platform.claude.com/docs/en/build-with-claude/extended-thinking (the API's texts)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    # "Tool choice limitation: tool use with thinking only supports tool_choice: {"type": "auto"} or "none"".
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and budget < 1024:  # "The minimum budget is 1,024 tokens"
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    # "budget_tokens must be set to a value less than max_tokens", except with interleaved thinking.
    if isinstance(budget, int) and budget >= body["max_tokens"] and "interleaved-thinking" not in betas:
        return "`max_tokens` must be greater than `thinking.budget_tokens`."
    # "a final assistant message must start with a thinking block" when it carries tool_use blocks.
    last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
    if last is not None:
        blocks = _blocks(msgs[last])
        first = blocks[0].get("type")
        if any(b.get("type") == "tool_use" for b in blocks) and first not in ("thinking", "redacted_thinking"):
            return (f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                    "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                    "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
                    "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
    return None


def _anthropic_block_problem(block: dict, role: str, where: str, images: list) -> str | None:
    kind = block.get("type")
    allowed = {"user": {"text", "image", "tool_result", "document"},
               "assistant": {"text", "tool_use", "thinking", "redacted_thinking"}}[role]
    if kind not in allowed:
        return f"{where}: block type {kind!r} is not allowed in a {role} message"
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"].strip()):
        return f"{where}: text content blocks must contain non-whitespace text"
    if kind == "image":
        return _image_block_problem(block, where, images)
    # extended-thinking doc: thinking blocks go back complete, `signature` included; redacted ones with `data`.
    if kind == "thinking" and not (isinstance(block.get("signature"), str) and isinstance(block.get("thinking"), str)):
        return f"{where}.thinking.signature: Field required"
    if kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        return f"{where}.redacted_thinking.data: Field required"
    if kind == "tool_use" and (not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict)):
        return f"{where}: tool_use needs id, name and an input object"
    if kind == "tool_result":
        inner = block.get("content")
        if inner is None or isinstance(inner, str):
            return None
        for k, sub in enumerate(inner):
            # The API names nested blocks "messages.N.content.M.tool_result.content.K" (anthropics/claude-code#2939).
            sub_where = f"{where}.tool_result.content.{k}"
            if sub.get("type") not in ("text", "image", "document", "search_result"):
                return f"{sub_where}: tool_result content may hold only text, image, document and search_result blocks"
            if sub.get("type") in ("text", "image"):
                problem = _anthropic_block_problem(sub, "user", sub_where, images)
                if problem:
                    return problem
    return None


def _image_block_problem(block: dict, where: str, images: list) -> str | None:
    source = block.get("source") or {}
    if source.get("type") in ("url", "file"):
        images.append((where, (0, 0)))  # counted; its size is unknown here
        return None
    if source.get("type") != "base64" or source.get("media_type") not in _MEDIA.values():
        return f"{where}.source: expected a base64 source with an image media_type"
    data = source.get("data", "")
    if len(data) > ANTHROPIC_MAX_IMAGE_B64:  # the API's text (anthropics/claude-code#11181)
        return (f"{where}.image.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > "
                f"{ANTHROPIC_MAX_IMAGE_B64} bytes")
    try:
        fmt, size, _ = peek_b64_image(data)
    except ValueError as exc:
        return f"{where}.source.data: {exc}"
    if _MEDIA.get(fmt or "") != source["media_type"]:
        return f"{where}: Image does not match the provided media type {source['media_type']}"
    if max(size) > ANTHROPIC_MAX_SIDE:  # the API's text
        return (f"{where}.image.source.base64.data: At least one of the image dimensions exceed max allowed size: "
                f"{ANTHROPIC_MAX_SIDE} pixels")
    images.append((where, size))
    return None
