"""The statistics of an A/B run: percentiles, a paired bootstrap interval and McNemar's exact test.

Both tests are paired: the two strategies answered the same items, so what matters is how often they
disagree, not their two accuracies side by side (which would throw away the pairing and overstate the
uncertainty).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["percentile", "paired_bootstrap", "mcnemar", "wilson_interval"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) with linear interpolation (numpy's default); None when empty."""
    if not len(values):
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, n_boot: int = 10_000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of `a - b` and its percentile bootstrap interval, resampling items (pairs stay together).

    `a[i]` and `b[i]` are the two strategies' scores (or 0/1 correctness) on item `i`. Returns
    `(difference, low, high)`; with fewer than two items the interval is the point itself.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diffs.size == 0:
        raise ValueError("paired_bootstrap needs at least one pair")
    point = float(diffs.mean())
    if diffs.size < 2:
        return point, point, point
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    # In chunks so 10k resamples of a large run stay within a few MB.
    chunk = max(1, 2_000_000 // diffs.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, diffs.size, size=(stop - start, diffs.size))
        means[start:stop] = diffs[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return point, float(low), float(high)


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict[str, float | int]:
    """McNemar's exact test on paired correctness: `{"a_only", "b_only", "p"}`.

    `a_only` counts items only `a` got right, `b_only` those only `b` got right. The two-sided p-value is
    the exact binomial one (discordant pairs ~ Binomial(a_only + b_only, 1/2)), valid for small counts
    where the chi-square approximation is not; p = 1 when the strategies never disagree.
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired samples differ in length: {len(a_correct)} vs {len(b_correct)}")
    a_only = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if y and not x)
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p": 1.0}
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1))
    p = min(1.0, 2 * tail / 2**n)  # exact integers: no underflow for large n
    return {"a_only": a_only, "b_only": b_only, "p": p}


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) when `n` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
