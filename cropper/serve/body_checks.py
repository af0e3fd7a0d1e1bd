"""Shape checks of a chat completion request body, so a malformed one gets a 400 that names the field.

The shapes follow OpenAI's `CreateChatCompletionRequest` (openai/openai-openapi, `ChatCompletionRequestMessage`
and its content parts): a message is an object with a known `role`; `content` is a string or a list of typed
parts; an `image_url` part holds `{"url": string, "detail"?: "auto" | "low" | "high"}`; an assistant's
`tool_calls` are `{"id", "type": "function", "function": {"name", "arguments": string}}`; a `tool` message
names its `tool_call_id`. Only what the proxy reads is checked: fields it passes on untouched are the
upstream's to judge. A hand-written walk rather than a JSON-schema validator because the error must say
which field is wrong in the path form clients see in OpenAI's own errors (`messages[0].content[1].image_url`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BodyError", "check_chat_body"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
DETAILS = ("auto", "low", "high")
#: Top-level fields the proxy reads, with the JSON types they must have.
TOP_LEVEL = {"model": (str,), "stream": (bool,), "stream_options": (dict,), "tools": (list,),
             "temperature": (int, float), "top_p": (int, float), "max_tokens": (int,),
             "max_completion_tokens": (int,), "seed": (int,), "stop": (str, list),
             "frequency_penalty": (int, float), "presence_penalty": (int, float)}
_JSON_NAMES = {str: "a string", bool: "a boolean", dict: "an object", list: "an array", int: "an integer",
               float: "a number"}


class BodyError(ValueError):
    """A request body field of the wrong shape: `param` is its path, the message says what is wrong."""

    def __init__(self, param: str, problem: str):
        super().__init__(f"{param}: {problem}")
        self.param = param


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", dict: "an object", list: "an array", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _expect(value: Any, types: tuple[type, ...], param: str) -> None:
    # bool is an int in Python but not in JSON: `"max_tokens": true` is wrong.
    wrong_bool = isinstance(value, bool) and bool not in types
    if wrong_bool or not isinstance(value, types):
        wanted = " or ".join(_JSON_NAMES[t] for t in types)
        raise BodyError(param, f"expected {wanted}, got {_kind(value)}")


def check_chat_body(body: Any) -> None:
    """Raise `BodyError` naming the first field of `body` that is not a valid chat completion request."""
    if not isinstance(body, dict):
        raise BodyError("body", f"expected a JSON object, got {_kind(body)}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BodyError("messages", "a chat completion needs a non-empty `messages` array"
                        + ("" if messages is None else f", got {_kind(messages)}"))
    for name, types in TOP_LEVEL.items():
        if name in body and body[name] is not None:
            _expect(body[name], types, name)
    for i, message in enumerate(messages):
        _check_message(message, f"messages[{i}]")


def _check_message(message: Any, at: str) -> None:
    _expect(message, (dict,), at)
    role = message.get("role")
    if role not in ROLES:
        raise BodyError(f"{at}.role", f"expected one of {', '.join(ROLES)}, got {role!r}"[:200])
    content = message.get("content")
    if content is None:
        # An assistant turn that only calls tools has no content; every other message needs one.
        if role != "assistant":
            raise BodyError(f"{at}.content", f"a {role} message needs content (a string or an array of parts)")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            _check_part(part, f"{at}.content[{j}]")
    elif not isinstance(content, str):
        raise BodyError(f"{at}.content", f"expected a string or an array of parts, got {_kind(content)}")
    if role == "assistant" and message.get("tool_calls") is not None:
        calls = message["tool_calls"]
        _expect(calls, (list,), f"{at}.tool_calls")
        for k, call in enumerate(calls):
            _check_tool_call(call, f"{at}.tool_calls[{k}]")
    if role == "tool":
        _expect(message.get("tool_call_id"), (str,), f"{at}.tool_call_id")


def _check_part(part: Any, at: str) -> None:
    _expect(part, (dict,), at)
    kind = part.get("type")
    _expect(kind, (str,), f"{at}.type")
    if kind in ("text", "refusal"):
        _expect(part.get(kind), (str,), f"{at}.{kind}")
    elif kind == "image_url":
        spec = part.get("image_url")
        # OpenAI's schema has an object; a bare URL string is accepted too, as several clients send one.
        if isinstance(spec, str):
            return
        _expect(spec, (dict,), f"{at}.image_url")
        _expect(spec.get("url"), (str,), f"{at}.image_url.url")
        detail = spec.get("detail")
        if detail is not None and detail not in DETAILS:
            raise BodyError(f"{at}.image_url.detail", f"expected one of {', '.join(DETAILS)}, got {detail!r}"[:200])


def _check_tool_call(call: Any, at: str) -> None:
    _expect(call, (dict,), at)
    _expect(call.get("id"), (str,), f"{at}.id")
    function = call.get("function")
    _expect(function, (dict,), f"{at}.function")
    _expect(function.get("name"), (str,), f"{at}.function.name")
    _expect(function.get("arguments"), (str,), f"{at}.function.arguments")
