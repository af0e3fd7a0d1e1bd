"""The A/B statistics, pricing, the summary contract, the results file and the rate limiter (no backend)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cropper.ab import (
    ResultsFile,
    load_prices,
    mcnemar,
    paired_bootstrap,
    percentile,
    read_results,
    summarize,
    wilson_interval,
)
from cropper.ab.metering import RateLimiter
from cropper.ab.plots import pareto_front
from cropper.ab.pricing import Price, cost_per_1000, price_for

# --- statistics against known values ------------------------------------------------------------------------


@pytest.mark.parametrize("a_only,b_only", [(1, 9), (0, 5), (7, 7), (3, 12), (60, 40), (0, 0), (250, 180)])
def test_mcnemar_exact_p_matches_scipy_binomial_test(a_only, b_only):
    a = [True] * a_only + [False] * b_only + [True] * 5 + [False] * 4
    b = [False] * a_only + [True] * b_only + [True] * 5 + [False] * 4
    result = mcnemar(a, b)
    assert (result["a_only"], result["b_only"]) == (a_only, b_only)
    expected = 1.0 if a_only + b_only == 0 else scipy_stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert result["p"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_textbook_value():
    # 1 vs 9 discordant pairs: p = 2 * (C(10,0) + C(10,1)) / 2**10
    assert mcnemar([True] + [False] * 9, [False] + [True] * 9)["p"] == pytest.approx(22 / 1024)


def test_paired_bootstrap_degenerate_and_known_cases():
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)
    assert paired_bootstrap([1, 1, 1, 1], [0, 0, 0, 0]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1, 0], [1])


def test_paired_bootstrap_interval_matches_the_normal_approximation_on_a_large_sample():
    rng = np.random.default_rng(3)
    a = rng.random(2000) < 0.7
    b = rng.random(2000) < 0.6
    diff, low, high = paired_bootstrap(a, b, n_boot=4000, seed=1)
    d = a.astype(float) - b.astype(float)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert diff == pytest.approx(d.mean())
    assert low == pytest.approx(d.mean() - 1.96 * se, abs=0.006)
    assert high == pytest.approx(d.mean() + 1.96 * se, abs=0.006)
    assert paired_bootstrap(a, b, n_boot=4000, seed=1) == (diff, low, high)  # seeded: reproducible


def test_percentile_and_wilson_known_values():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert percentile([], 50) is None
    low, high = wilson_interval(8, 10)  # the classic worked example: 0.490 to 0.943
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_pareto_front_keeps_only_undominated_points():
    points = [("low", 100, 0.3), ("full", 1000, 0.9), ("policy", 300, 0.9), ("tool", 400, 0.85)]
    assert pareto_front(points) == ["low", "policy"]


# --- pricing ----------------------------------------------------------------------------------------------


def test_prices_lookup_custom_table_and_cost(tmp_path):
    table = load_prices(None)
    assert price_for("gpt-4.1-mini-2025-04-14", table) == table["gpt-4.1-mini"]  # dated id -> longest prefix
    assert price_for("gpt-4.1-2025-04-14", table) == table["gpt-4.1"]
    assert price_for("pp-ocrv4", table) is None
    custom = tmp_path / "prices.json"
    custom.write_text(json.dumps({"pp-ocrv4": {"input": 1.0, "output": 2.0}}))
    assert price_for("pp-ocrv4", load_prices(custom)) == Price(1.0, 2.0)
    # 1,000 questions of 1,500 input and 10 output tokens at $1 / $2 per million
    assert cost_per_1000(1500, 10, Price(1.0, 2.0)) == pytest.approx(1.52)
    assert cost_per_1000(None, 10, Price(1.0, 2.0)) is None


def test_bad_price_tables_name_the_problem(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="p.json: not valid JSON"):
        load_prices(bad)
    with pytest.raises(ValueError, match="model 'x' needs numeric 'input' and 'output'"):
        load_prices({"x": {"input": "cheap"}})
    with pytest.raises(FileNotFoundError, match="price table not found"):
        load_prices(tmp_path / "missing.json")


# --- the summary contract ---------------------------------------------------------------------------------


def _row(item, strategy, correct, tokens, latency=1.0, error=None, crops=0, hit=None, group="a", usage=None):
    row = {"id": item, "strategy": strategy, "answer": "x", "correct": correct, "score": None if correct is None else float(correct),
           "visual_tokens": tokens, "pixels": None if tokens is None else tokens * 784, "crops": [[0, 0, 0.5, 0.5]] * crops,
           "latency_s": latency, "error": error, "input_tokens": usage, "output_tokens": 5 if usage else None,
           "fields": {"subset": group}}
    if hit is not None:
        row["evidence_hit"] = hit
    return row


def _rows():
    rows = []
    for i in range(10):
        rows.append(_row(f"i{i}", "full", i < 8, 1000, latency=2.0 + i, hit=True, group="a" if i < 5 else "b"))
        rows.append(_row(f"i{i}", "policy", i < 9, 300, latency=1.0, crops=1, hit=i < 7, group="a" if i < 5 else "b"))
    rows.append(_row("i10", "policy", None, None, error="BackendError: 500", group="b"))
    rows.append(_row("i10", "full", True, 1000, group="b"))
    return rows


def test_summary_per_strategy_fields():
    summary = summarize(_rows(), ["full", "policy"], by="subset")
    full, policy = summary["strategies"]["full"], summary["strategies"]["policy"]
    assert summary["items"] == 11
    assert (full["n"], full["errors"], policy["n"], policy["errors"]) == (11, 0, 10, 1)
    assert full["accuracy"] == pytest.approx(9 / 11)
    assert policy["accuracy"] == pytest.approx(0.9)
    assert policy["mean_visual_tokens"] == 300 and policy["mean_pixels"] == 300 * 784
    # paired: over the 10 items both answered, 3000 / 10000
    assert policy["token_ratio_vs_full"] == pytest.approx(0.3)
    assert full["token_ratio_vs_full"] == pytest.approx(1.0)
    assert policy["evidence_hit_rate"] == pytest.approx(0.7)
    assert policy["mean_crops"] == 1.0
    assert full["p50_latency_s"] == pytest.approx(np.percentile([2.0 + i for i in range(10)] + [1.0], 50))
    assert full["p90_latency_s"] == pytest.approx(np.percentile([2.0 + i for i in range(10)] + [1.0], 90))
    lo, hi = policy["accuracy_ci95"]
    assert lo < 0.9 < hi
    assert set(summary["by_group"]) == {"a", "b"}
    assert summary["by_group"]["a"]["policy"]["n"] == 5
    assert summary["by_group"]["b"]["policy"]["errors"] == 1


def test_summary_pairs_put_full_second_and_are_paired():
    summary = summarize(_rows(), ["full", "policy"])
    pair = summary["pairs"]["policy vs full"]
    assert (pair["a"], pair["b"], pair["n"]) == ("policy", "full", 10)  # item i10 failed for policy: not paired
    assert pair["accuracy_diff"] == pytest.approx(0.1)  # 9/10 vs 8/10
    assert (pair["a_only"], pair["b_only"]) == (1, 0)
    assert pair["mcnemar_p"] == pytest.approx(1.0)
    assert pair["ci95"][0] <= 0.1 <= pair["ci95"][1]


def test_summary_cost_uses_usage_when_reported_else_visual_tokens():
    rows = [_row("a", "full", True, 1000, usage=1200), _row("b", "full", True, 1000, usage=1400),
            _row("a", "low", True, 100), _row("b", "low", False, 100)]
    table = {"m": Price(1.0, 2.0)}
    summary = summarize(rows, ["low", "full"], prices=table, model="m")
    assert summary["strategies"]["full"]["cost_basis"] == "usage"
    assert summary["strategies"]["full"]["cost_per_1000_usd"] == pytest.approx(1000 * (1300 * 1 + 5 * 2) / 1e6)
    assert summary["strategies"]["low"]["cost_basis"] == "visual_tokens"
    assert summary["strategies"]["low"]["cost_per_1000_usd"] == pytest.approx(0.1)
    assert summarize(rows, ["low", "full"], prices=table, model="other")["strategies"]["low"]["cost_per_1000_usd"] is None


# --- the results file --------------------------------------------------------------------------------------


def test_results_file_drops_torn_lines_and_errors_and_keeps_one_line_per_pair(tmp_path):
    path = tmp_path / "results.jsonl"
    good = {"id": "a", "strategy": "full", "answer": "x", "error": None}
    failed = {"id": "b", "strategy": "full", "answer": None, "error": "BackendError: 503"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(failed) + "\n" + json.dumps(good) + "\n" + '{"id": "c", "stra')
    results = ResultsFile(path)
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        done = results.open()
    assert list(done) == [("a", "full")]
    results.append({"id": "b", "strategy": "full", "answer": "y", "error": None})
    results.close()
    rows = read_results(path)
    assert [(r["id"], r["answer"]) for r in rows] == [("a", "x"), ("b", "y")]


def test_results_file_can_keep_error_lines(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"id": "b", "strategy": "low", "error": "missing image"}) + "\n")
    with ResultsFile(path) as results:
        assert ("b", "low") in results.open(retry_errors=False)


# --- the rate limiter ----------------------------------------------------------------------------------------


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one start every 0.5 s
    starts = []
    for _ in range(5):
        limiter.wait()
        starts.append(now[0])
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert RateLimiter(None).wait() == 0.0
    with pytest.raises(ValueError, match="rpm must be positive"):
        RateLimiter(0)
