"""`results.jsonl`: one line per (item, strategy), appended and flushed as each finishes, resumable.

A rerun reads what is there and keeps every finished line; it drops a torn last line (a crash in the
middle of a write, said in a warning) and the error lines (so a dead API or a since-fixed image gets
another try), rewrites the file without them (atomically), and the run then appends only what is missing.
A complete last line that lost only its newline (a crash between the two) keeps its row and gets the
newline back before anything is appended, so two rows are never glued into one line. So however often a
run is interrupted, the file ends with exactly one line per (item, strategy).

One run at a time: `ResultsFile.lock()` (which `open()` takes if the caller has not) holds an OS advisory
lock on `results.jsonl.lock` beside the file until `close()`; a second run on the same folder gets
`RunFolderBusyError` instead of interleaving its lines with the first one's.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows has no flock: there two runs on one folder are not kept apart
    fcntl = None

__all__ = ["ResultsFile", "RunFolderBusyError", "read_results", "ROW_FIELDS", "LOCK_SUFFIX"]

#: The fields every result line has (DESIGN.md's contract), plus optional extras documented in `compare`.
ROW_FIELDS = ("id", "strategy", "answer", "correct", "score", "visual_tokens", "pixels", "crops", "latency_s",
              "error")
#: The lock file is the results file's name plus this, in the same folder (`results.jsonl.lock`).
LOCK_SUFFIX = ".lock"


class RunFolderBusyError(RuntimeError):
    """Another process (or another `ResultsFile` in this one) holds the run folder's lock."""


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every well-formed row of a results file (a torn or garbled line is skipped).

    A line holding several rows glued together (written by versions that appended after a line that had
    lost its newline) gives each of them.
    """
    return _read(Path(path)).rows


class _Contents:
    """What `_read` found: the rows, how many lines were unreadable, and the state of the last line."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.bad = 0  # unreadable lines, the torn tail included
        self.torn_tail = False  # the last line has no newline and is not a complete row: a broken write
        self.open_tail = False  # the last line has no newline (whatever it holds)


def _read(path: Path) -> _Contents:
    found = _Contents()
    if not path.exists():
        return found
    # errors="replace": a crash can tear a multi-byte character; the torn line then fails as JSON below
    # instead of the whole file failing to decode.
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            found.open_tail = not line.endswith("\n")
            if not line.strip():
                continue
            rows = _rows_of(line)
            if rows is None:
                found.bad += 1
                found.torn_tail = found.open_tail
            else:
                found.rows.extend(rows)
    return found


def _rows_of(line: str) -> list[dict[str, Any]] | None:
    """The rows on one line (usually one), or None when any of it is not a complete row."""
    decoder = json.JSONDecoder()
    text = line.strip()
    rows: list[dict[str, Any]] = []
    at = 0
    while at < len(text):
        try:
            row, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return None
        if not (isinstance(row, dict) and "id" in row and "strategy" in row):
            return None
        rows.append(row)
        while at < len(text) and text[at].isspace():
            at += 1
    return rows


class ResultsFile:
    """The results of one run folder: what is done, and an append that survives being killed.

    `open()` takes the folder's lock, loads and repairs the file and returns the finished rows keyed by
    `(id, strategy)`; `append(row)` writes one line and flushes it; `close()` closes the file and lets go of
    the lock. Appends are serialized (callers may be threads). Also a context manager (closes on exit).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        self._handle: IO[str] | None = None
        self._lock_handle: IO[str] | None = None
        self._lock = threading.Lock()

    def lock(self) -> None:
        """Take the run folder's lock without waiting; `RunFolderBusyError` when another run holds it.

        A no-op when already held, and on systems without `fcntl` (Windows). The OS drops the lock when
        the process dies, so a killed run never leaves the folder locked; the lock file itself stays
        (deleting it would let a third run lock a new file while the second still holds the old one).
        """
        if self._lock_handle is not None or fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.lock_path.open("a", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunFolderBusyError(
                f"{self.path.parent}: another compare is writing this run folder (it holds {self.lock_path.name}); "
                "wait for it to finish or stop it, or use another --out") from None
        except OSError as exc:  # a filesystem without flock (some network mounts): run, but say it is unguarded
            handle.close()
            warnings.warn(f"{self.lock_path}: could not lock the run folder ({exc}); nothing stops a second "
                          "compare from writing it at the same time", stacklevel=2)
            return
        self._lock_handle = handle

    def open(self, retry_errors: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """Lock the folder, read and repair the file, open it for appending; the finished rows by key.

        With `retry_errors` (the default) error lines are dropped so those pairs run again.
        """
        self.lock()
        try:
            return self._open(retry_errors)
        except BaseException:
            self.close()
            raise

    def _open(self, retry_errors: bool) -> dict[tuple[str, str], dict[str, Any]]:
        found = _read(self.path)
        if found.torn_tail:
            warnings.warn(f"{self.path}: dropped a torn last line (a run stopped in the middle of writing it); "
                          "that answer runs again", stacklevel=3)
        garbled = found.bad - (1 if found.torn_tail else 0)
        if garbled:
            warnings.warn(f"{self.path}: dropped {garbled} unreadable line(s); those answers run again", stacklevel=3)
        done: dict[tuple[str, str], dict[str, Any]] = {}
        dropped = found.bad
        for row in found.rows:
            key = (str(row["id"]), str(row["strategy"]))
            if (retry_errors and row.get("error")) or key in done:
                dropped += 1
                continue
            done[key] = row
        if dropped:
            self._rewrite(list(done.values()))  # every line of the rewrite ends in a newline
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        if found.open_tail and not dropped:
            # The last row is whole but lost its newline: end its line, or the next row would be glued to it.
            self._handle.write("\n")
            self._handle.flush()
        return done

    def append(self, row: dict[str, Any]) -> None:
        """Write `row` as one JSON line and flush it (thread-safe)."""
        if self._handle is None:
            raise RuntimeError("ResultsFile.append before open()")
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        """Close the file and release the folder's lock (safe to call twice)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the descriptor releases the flock
            self._lock_handle = None

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
