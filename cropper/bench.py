"""`cropper bench`: what the crop policy costs per query on this machine, beside one reader call.

The policy's latency is measured end to end as a user pays it (`policy.propose(image, question)`: resize of
the original image, question embedding from the cache, the network, the ranking), with the caller's torch
set to 1 and to 2 threads (taking turns query by query), p50/p90 over `repeats` queries each after a
warm-up (the first load and the first calls excluded; by then the network's image half runs on ONNX
Runtime, see `cropper.onnx_image_side`, and `image_half` says which served). A query schedules its own
work on two cores either way: the network on one torch thread, the finder and a RoI pass on the other
core. The reader call is the `policy` strategy's answer on the same image with the crops the policy chose
(global view + crops, OCR and answering), so the ratio says what share of a zoomed question the policy adds.
Peak memory is the process's peak resident set size. `machine_reference_ms` is a fixed single-thread
workload (`reference_workload`), timed between the queries: on a shared host the same code runs up to twice
as slowly in a busy hour, and this figure tells such an hour from a slower policy when two runs are compared.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any

QUESTIONS = (
    "What is written on the green sign?",
    "What does the red tag say?",
    "What is the Invoice number?",
    'What is the word after "river"?',
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def reference_workload() -> float:
    """Seconds for a fixed piece of single-thread work (float32 matrix products, the policy's kind of work):
    the same on every run, so it measures the machine, not the code."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.linspace(-1.0, 1.0, 192 * 192).view(192, 192)
        t0 = time.perf_counter()
        for _ in range(40):
            a = torch.tanh(a @ a)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def run_bench(policy_dir: str | None = None, repeats: int = 50, image=None) -> dict[str, Any]:
    """Time the policy (1 and 2 threads) and one reader call on a built-in 4000-px scene; see the module doc."""
    import torch

    from backends import load_backend

    from .policy import CropPolicy
    from .strategies import run_strategy
    from .wrapper import ZoomWrapper

    if image is None:
        from .demo import demo_scene

        image = demo_scene()[0]
    started = time.perf_counter()
    policy = CropPolicy.from_pretrained(policy_dir) if policy_dir else CropPolicy.default()
    load_s = time.perf_counter() - started
    for question in QUESTIONS:  # warm-up: first calls allocate, and the question cache fills
        policy.propose(image, question)
    before = torch.get_num_threads()
    times: dict[int, list[float]] = {1: [], 2: []}
    reference: list[float] = []
    try:
        # The two settings take turns query by query (each going first half the time), so a minute in
        # which the machine is slower weighs on both alike.
        for i in range(repeats):
            for threads in ((1, 2) if i % 2 == 0 else (2, 1)):
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                policy.propose(image, QUESTIONS[i % len(QUESTIONS)])
                times[threads].append(time.perf_counter() - t0)
            if i % 5 == 0:  # sampled through the same minutes as the queries
                reference.append(reference_workload())
    finally:
        torch.set_num_threads(before)
    latency = {f"{threads}_thread{'s' if threads > 1 else ''}": {
        "p50_ms": 1000 * statistics.median(ts), "p90_ms": 1000 * _percentile(ts, 0.9)} for threads, ts in times.items()}

    wrapper = ZoomWrapper(load_backend("reader"), strategy="policy")
    token_model = wrapper.token_model_for(wrapper.backend)

    class Chosen:
        def __init__(self, boxes):
            self.boxes = boxes

        def propose(self, *_args, **_kwargs):
            return self.boxes

    reader_times = []
    for question in QUESTIONS[:3]:
        boxes = policy.propose(image, question) or policy.propose(image, question, threshold=0.0)
        t0 = time.perf_counter()
        # A fresh backend per call: the reader caches what it read, and a cached call would flatter it.
        run_strategy("policy", load_backend("reader"), token_model, image, question, wrapper.config,
                     cropper=Chosen(boxes))
        reader_times.append(time.perf_counter() - t0)
    reader_ms = 1000 * statistics.median(reader_times)
    p50_2 = latency["2_threads"]["p50_ms"]
    return {
        "policy": policy_dir or "bundled default",
        "backbone": policy.config.backbone,
        "image_size": policy.config.image_size,
        "image": list(image.size),
        "load_s": load_s,
        "image_half": policy.image_side_runtime,
        "policy_latency": latency,
        "reader_call_ms": reader_ms,
        "policy_vs_reader": p50_2 / reader_ms if reader_ms else None,
        "peak_rss_mb": _peak_rss_mb(),
        "machine_reference_ms": 1000 * statistics.median(reference),
        "repeats": repeats,
    }


def format_bench(result: dict[str, Any]) -> str:
    """The bench result as a few readable lines."""
    lines = [f"policy: {result['policy']} ({result['backbone']}, {result['image_size']} px view) on a "
             f"{result['image'][0]}x{result['image'][1]} image; loaded in {result['load_s']:.2f}s; image half "
             f"on {result.get('image_half', 'pytorch')}"]
    for name, row in result["policy_latency"].items():
        lines.append(f"  propose, {name.replace('_', ' ')}: p50 {row['p50_ms']:.1f} ms, p90 {row['p90_ms']:.1f} ms")
    lines.append(f"  one reader call (global view + crops): {result['reader_call_ms']:.0f} ms")
    lines.append(f"  policy / reader call: {result['policy_vs_reader']:.1%}")
    lines.append(f"  peak memory (RSS): {result['peak_rss_mb']:.0f} MB")
    if "machine_reference_ms" in result:
        lines.append(f"  machine reference (fixed single-thread work; higher = a slower hour): "
                     f"{result['machine_reference_ms']:.1f} ms")
    return "\n".join(lines)
