"""Decompression bombs against `cropper serve`, over loopback: does the proxy keep its memory and its health?

    python -m cropper.serve.bombtest                       # 4 x 99 MP PNGs and 4 x 13000x13000 PNGs, at once
    python -m cropper.serve.bombtest --large 8 --bombs 8 --max-rss-mb 2048

Starts `cropper serve --upstream reader` (its default strategy, `policy`) as its own process, polls `/healthz` every 20 ms
from the start of the attack to its end, sends every image request at once, and prints one JSON object: the
statuses, the server's peak resident memory (`VmHWM` from /proc, Linux), the slowest and p99 `/healthz`,
and `passed` against the bounds (peak RSS, `/healthz` within `--max-healthz-ms`, no 5xx, every request
answered 200 or 4xx). Exit status 1 when it did not pass.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

from .loadtest import free_port, wait_healthy

__all__ = ["main", "run_bombs"]


def _png_data_url(width: int, height: int, mode: str = "RGB") -> str:
    """A PNG that compresses to a few hundred KB and decodes to width x height pixels."""
    from PIL import Image, ImageDraw

    image = Image.new(mode, (width, height), "white" if mode == "RGB" else 1)
    if mode == "RGB":
        ImageDraw.Draw(image).rectangle((width // 3, height // 3, width // 3 + 600, height // 3 + 200), fill="navy")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=9)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def run_bombs(url: str, large: int, bombs: int, large_side: int = 9950, bomb_side: int = 13000) -> dict:
    """Send `large` PNGs of `large_side`^2 px and `bombs` of `bomb_side`^2 px at once; statuses and /healthz."""
    import httpx

    big, bomb = _png_data_url(large_side, large_side), _png_data_url(bomb_side, bomb_side, mode="1")
    root = url.rsplit("/v1", 1)[0]
    health: list[float] = []
    stop = threading.Event()

    def poll():
        # Its own thread and connection: the attack's client work must not be counted as the server's delay.
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                reply = http.get(f"{root}/healthz")
                health.append((time.perf_counter() - started) * 1000 if reply.status_code == 200 else float("inf"))
                time.sleep(0.02)

    def body(data_url: str) -> bytes:
        return json.dumps({"model": "reader", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in the box?"},
            {"type": "image_url", "image_url": {"url": data_url}}]}]}).encode()

    async def send(http, content: bytes):
        try:
            reply = await http.post(f"{url}/chat/completions", content=content,
                                    headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            return f"lost ({type(exc).__name__})"
        return reply.status_code

    big_body, bomb_body = body(big), body(bomb)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        async with httpx.AsyncClient(timeout=300) as http:
            statuses = await asyncio.gather(*[send(http, big_body) for _ in range(large)],
                                            *[send(http, bomb_body) for _ in range(bombs)])
    finally:
        stop.set()
        poller.join()
    ordered = sorted(health)
    return {"statuses_large": dict(Counter(map(str, statuses[:large]))),
            "statuses_bombs": dict(Counter(map(str, statuses[large:]))),
            "large_image": f"{large_side}x{large_side} PNG, {len(big) // 1024} KB as a data URL",
            "bomb_image": f"{bomb_side}x{bomb_side} PNG, {len(bomb) // 1024} KB as a data URL",
            "healthz_checks": len(ordered), "healthz_max_ms": round(ordered[-1], 1) if ordered else None,
            "healthz_p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1) if ordered else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cropper.serve.bombtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=4, help="99 MP PNGs sent at once (under the 100 MP cap)")
    parser.add_argument("--bombs", type=int, default=4, help="13000x13000 PNGs sent at once (over the cap)")
    parser.add_argument("--max-rss-mb", type=float, default=2048, help="the bound on the server's peak memory")
    parser.add_argument("--max-healthz-ms", type=float, default=100, help="the bound on every /healthz answer")
    parser.add_argument("serve_args", nargs="*", help="more `cropper serve` flags, after --")
    args = parser.parse_args(argv)
    port = free_port()
    command = [sys.executable, "-m", "cropper.cli", "serve", "--upstream", "reader",
               "--port", str(port), "--log-level", "warning", *args.serve_args]
    server = subprocess.Popen(command, env={**os.environ, "CROPPER_PROXY_KEY": ""})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_healthy(url.rsplit("/v1", 1)[0] + "/healthz", server)
        baseline = _peak_rss_mb(server.pid)
        started = time.monotonic()
        result = asyncio.run(run_bombs(url, args.large, args.bombs))
        result["seconds"] = round(time.monotonic() - started, 1)
        result["server_rss_mb_before"] = round(baseline, 1) if baseline else None
        peak = _peak_rss_mb(server.pid)
        result["server_peak_rss_mb"] = round(peak, 1) if peak else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    statuses = [s for part in ("statuses_large", "statuses_bombs") for s in result[part] for _ in range(result[part][s])]
    no_5xx = all(s.isdigit() and int(s) < 500 for s in statuses)
    result["bounds"] = {"max_rss_mb": args.max_rss_mb, "max_healthz_ms": args.max_healthz_ms}
    result["passed"] = bool(no_5xx and (peak is None or peak <= args.max_rss_mb)
                            and result["healthz_max_ms"] is not None and result["healthz_max_ms"] <= args.max_healthz_ms)
    print(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
