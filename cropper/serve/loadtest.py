"""A bounded loopback load test of `cropper serve`: N concurrent clients for T seconds, then it stops.

    python -m cropper.serve.loadtest --clients 50 --seconds 30            # starts a proxy over the reader
    python -m cropper.serve.loadtest --max-queue 0 --max-concurrency 1    # ... with other proxy settings
    python -m cropper.serve.loadtest --url http://127.0.0.1:8000/v1 ...   # or hits a running one (loopback)

The proxy it starts has the settings of `cropper serve` itself (`ServeConfig`'s defaults: 8 answered at
once, 64 waiting, 120 s timeout) unless `--max-concurrency`, `--max-queue` or `--timeout` say otherwise, so
what it measures is what a client of a default proxy gets. Every client sends a chat completion with a small
page image and a question, checks the reply is a well-formed ChatCompletion, and goes again until the time
is up; on a 429 it waits the Retry-After the proxy sent (within the time left), then retries.

It stops on time: a request still running at the deadline is cancelled and counted as `unfinished` (not
lost), and its own proxy is then stopped without waiting for the work it still holds, so the whole run ends
within about `seconds` + 2. Prints one JSON object:

    requests     every request sent (ok + rejected + malformed + lost + unfinished)
    ok, correct  well-formed 200s, and those whose answer is the page's invoice number
    rejected     429s (each one waited its Retry-After before the client tried again)
    malformed    a 200 that is not a well-formed ChatCompletion, or an unexpected 1xx-4xx status
    lost         connection errors, 5xx, and client timeouts before the deadline
    unfinished   requests still running at the deadline (cancelled there)
    p50_s/p99_s  latency of the ok requests; reject_p99_s: how fast 429s came back
    ok_per_s     throughput: ok requests per second of the run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

__all__ = ["LoadStats", "free_port", "main", "run_load", "wait_healthy"]

#: Headroom of the client's own timeout over the proxy's: the proxy answers 504 at its timeout; a client
#: that gives up first would count a slow answer as lost when the proxy was about to say why.
CLIENT_TIMEOUT_MARGIN_S = 5.0
#: Wait after a 429 without a usable Retry-After header.
DEFAULT_RETRY_AFTER_S = 1.0
#: Pause after a connection error, so a proxy that is down is not hammered in a tight loop.
LOST_PAUSE_S = 0.1


def _page_data_url() -> str:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (900, 600), "white")
    # Pillow's bundled scalable font, as the synthetic scenes use (the serve package does not import training).
    ImageDraw.Draw(image).text((520, 420), "Invoice: K4521", fill="black", font=ImageFont.load_default(size=26))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _well_formed(payload) -> bool:
    try:
        choice = payload["choices"][0]
        return (payload["object"] == "chat.completion" and isinstance(choice["message"]["content"], str)
                and choice["finish_reason"] == "stop" and payload["usage"]["total_tokens"] >= 0)
    except (KeyError, IndexError, TypeError):
        return False


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds; an HTTP date or garbage: the default)."""
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER_S


def _percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q` quantile of `values` (None for none), in seconds to the millisecond."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)


@dataclass
class LoadStats:
    """What the clients saw (see the module docstring for each count)."""

    requests: int = 0
    ok: int = 0
    correct: int = 0
    rejected: int = 0
    malformed: int = 0
    lost: int = 0
    unfinished: int = 0
    latencies: list[float] = field(default_factory=list)  # of the ok requests
    reject_latencies: list[float] = field(default_factory=list)

    def summary(self, clients: int, seconds: float, elapsed: float) -> dict:
        """The JSON-ready report of a run of `clients` for `seconds` that took `elapsed`."""
        return {
            "clients": clients, "seconds": seconds, "elapsed_s": round(elapsed, 2),
            "requests": self.requests, "ok": self.ok, "correct": self.correct, "rejected": self.rejected,
            "malformed": self.malformed, "lost": self.lost, "unfinished": self.unfinished,
            "p50_s": _percentile(self.latencies, 0.50), "p99_s": _percentile(self.latencies, 0.99),
            "reject_p99_s": _percentile(self.reject_latencies, 0.99),
            "ok_per_s": round(self.ok / elapsed, 3) if elapsed > 0 else None,
        }


async def run_load(url: str, clients: int, seconds: float, timeout: float = 120.0) -> dict:
    """Drive `url` (a loopback `/v1` base) with `clients` concurrent loops for `seconds`; return the stats.

    `timeout` is the proxy's own per-request timeout: the client waits that plus a margin for an answer
    before counting it lost. No request outlives the deadline: one still running then is `unfinished`.
    """
    import httpx

    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load test only targets loopback addresses, not {host!r}")
    if clients < 1 or seconds <= 0:
        raise ValueError(f"need at least 1 client and a positive duration, got {clients} and {seconds}")
    body = {"model": "reader", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is the invoice?"}, {"type": "image_url", "image_url": {"url": _page_data_url()}}]}]}
    stats = LoadStats()
    started = time.monotonic()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)

    async with httpx.AsyncClient(timeout=timeout + CLIENT_TIMEOUT_MARGIN_S, limits=limits) as http:
        async def one() -> float | None:
            """Send one request and count its outcome; the seconds to wait before the next, or None to stop."""
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            stats.requests += 1
            sent = time.perf_counter()
            try:
                # The deadline bounds the request: at it, the request is cancelled (its connection closed).
                reply = await asyncio.wait_for(http.post(f"{url}/chat/completions", json=body), timeout=left)
            except asyncio.TimeoutError:
                stats.unfinished += 1
                return None
            except httpx.HTTPError:  # refused, reset, or no answer within the proxy's timeout + margin
                stats.lost += 1
                return LOST_PAUSE_S
            latency = time.perf_counter() - sent
            if reply.status_code == 429:
                stats.rejected += 1
                stats.reject_latencies.append(latency)
                return _retry_after(reply.headers.get("retry-after"))
            if reply.status_code >= 500:
                stats.lost += 1
                return 0.0
            try:
                payload = reply.json()
            except ValueError:
                payload = None
            if reply.status_code != 200 or not _well_formed(payload):
                stats.malformed += 1
                return 0.0
            stats.ok += 1
            stats.latencies.append(latency)
            stats.correct += payload["choices"][0]["message"]["content"] == "K4521"
            return 0.0

        async def client() -> None:
            while (wait := await one()) is not None:
                if wait > 0:  # Retry-After, but never past the deadline
                    await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - started
    return stats.summary(clients, seconds, elapsed)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proxy_defaults() -> dict:
    """`cropper serve`'s own capacity settings (ServeConfig's defaults), so the test measures those."""
    from .app import ServeConfig

    config = ServeConfig()
    return {"max_concurrency": config.max_concurrency, "max_queue": config.max_queue, "timeout": config.timeout_s}


def main(argv: list[str] | None = None) -> int:
    """The command line: start a proxy (or use `--url`), run the load, print one JSON object."""
    began = time.monotonic()
    defaults = _proxy_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--url", default=None, help="a running proxy's /v1 base (loopback only); default: start one")
    parser.add_argument("--max-concurrency", type=int, default=defaults["max_concurrency"],
                        help="for the proxy this starts (default: cropper serve's, %(default)s)")
    parser.add_argument("--max-queue", type=int, default=defaults["max_queue"],
                        help="for the proxy this starts (default: cropper serve's, %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults["timeout"],
                        help="the proxy's per-request timeout, passed to the one this starts (default: %(default)s)")
    # The workload, not a capacity setting: a 160-px global view makes the reader zoom once per request.
    parser.add_argument("--strategy", default="tool", choices=["policy", "tool", "low", "full"])
    parser.add_argument("--global-side", type=int, default=160)
    args = parser.parse_args(argv)
    server = None
    url = args.url
    settings = None
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1"
        settings = {"max_concurrency": args.max_concurrency, "max_queue": args.max_queue, "timeout": args.timeout,
                    "strategy": args.strategy, "global_side": args.global_side}
        server = subprocess.Popen(
            [sys.executable, "-m", "cropper.cli", "serve", "--upstream", "reader", "--strategy", args.strategy,
             "--global-side", str(args.global_side), "--port", str(port),
             "--max-concurrency", str(args.max_concurrency), "--max-queue", str(args.max_queue),
             "--timeout", str(args.timeout), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, env={**os.environ})
    try:
        if server is not None:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", server)
        result = asyncio.run(run_load(url, args.clients, args.seconds, timeout=args.timeout))
    finally:
        if server is not None:
            _stop(server)
    result["proxy"] = settings  # None: a running proxy, whose settings this cannot see
    result["wall_s"] = round(time.monotonic() - began, 2)
    print(json.dumps(result, indent=2))
    return 0


def _stop(server: subprocess.Popen, grace_s: float = 2.0) -> None:
    """Stop the proxy this started. Its remaining work is only load (no client waits for it any more), so
    it gets `grace_s` after SIGTERM, not the 30 s drain a real proxy gives its clients, then SIGKILL."""
    server.terminate()
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def wait_healthy(url: str, server: subprocess.Popen | None = None, seconds: float = 60.0) -> None:
    """Wait until `url` (a proxy's /healthz) answers 200; RuntimeError if `server` exits first or time runs out."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the proxy exited with status {server.returncode} before it was healthy")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the proxy did not become healthy at {url}")


if __name__ == "__main__":
    sys.exit(main())
