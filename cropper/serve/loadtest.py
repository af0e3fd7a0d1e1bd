"""A bounded loopback load test of `cropper serve`: N concurrent clients for T seconds.

    python -m cropper.serve.loadtest --clients 50 --seconds 30            # starts a proxy over the reader
    python -m cropper.serve.loadtest --url http://127.0.0.1:8000/v1 ...   # or hits a running one (loopback)

Every client sends a chat completion with a small page image and a question, checks the reply is a
well-formed ChatCompletion with the expected fields, and goes again until the time is up. Prints one JSON
object: requests, ok, rejected (429), malformed, lost (errors/timeouts), p50/p99 latency, throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

__all__ = ["run_load", "main"]


def _page_data_url() -> str:
    from PIL import Image, ImageDraw

    from training.scenes import font

    image = Image.new("RGB", (900, 600), "white")
    ImageDraw.Draw(image).text((520, 420), "Invoice: K4521", fill="black", font=font(26))
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


async def run_load(url: str, clients: int, seconds: float, timeout: float = 120.0) -> dict:
    """Drive `url` (a loopback `/v1` base) with `clients` concurrent loops for `seconds`; return the stats."""
    import httpx

    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load test only targets loopback addresses, not {host!r}")
    body = {"model": "reader", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is the invoice?"}, {"type": "image_url", "image_url": {"url": _page_data_url()}}]}]}
    latencies: list[float] = []
    counts = {"requests": 0, "ok": 0, "rejected": 0, "malformed": 0, "lost": 0, "correct": 0}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        async def loop() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                counts["requests"] += 1
                try:
                    reply = await http.post(f"{url}/chat/completions", json=body)
                except httpx.HTTPError:
                    counts["lost"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if reply.status_code == 429:
                    counts["rejected"] += 1
                    continue
                try:
                    payload = reply.json()
                except json.JSONDecodeError:
                    payload = None
                if reply.status_code != 200 or not _well_formed(payload):
                    counts["malformed"] += 1
                    continue
                counts["ok"] += 1
                counts["correct"] += payload["choices"][0]["message"]["content"] == "K4521"

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.monotonic() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None

    return {"clients": clients, "seconds": round(elapsed, 1), **counts, "p50_s": pct(0.50), "p99_s": pct(0.99),
            "throughput_rps": round(counts["ok"] / elapsed, 2) if elapsed > 0 else None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--url", default=None, help="a running proxy's /v1 base (loopback only); default: start one")
    parser.add_argument("--max-concurrency", type=int, default=4, help="for the proxy this starts")
    args = parser.parse_args(argv)
    server = None
    url = args.url
    if url is None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}/v1"
        server = subprocess.Popen(
            [sys.executable, "-m", "cropper.cli", "serve", "--upstream", "reader", "--strategy", "tool",
             "--global-side", "160", "--port", str(port), "--max-concurrency", str(args.max_concurrency),
             "--max-queue", str(args.clients + 10), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, env={**os.environ})
        _wait_healthy(f"http://127.0.0.1:{port}/healthz")
    try:
        print(json.dumps(asyncio.run(run_load(url, args.clients, args.seconds)), indent=2))
    finally:
        if server is not None:
            server.terminate()  # SIGTERM: uvicorn finishes in-flight requests, then exits
            server.wait(timeout=60)
    return 0


def _wait_healthy(url: str, seconds: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the proxy did not become healthy at {url}")


if __name__ == "__main__":
    sys.exit(main())
