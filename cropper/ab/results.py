"""`results.jsonl`: one line per (item, strategy), appended and flushed as each finishes, resumable.

A rerun reads what is there and keeps every finished line; it drops a torn last line (a crash in the
middle of a write) and the error lines (so a dead API or a since-fixed image gets another try), rewrites
the file without them (atomically), and the run then appends only what is missing. So however often a
run is interrupted, the file ends with exactly one line per (item, strategy).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["ResultsFile", "read_results", "ROW_FIELDS"]

#: The fields every result line has (DESIGN.md's contract), plus optional extras documented in `compare`.
ROW_FIELDS = ("id", "strategy", "answer", "correct", "score", "visual_tokens", "pixels", "crops", "latency_s",
              "error")


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every well-formed line of a results file (a torn or garbled line is skipped)."""
    rows, _ = _read(Path(path))
    return rows


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    bad = 0
    if not path.exists():
        return rows, bad
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict) and "id" in row and "strategy" in row:
                rows.append(row)
            else:
                bad += 1
    return rows, bad


class ResultsFile:
    """The results of one run folder: what is done, and an append that survives being killed.

    `open()` loads and compacts the file and returns the finished rows keyed by `(id, strategy)`;
    `append(row)` writes one line and flushes it. Appends are serialized (callers may be threads).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._handle = None
        self._lock = threading.Lock()

    def open(self, retry_errors: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        rows, bad = _read(self.path)
        done: dict[tuple[str, str], dict[str, Any]] = {}
        dropped = bad
        for row in rows:
            key = (str(row["id"]), str(row["strategy"]))
            if (retry_errors and row.get("error")) or key in done:
                dropped += 1
                continue
            done[key] = row
        if dropped:
            self._rewrite(list(done.values()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        return done

    def append(self, row: dict[str, Any]) -> None:
        if self._handle is None:
            raise RuntimeError("ResultsFile.append before open()")
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
