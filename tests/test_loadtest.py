"""The load test measures what it says (issue 26, finding 7): it stops on time, tries the proxy's real
settings, counts 429s (waiting their Retry-After) and loses nothing, against its own proxy on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from cropper.serve import ServeConfig

KEYS = {"clients", "seconds", "elapsed_s", "requests", "ok", "correct", "rejected", "malformed", "lost",
        "unfinished", "p50_s", "p99_s", "reject_p99_s", "ok_per_s", "proxy", "wall_s"}


def load(*args: str, seconds: float) -> tuple[dict, float]:
    """Run `python -m cropper.serve.loadtest` as an operator would; its JSON and the wall time around it."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cropper.serve.loadtest", "--seconds", str(seconds), *args],
                          capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), wall


def check_accounting(stats: dict, clients: int, seconds: float, wall: float) -> None:
    assert KEYS <= set(stats)
    # It stops on time: its clients are done within a second of the deadline. The wall time around the
    # process also holds the interpreter's and the proxy's start, so it only gets a generous bound here;
    # `python -m cropper.serve.loadtest` reports both (`elapsed_s`, `wall_s`).
    assert stats["elapsed_s"] <= seconds + 1 and wall <= seconds + 30
    assert stats["requests"] == (stats["ok"] + stats["rejected"] + stats["malformed"] + stats["lost"]
                                 + stats["unfinished"])
    assert stats["lost"] == 0 and stats["malformed"] == 0
    assert stats["unfinished"] <= clients  # at most one request per client is cut at the deadline


def test_a_tiny_queue_is_refused_fast_and_the_clients_wait_their_retry_after():
    clients, seconds = 6, 8.0  # long enough for a cold reader to answer a few on a busy 2-core machine
    stats, wall = load("--clients", str(clients), "--max-concurrency", "1", "--max-queue", "0", seconds=seconds)
    check_accounting(stats, clients, seconds, wall)
    assert stats["proxy"]["max_concurrency"] == 1 and stats["proxy"]["max_queue"] == 0
    assert stats["ok"] > 0 and stats["correct"] == stats["ok"]
    assert stats["p50_s"] is not None and stats["p50_s"] <= stats["p99_s"]
    assert stats["ok_per_s"] > 0
    assert stats["rejected"] > 0 and stats["reject_p99_s"] < 1.0  # a 429 comes back at once
    # Retry-After is 1 s: a client that honours it is refused about once a second, not in a tight loop.
    assert stats["rejected"] <= clients * (seconds + 1)


def test_the_proxy_it_starts_has_cropper_serves_own_settings_and_ends_on_time():
    clients, seconds = 4, 4.0
    stats, wall = load("--clients", str(clients), seconds=seconds)
    check_accounting(stats, clients, seconds, wall)
    config = ServeConfig()
    assert stats["proxy"]["max_concurrency"] == config.max_concurrency == 8
    assert stats["proxy"]["max_queue"] == config.max_queue == 64
    assert stats["proxy"]["timeout"] == config.timeout_s == 120.0
    assert stats["rejected"] == 0  # 4 clients fit in 8 slots: nothing to refuse
    assert stats["requests"] >= clients
