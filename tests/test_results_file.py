"""`results.jsonl` survives a crash between a row and its newline, and one run folder takes one compare at a
time (issue 26, finding 5). Imports only what f07399e has, so these fail there rather than not collect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from compare_data import make_dataset
from fake_servers import FakeOpenAIServer

from cropper.ab import ResultsFile, compare, read_results
from cropper.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the run-folder lock needs fcntl")


def _row(item_id: str, strategy: str = "low", answer: str = "A1234") -> dict:
    return {"id": item_id, "strategy": strategy, "answer": answer, "error": None}


def _lines(path: Path) -> list[dict]:
    """Every line of the file as JSON: fails on a line that holds two rows or a fragment."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the tail of the file ------------------------------------------------------------------------------------


def test_a_last_row_without_its_newline_is_kept_and_the_next_row_gets_its_own_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row("a")) + "\n" + json.dumps(_row("b")), encoding="utf-8")  # crash before "\n"
    with ResultsFile(path) as results:
        assert set(results.open()) == {("a", "low"), ("b", "low")}
        results.append(_row("c"))
    assert [r["id"] for r in _lines(path)] == ["a", "b", "c"]


def test_a_torn_last_line_is_dropped_with_a_warning_that_names_the_file(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row("a")) + "\n" + '{"id": "b", "strategy": "lo', encoding="utf-8")
    with ResultsFile(path) as results:
        with pytest.warns(UserWarning, match="torn last line") as caught:
            done = results.open()
        assert str(path) in str(caught[0].message)
        assert set(done) == {("a", "low")}
        results.append(_row("b"))
    assert [r["id"] for r in _lines(path)] == ["a", "b"]


def test_a_multibyte_character_torn_by_a_crash_does_not_stop_the_resume(tmp_path):
    path = tmp_path / "results.jsonl"
    torn = json.dumps(_row("b", answer="Größe"), ensure_ascii=False).encode("utf-8")
    torn = torn[: torn.index("ö".encode()) + 1]  # half of the two bytes of "ö"
    path.write_bytes((json.dumps(_row("a")) + "\n").encode() + torn)
    with ResultsFile(path) as results, pytest.warns(UserWarning, match="torn last line"):
        assert set(results.open()) == {("a", "low")}
    assert [r["id"] for r in _lines(path)] == ["a"]


def test_two_rows_glued_by_an_older_version_are_both_read(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row("a")) + json.dumps(_row("b")) + "\n", encoding="utf-8")
    assert [r["id"] for r in read_results(path)] == ["a", "b"]


def test_compare_resumed_after_a_crash_before_the_newline_counts_every_row(tmp_path):
    data = make_dataset(tmp_path / "d", 2)
    out = tmp_path / "run"
    compare(data, "reader", "low,full", out, global_side=160, report=False, progress=False)
    results = out / "results.jsonl"
    lines = results.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    # The run that wrote the 4th row died after writing the 3rd row but before its newline.
    results.write_text("\n".join(lines[:3]), encoding="utf-8")
    again = compare(data, "reader", "low,full", out, global_side=160, report=False, progress=False)
    assert sorted((r["id"], r["strategy"]) for r in _lines(results)) == sorted(
        (f"q{i}", s) for i in range(2) for s in ("low", "full"))
    assert again.summary["strategies"]["low"]["n"] == again.summary["strategies"]["full"]["n"] == 2


# --- one compare per folder --------------------------------------------------------------------------------


def test_a_second_results_file_on_the_same_folder_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "run" / "results.jsonl"
    first = ResultsFile(path)
    first.open()
    try:
        with pytest.raises(RuntimeError, match="another compare is writing") as refused:
            ResultsFile(path).open()
        assert str(path.parent) in str(refused.value)
    finally:
        first.close()
    with ResultsFile(path) as second:  # closed: the lock is free again
        assert second.open() == {}


class _HoldFirst:
    """A fake-server responder that holds the first request until released and answers the rest at once."""

    def __init__(self):
        self.arrived, self.release = threading.Event(), threading.Event()
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, body):
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.arrived.set()
            self.release.wait(60)
        return {"text": "A1234", "usage": {"input_tokens": 900, "output_tokens": 4}}


def test_a_second_compare_on_a_busy_folder_fails_clearly_and_touches_nothing(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", 2)
    out = tmp_path / "run"
    hold = _HoldFirst()
    with FakeOpenAIServer(responder=hold) as server:
        backend = f"openai-compatible:{server.url}#gpt-4.1-mini"
        command = ["compare", "--data", str(data), "--out", str(out), "--strategies", "full", "--backend", backend,
                   "--concurrency", "1", "--no-report"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test"}
        first = subprocess.Popen([sys.executable, "-m", "cropper.cli", *command], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert hold.arrived.wait(60), "the first run never reached the server"
            before = {p.name: p.read_bytes() for p in out.iterdir()}
            started = time.perf_counter()
            # --overwrite would delete the results the first run is appending to, were it let in.
            rc = main([*command, "--overwrite"])
            err = capsys.readouterr().err
            assert rc == 2, err
            assert str(out) in err and "another compare is writing" in err
            assert time.perf_counter() - started < 30  # refused at once, not after waiting for the lock
            assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        finally:
            hold.release.set()
            _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert sorted(r["id"] for r in _lines(out / "results.jsonl")) == ["q0", "q1"]
    assert hold.calls == 2  # only the first run asked the model
