"""Rewards as plain functions `f(completions, **batch) -> list[float]` (TRL's convention).

A "completion" of the crop policy is one sampled crop choice and the target model's answer to it; the
same scoring function judges evaluation and training, so a reward can never drift from the metric.

Reward of one choice = answer score
                      - alpha_use  * [any crop requested]
                      - lam        * (crop visual tokens / full-image visual tokens)
                      - alpha_miss * [the item needed zoom and no crop was requested]
Defaults (documented in docs/training.md): alpha_use=0.05, lam=0.3, alpha_miss=0.1. The answer score is in
[0, 1], so a correct answer with one tight crop scores about 0.9 and a wrong answer below 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cropper.scoring import exact_match


@dataclass(frozen=True)
class CostWeights:
    """The crop-cost weights of the reward."""

    alpha_use: float = 0.05
    lam: float = 0.3
    alpha_miss: float = 0.1


@dataclass
class CropCompletion:
    """One sampled crop choice for an item and what the frozen target answered with it."""

    answer: str
    crop_tokens: int
    full_tokens: int
    n_crops: int


def answer_reward(completions: Sequence[CropCompletion], answers: Sequence[Sequence[str]], scorer=exact_match,
                  **_: Any) -> list[float]:
    """The answer score of each completion against its item's reference answers."""
    return [float(scorer(c.answer, refs)) for c, refs in zip(completions, answers, strict=True)]


def crop_cost_reward(completions: Sequence[CropCompletion], needs_zoom: Sequence[bool],
                     weights: CostWeights = CostWeights(), **_: Any) -> list[float]:
    """Minus the cost of the crops each completion asked for (and of the crop it should have asked for)."""
    out = []
    for c, needed in zip(completions, needs_zoom, strict=True):
        used = c.n_crops > 0
        ratio = c.crop_tokens / c.full_tokens if c.full_tokens > 0 else 0.0
        out.append(-(weights.alpha_use * used + weights.lam * ratio + weights.alpha_miss * (needed and not used)))
    return out


def total_reward(completions: Sequence[CropCompletion], answers: Sequence[Sequence[str]], needs_zoom: Sequence[bool],
                 weights: CostWeights = CostWeights(), scorer=exact_match, **_: Any) -> list[float]:
    """answer_reward + crop_cost_reward, per completion."""
    a = answer_reward(completions, answers, scorer=scorer)
    c = crop_cost_reward(completions, needs_zoom, weights=weights)
    return [x + y for x, y in zip(a, c, strict=True)]
