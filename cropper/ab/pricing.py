"""Dollars per 1,000 questions from a price table and the tokens each strategy used.

The built-in table holds list prices in USD per million tokens (input, output) as published by the
providers in 2025; prices change, so pass your own with `prices=` / `--prices FILE.json`:

    {"gpt-4.1-mini": {"input": 0.40, "output": 1.60}, "my-vllm-model": {"input": 0.0, "output": 0.0}}

Input tokens are the provider's reported usage summed over every call of a question (a tool
conversation re-sends earlier views, and that is paid for). Where a backend reports no usage (the
offline reader), the visual tokens under the backend's token model stand in and the basis says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Price", "DEFAULT_PRICES", "load_prices", "price_for", "cost_per_1000"]


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input: float
    output: float


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "claude-opus-4-1": Price(15.00, 75.00),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
}


def load_prices(source: str | os.PathLike | dict[str, Any] | None) -> dict[str, Price]:
    """The default table updated with `source` (a JSON file or a dict of `{model: {input, output}}`)."""
    table = dict(DEFAULT_PRICES)
    if source is None:
        return table
    where = "prices"
    if not isinstance(source, dict):
        where = str(source)
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"price table not found: {where}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg.removesuffix(' at')} at line {exc.lineno})") from None
    if not isinstance(source, dict):
        raise ValueError(f"{where}: expected an object of model -> {{input, output}} prices")
    for model, entry in source.items():
        try:
            table[str(model)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{where}: model {model!r} needs numeric 'input' and 'output' (USD per 1M tokens), "
                             f"got {entry!r}") from None
    return table


def price_for(model: str | None, table: dict[str, Price]) -> Price | None:
    """The price of `model`: an exact entry, else the longest entry it starts with (dated model ids)."""
    if not model:
        return None
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name)]
    return table[max(matches, key=len)] if matches else None


def cost_per_1000(mean_input_tokens: float | None, mean_output_tokens: float | None, price: Price | None) -> float | None:
    """USD for 1,000 questions at these mean token counts; None without a price or input tokens."""
    if price is None or mean_input_tokens is None:
        return None
    output = mean_output_tokens or 0.0
    return 1000 * (mean_input_tokens * price.input + output * price.output) / 1e6
