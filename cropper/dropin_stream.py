"""`stream=True` in the drop-in: run the zoom rounds, then hand the caller the final answer as an SDK stream.

The rounds run without streaming (a round's reply must be read whole to know whether it asks to zoom);
the final response is then given back as the items the SDK's own stream would yield for it, typed by
the SDK: OpenAI `ChatCompletionChunk`s, Responses API `ResponseStreamEvent`s, Anthropic
`RawMessageStreamEvent`s. Code written for `for chunk in client.chat.completions.create(..., stream=True)`
keeps working unchanged. The tokens do not arrive one by one: the answer is complete when the first item
is handed over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


class ReplayedStream:
    """An iterable (sync and async) of SDK stream items, usable as the SDK's `Stream` is: in a `with`
    block, with `close()`; `cropper` holds the `Answer`'s summary."""

    def __init__(self, items: list[Any], cropper: dict[str, Any] | None = None):
        self._items = list(items)
        self.cropper = cropper

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __next__(self) -> Any:  # the SDK's Stream is its own iterator too
        if not self._items:
            raise StopIteration
        return self._items.pop(0)

    def __aiter__(self):
        return self._async_items()

    async def _async_items(self):
        for item in self._items:
            yield item

    def __enter__(self) -> ReplayedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ReplayedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is left open: the rounds ran to completion before the stream was made."""

    async def aclose(self) -> None:
        """As `close`."""


def openai_chunks(completion: Any, include_usage: bool = False) -> list[Any]:
    """The `ChatCompletionChunk`s OpenAI streams for `completion` (role, content, tool calls, finish, usage)."""
    from openai.types.chat import ChatCompletionChunk

    base = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model, "system_fingerprint": getattr(completion, "system_fingerprint", None)}
    raw: list[dict[str, Any]] = []
    for choice in completion.choices:
        message = choice.message
        raw.append({"choices": [{"index": choice.index, "delta": {"role": "assistant", "content": ""},
                                 "finish_reason": None}]})
        if message.content:
            raw.append({"choices": [{"index": choice.index, "delta": {"content": message.content},
                                     "finish_reason": None}]})
        for i, call in enumerate(message.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None:
                continue
            raw.append({"choices": [{"index": choice.index, "finish_reason": None, "delta": {"tool_calls": [
                {"index": i, "id": call.id, "type": "function",
                 "function": {"name": function.name, "arguments": function.arguments}}]}}]})
        raw.append({"choices": [{"index": choice.index, "delta": {}, "finish_reason": choice.finish_reason}]})
    if include_usage and completion.usage is not None:
        raw.append({"choices": [], "usage": completion.usage.model_dump()})
    return [ChatCompletionChunk.model_validate({**base, **chunk}) for chunk in raw]


def anthropic_events(message: Any, beta: bool = False) -> list[Any]:
    """The raw stream events Anthropic sends for `message` (the documented sequence, one delta a block)."""
    import pydantic

    if beta:
        from anthropic.types.beta import BetaRawMessageStreamEvent as Event
    else:
        from anthropic.types import RawMessageStreamEvent as Event
    dumped = message.model_dump(mode="json", exclude_none=True)
    usage = dict(dumped.get("usage") or {})
    start = {**dumped, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}
    raw: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(dumped.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            opening, deltas = {**block, "text": ""}, [{"type": "text_delta", "text": block["text"]}]
        elif kind in ("tool_use", "server_tool_use"):
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})}]
        elif kind == "thinking":
            opening = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")},
                      {"type": "signature_delta", "signature": block.get("signature", "")}]
        else:  # redacted_thinking and the rest arrive whole in their start event
            opening, deltas = block, []
        raw.append({"type": "content_block_start", "index": index, "content_block": opening})
        raw += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas]
        raw.append({"type": "content_block_stop", "index": index})
    raw.append({"type": "message_delta", "delta": {"stop_reason": dumped.get("stop_reason"),
                                                    "stop_sequence": dumped.get("stop_sequence")},
                "usage": {"output_tokens": usage.get("output_tokens", 0)}})
    raw.append({"type": "message_stop"})
    adapter = pydantic.TypeAdapter(Event)
    return [adapter.validate_python(event) for event in raw]


def responses_events(response: Any) -> list[Any]:
    """The `ResponseStreamEvent`s the Responses API streams for `response`: created, in_progress, then per
    output item its added / content / delta / done events, then completed (sequence numbers from 0).

    Sequence from https://platform.openai.com/docs/guides/streaming-responses (Responses API): message
    items stream `output_text` deltas inside a content part; function calls stream their arguments;
    other items (reasoning, ...) arrive whole in `output_item.added` / `output_item.done`.
    """
    dumped = response.model_dump(mode="json", exclude_none=True)
    pending = {**dumped, "status": "in_progress", "output": []}
    raw: list[dict[str, Any]] = [{"type": "response.created", "response": pending},
                                 {"type": "response.in_progress", "response": pending}]
    for index, item in enumerate(dumped.get("output") or []):
        kind, item_id = item.get("type"), item.get("id", "")
        where = {"item_id": item_id, "output_index": index}
        if kind == "message":
            raw.append({"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "status": "in_progress", "content": []}})
            for part_index, part in enumerate(item.get("content") or []):
                at = {**where, "content_index": part_index}
                if part.get("type") == "output_text":
                    raw.append({"type": "response.content_part.added", **at, "part": {**part, "text": ""}})
                    raw.append({"type": "response.output_text.delta", **at, "delta": part["text"], "logprobs": []})
                    raw.append({"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []})
                else:
                    raw.append({"type": "response.content_part.added", **at, "part": part})
                raw.append({"type": "response.content_part.done", **at, "part": part})
        elif kind == "function_call":
            raw.append({"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "status": "in_progress", "arguments": ""}})
            raw.append({"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]})
            raw.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
        else:
            raw.append({"type": "response.output_item.added", "output_index": index, "item": item})
        raw.append({"type": "response.output_item.done", "output_index": index, "item": item})
    raw.append({"type": "response.completed", "response": dumped})
    classes = _responses_event_classes()
    # `construct`, as the SDK itself builds what it reads off the wire: a server that leaves out a field
    # the SDK's type requires (OpenAI-compatible servers do) still streams.
    return [classes[event["type"]].construct(**event, sequence_number=n) for n, event in enumerate(raw)]


def _responses_event_classes() -> dict[str, Any]:
    """The SDK's Responses stream event classes by their `type` value."""
    import typing

    from openai.types.responses import ResponseStreamEvent

    union = typing.get_args(ResponseStreamEvent)[0]
    return {typing.get_args(cls.model_fields["type"].annotation)[0]: cls for cls in typing.get_args(union)}
