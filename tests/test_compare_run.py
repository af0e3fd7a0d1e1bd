"""`compare` end to end: the real reader on small pages, the real OpenAI SDK against a fake server on
127.0.0.1, resume after a kill, bad items, settings checks and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from compare_data import make_dataset
from fake_servers import FakeOpenAIServer

import cropper
from cropper.ab import ROW_FIELDS, compare, read_results
from cropper.ab.runner import BackendGaveUp
from cropper.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _pairs(rows):
    return sorted((r["id"], r["strategy"]) for r in rows)


def test_reader_run_writes_the_contract_summary_and_report(tmp_path):
    data = make_dataset(tmp_path / "d", 4)
    result = compare(data, "reader", "low,full", tmp_path / "run", global_side=160, by="subset", progress=False)
    rows = read_results(tmp_path / "run" / "results.jsonl")
    assert _pairs(rows) == sorted((f"q{i}", s) for i in range(4) for s in ("low", "full"))
    for row in rows:
        assert set(ROW_FIELDS) <= set(row), row
        assert row["error"] is None and isinstance(row["correct"], bool)
        assert row["visual_tokens"] > 0 and row["pixels"] > 0 and row["latency_s"] > 0
        assert row["evidence_hit"] is (row["strategy"] == "full")  # full sees the whole image, low no crop
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    low, full = summary["strategies"]["low"], summary["strategies"]["full"]
    # The reader reads 26-px text at full resolution and not from a 160-px view.
    assert full["accuracy"] >= 0.75 and low["accuracy"] <= 0.25
    assert full["token_ratio_vs_full"] == 1.0 and 0 < low["token_ratio_vs_full"] < 0.2
    assert summary["pairs"]["low vs full"]["accuracy_diff"] == pytest.approx(low["accuracy"] - full["accuracy"])
    assert set(summary["by_group"]) == {"even", "odd"}
    timing = summary["timing"]
    assert 0 < timing["backend_s"] < timing["work_s"] and 0 <= timing["overhead_share"] < 1
    assert (tmp_path / "run" / "report.html").stat().st_size > 10_000
    assert "low" in result.table() and "McNemar" in result.table()
    assert cropper.compare is compare


def test_rerun_adds_only_what_is_missing(tmp_path):
    data = make_dataset(tmp_path / "d", 3)
    first = compare(data, "reader", "low", tmp_path / "run", global_side=160, report=False, progress=False)
    again = compare(data, "reader", "low,full", tmp_path / "run", global_side=160, report=False, progress=False)
    rows = read_results(tmp_path / "run" / "results.jsonl")
    assert _pairs(rows) == sorted((f"q{i}", s) for i in range(3) for s in ("low", "full"))
    before = {r["id"]: r["latency_s"] for r in first.rows}
    assert {r["id"]: r["latency_s"] for r in rows if r["strategy"] == "low"} == before  # not redone
    assert again.summary["strategies"]["full"]["n"] == 3


def _stop_when(command, env, results: Path, lines: int, sig) -> subprocess.CompletedProcess:
    """Run `command` and send it `sig` once `results` holds at least `lines` lines."""
    # As from a terminal: a job started in the background of a non-interactive shell (CI) inherits SIGINT
    # ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= lines:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be stopped"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, proc.returncode, "", err)


def test_killed_run_resumes_to_exactly_one_line_per_item_and_strategy(tmp_path):
    data = make_dataset(tmp_path / "d", 6)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cropper.cli", "compare", "--data", str(data), "--out", str(out),
               "--strategies", "low,full,policy,tool", "--cropper", "grid:2", "--global-side", "160", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = out / "results.jsonl"
    # Ctrl-C: the run stops, says how to go on, and keeps its lines.
    stopped = _stop_when(command, env, results, 3, signal.SIGINT)
    assert stopped.returncode == 130 and "rerun the same command to resume" in stopped.stderr
    first = read_results(results)
    assert 3 <= len(first) < 24
    # A crash (SIGKILL) of the rerun: no chance to clean up.
    _stop_when(command, env, results, len(first) + 3, signal.SIGKILL)
    partial = read_results(results)
    assert len(first) + 3 <= len(partial) < 24
    finished = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    rows = read_results(results)
    assert _pairs(rows) == sorted((f"q{i}", s) for i in range(6) for s in ("low", "full", "policy", "tool"))
    assert len(results.read_text().splitlines()) == 24
    assert all(r in rows for r in partial)  # nothing done before the kill was redone
    assert json.loads(finished.stdout)["strategies"]["policy"]["n"] == 6


def test_bad_items_become_error_lines_and_the_run_goes_on(tmp_path):
    root = tmp_path / "d"
    extra = [
        '{"id": "broken", "image": ',
        json.dumps({"id": "missing", "image": "images/nope.png", "question": "What is the order?", "answers": ["x"]}),
        json.dumps({"id": "garbage", "image": "images/garbage.png", "question": "What is the order?", "answers": ["x"]}),
        json.dumps({"id": "empty", "image": "images/0.png", "question": "What is the order?", "answers": []}),
        json.dumps({"id": "q0", "image": "images/0.png", "question": "What is the invoice?", "answers": ["x"]}),
    ]
    data = make_dataset(root, 2, extra_lines=extra)
    (root / "images" / "garbage.png").write_bytes(b"this is not a png")
    result = compare(data, "reader", "low,full", tmp_path / "run", global_side=160, progress=False)
    by_id = {}
    for row in result.rows:
        by_id.setdefault(row["id"], {})[row["strategy"]] = row
    assert set(by_id) == {"q0", "q1", "line 3", "missing", "garbage", "empty", "line 7"}
    for good in ("q0", "q1"):
        assert all(r["error"] is None for r in by_id[good].values())
    assert "data.jsonl:3" in by_id["line 3"]["low"]["error"] and "JSON" in by_id["line 3"]["low"]["error"]
    assert "nope.png" in by_id["missing"]["full"]["error"]
    assert "garbage.png" in by_id["garbage"]["full"]["error"]
    assert "answers" in by_id["empty"]["low"]["error"]
    assert "duplicate id" in by_id["line 7"]["low"]["error"]
    assert result.summary["strategies"]["full"]["errors"] == 5
    assert result.summary["strategies"]["full"]["n"] == 2


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    data = make_dataset(tmp_path / "d", 1)
    compare(data, "reader", "low", tmp_path / "run", global_side=160, report=False, progress=False)
    with pytest.raises(ValueError, match="other settings.*global_side 160 -> 512"):
        compare(data, "reader", "low", tmp_path / "run", global_side=512, report=False, progress=False)
    redone = compare(data, "reader", "low", tmp_path / "run", global_side=512, overwrite=True, report=False,
                     progress=False)
    assert redone.rows[0]["visual_tokens"] > compare(data, "reader", "low", tmp_path / "run2", global_side=160,
                                                     report=False, progress=False).rows[0]["visual_tokens"]


def test_a_folder_from_before_abstain_retries_resumes_only_without_them(tmp_path):
    data = make_dataset(tmp_path / "d", 1)
    compare(data, "reader", "low", tmp_path / "run", global_side=160, report=False, progress=False)
    run_file = tmp_path / "run" / "run.json"
    settings = json.loads(run_file.read_text())
    assert settings["abstain_retries"] == 2  # the default is recorded
    del settings["abstain_retries"]  # as an older cropper wrote it: its policy rows had no retries
    run_file.write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="abstain_retries 0 -> 2"):
        compare(data, "reader", "low", tmp_path / "run", global_side=160, report=False, progress=False)
    again = compare(data, "reader", "low", tmp_path / "run", global_side=160, abstain_retries=0, report=False,
                    progress=False)
    assert len(again.rows) == 1 and json.loads(run_file.read_text())["abstain_retries"] == 0


def test_a_folder_remembers_which_trained_policy_it_ran(tmp_path):
    """`policy:DIR` (or the bundled `policy`) names whatever the folder holds today: a resumed run whose
    policy changed (weights or settings) is refused instead of mixing two policies' rows."""
    from cropper.policy import CropPolicy, PolicyConfig

    data = make_dataset(tmp_path / "d", 1)
    torch.manual_seed(0)
    policy = CropPolicy(PolicyConfig(backbone="test_efficientnet", image_size=96, dim=32, hidden=64,
                                     encoder="hash", crop_set="awares9", gate_threshold=0.0))
    policy.save_pretrained(tmp_path / "p")
    spec = f"policy:{tmp_path / 'p'}"
    compare(data, "reader", "policy", tmp_path / "run", cropper=spec, global_side=160, report=False, progress=False)
    ran = json.loads((tmp_path / "run" / "run.json").read_text())["policies"]["policy"]
    assert ran == CropPolicy.from_pretrained(tmp_path / "p").fingerprint()
    again = compare(data, "reader", "policy", tmp_path / "run", cropper=spec, global_side=160, report=False,
                    progress=False)  # the same policy resumes (nothing left to do)
    assert len(again.rows) == 1
    policy.config.gate_threshold = 0.9  # same weights, other settings: other answers
    policy.save_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match="trained policy behind 'policy'"):
        compare(data, "reader", "policy", tmp_path / "run", cropper=spec, global_side=160, report=False,
                progress=False)


class _InFlight:
    """A fake-server responder that holds each request a moment and records how many overlap."""

    def __init__(self, hold: float = 0.15):
        self.hold, self.now, self.peak = hold, 0, 0
        self.lock = threading.Lock()

    def __call__(self, body):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.hold)
        with self.lock:
            self.now -= 1
        return {"text": "A1234", "usage": {"input_tokens": 900, "output_tokens": 4}}


def test_api_run_keeps_a_bounded_number_in_flight_and_prices_usage(tmp_path):
    data = make_dataset(tmp_path / "d", 10)
    probe = _InFlight()
    with FakeOpenAIServer(responder=probe, expected_key="sk-secret-test") as server:
        result = compare(data, f"openai-compatible:{server.url}#gpt-4.1-mini", "full", tmp_path / "run",
                         concurrency=3, api_key="sk-secret-test", progress=False)
    assert len(server.requests) == 10
    assert 2 <= probe.peak <= 3
    full = result.summary["strategies"]["full"]
    assert full["n"] == 10 and full["cost_basis"] == "usage"
    assert full["cost_per_1000_usd"] == pytest.approx(1000 * (900 * 0.40 + 4 * 1.60) / 1e6)
    for path in (tmp_path / "run").iterdir():
        assert "sk-secret-test" not in path.read_text(errors="replace"), path  # keys are never written


def test_api_run_respects_the_requests_per_minute_limit(tmp_path):
    data = make_dataset(tmp_path / "d", 5)
    with FakeOpenAIServer(default={"text": "A1234"}) as server:
        compare(data, f"openai-compatible:{server.url}#m", "full", tmp_path / "run", concurrency=4, rpm=300,
                report=False, progress=False)
    arrivals = sorted(r.time for r in server.requests)
    # 300 rpm: the limiter starts one request every 0.2 s, so 5 requests span at least 0.8 s (less the first
    # connection's set-up time, which delays only the first arrival).
    assert len(arrivals) == 5 and arrivals[-1] - arrivals[0] >= 0.65
    assert sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))[1] >= 0.15


def test_failed_api_calls_are_error_lines_that_a_rerun_fills(tmp_path):
    data = make_dataset(tmp_path / "d", 3)
    spec_options = dict(concurrency=1, report=False, progress=False)
    with FakeOpenAIServer(default={"text": "A1234"}) as server:
        server.enqueue({"status": 400}, {"status": 400})
        first = compare(data, f"openai-compatible:{server.url}#m", "full", tmp_path / "run", **spec_options)
        assert first.summary["strategies"]["full"]["errors"] == 2
        assert "400" in next(r["error"] for r in first.rows if r["error"])
        second = compare(data, f"openai-compatible:{server.url}#m", "full", tmp_path / "run", **spec_options)
    assert second.summary["strategies"]["full"]["errors"] == 0 and second.summary["strategies"]["full"]["n"] == 3
    assert len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 3


def test_a_dead_api_stops_the_run_and_keeps_what_was_written(tmp_path):
    data = make_dataset(tmp_path / "d", 6)
    with FakeOpenAIServer(expected_key="right-key") as server:
        with pytest.raises(BackendGaveUp, match="last 3 answers all failed.*rerun to resume"):
            compare(data, f"openai-compatible:{server.url}#m", "full", tmp_path / "run", api_key="wrong-key",
                    concurrency=1, max_consecutive_errors=3, progress=False)
    rows = read_results(tmp_path / "run" / "results.jsonl")
    assert len(rows) == 3 and all("401" in r["error"] for r in rows)


def test_cli_compare_prints_the_table_or_json(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", 2)
    args = ["compare", "--data", str(data), "--out", str(tmp_path / "run"), "--strategies", "low,full",
            "--global-side", "160", "--no-report"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "vs full" in printed and "harness overhead" in printed
    # A rerun with everything on disk asks nothing: the same table, and no overhead share of no work.
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategies"]["full"]["n"] == 2 and summary["timing"]["overhead_share"] is None
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "vs full" in printed and "nothing left to ask" in printed and "harness overhead" not in printed
    assert main(["compare", "--data", str(data), "--out", str(tmp_path / "x"), "--policy", "p", "--cropper", "grid"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["compare", "--data", str(data), "--out", str(tmp_path / "x"), "--strategies", "low,zoomy"]) == 2
    assert "unknown strategy 'zoomy'" in capsys.readouterr().err
