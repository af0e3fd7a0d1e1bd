"""The streamed replies, the Responses API reply and the token stand-ins of the fake servers (`fake_servers`).

The streams are built from the same reply the non-streaming call gets, then cut the way the real APIs cut
them, in the framing the SDKs' parsers (`openai/_streaming.py`, `anthropic/_streaming.py`) read:
`data: <json>` lines for OpenAI (ended by `data: [DONE]`), `event: <type>` + `data: <json>` for Anthropic
(an event without an `event:` line is skipped by the Anthropic SDK).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def pieces(text: str, n: int = 3) -> list[str]:
    """`text` cut into at most `n` non-empty pieces, in order (none for an empty text)."""
    if not text:
        return []
    step = -(-len(text) // min(n, len(text)))
    return [text[k:k + step] for k in range(0, len(text), step)]


def openai_chat_stream(reply: dict, include_usage: bool) -> bytes:
    """A `chat.completion` reply as the `chat.completion.chunk` events of `stream: true`.

    https://platform.openai.com/docs/api-reference/chat-streaming: a first delta with the role, the content in
    pieces, tool calls as `tool_calls[].index` deltas (id, type and name first, then the arguments in pieces),
    a last choice with `finish_reason`; with `stream_options.include_usage` every chunk has `usage: null` and
    one more chunk with empty `choices` carries the usage; then `data: [DONE]`.
    """
    choice = reply["choices"][0]
    message = choice["message"]
    base = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"], "model": reply["model"],
            "system_fingerprint": reply.get("system_fingerprint"), "service_tier": reply.get("service_tier")}

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        data: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                     "finish_reason": finish}]}
        if include_usage:
            data["usage"] = None
        return _sse(data)

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": piece}) for piece in pieces(message.get("content") or "")]
    for index, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        out.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                          "function": {"name": fn["name"], "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in pieces(fn["arguments"], 2)]
    out.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        out.append(_sse({**base, "choices": [], "usage": reply["usage"]}))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def anthropic_stream(message: dict) -> bytes:
    """A `message` reply as the events of `stream: true`.

    https://platform.claude.com/docs/en/build-with-claude/streaming ("Event flow"): `message_start` (content
    empty), `ping`, per block `content_block_start` / `content_block_delta`s / `content_block_stop` (text as
    `text_delta`, tool input as `input_json_delta` pieces of the JSON, thinking as `thinking_delta` then one
    `signature_delta`; a `redacted_thinking` block comes whole in its start event), `message_delta` with
    `stop_reason` and the cumulative usage, `message_stop`.
    """
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    out = [_sse({"type": "message_start", "message": start}, "message_start"), _sse({"type": "ping"}, "ping")]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[dict] = []
        if kind == "text":
            first: dict = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
        elif kind == "tool_use":
            first = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in pieces(json.dumps(block["input"]), 2)]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            first = block
        out.append(_sse({"type": "content_block_start", "index": index, "content_block": first}, "content_block_start"))
        out += [_sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
                for d in deltas]
        out.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    out.append(_sse({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                     "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta"))
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return b"".join(out)


def _rough_tokens(body: Any) -> int:
    """A deterministic stand-in for prompt tokens: ~4 characters a token plus a flat 85 per image."""
    text = json.dumps(body)
    images = text.count('"image_url"') + text.count('"type": "image"')
    return max(1, (len(text) - sum(len(s) for s in _base64_strings(body))) // 4 + 85 * images)


def _base64_strings(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _base64_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _base64_strings(v)]
    return [obj] if isinstance(obj, str) and len(obj) > 200 else []


def usage(body: Any, entry: dict) -> tuple[int, int]:
    """(input, output) tokens of a reply: the entry's `usage`, else deterministic stand-ins."""
    usage = entry.get("usage") or {}
    out_default = 1 + len(entry.get("text") or "") // 4 + 20 * len(entry.get("tool_calls") or [])
    return int(usage.get("input_tokens", _rough_tokens(body))), int(usage.get("output_tokens", out_default))


def responses_body(body: dict, entry: dict, usage: tuple[int, int]) -> dict:
    """A `response` object (https://platform.openai.com/docs/api-reference/responses/object) for an entry.

    The entry's text becomes a `message` output item with one `output_text` part; each of its tool_calls a
    `function_call` item (`call_id`, `name`, `arguments` as a JSON string).
    """
    output: list[dict] = []
    if entry.get("text") or not entry.get("tool_calls"):
        output.append({"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": entry.get("text") or "", "annotations": [],
                                    "logprobs": []}]})
    for call in entry.get("tool_calls") or []:
        args = call.get("arguments") or {}
        output.append({"type": "function_call", "id": f"fc_{uuid.uuid4().hex}",
                       "call_id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "name": call["name"],
                       "arguments": args if isinstance(args, str) else json.dumps(args), "status": "completed"})
    prompt, completion = usage
    return {
        "id": f"resp_{uuid.uuid4().hex}", "object": "response", "created_at": int(time.time()), "status": "completed",
        "model": entry.get("model", body.get("model")), "output": output, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0), "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "previous_response_id": body.get("previous_response_id"), "store": body.get("store", True),
        "text": body.get("text") or {"format": {"type": "text"}}, "truncation": body.get("truncation") or "disabled",
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion},
    }
