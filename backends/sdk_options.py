"""Fitting request options to an SDK method: the ones it names go as keywords, the rest in `extra_body`.

SDK versions add and drop parameters (recent `anthropic` has no `temperature` on `messages.create`), and
OpenAI-compatible servers take options OpenAI does not (vLLM's `top_k`, `repetition_penalty`). Rather than
a TypeError from the SDK, unknown options travel in the JSON body, where the server decides.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def fit_options(method: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` for `method`, with any name it does not accept moved into `extra_body`."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):  # no introspectable signature: pass everything through unchanged
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) or "extra_body" not in params:
        return kwargs
    known = {k: v for k, v in kwargs.items() if k in params}
    unknown = {k: v for k, v in kwargs.items() if k not in params}
    if unknown:
        known["extra_body"] = {**unknown, **(kwargs.get("extra_body") or {})}
    return known
