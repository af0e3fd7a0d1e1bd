"""`compare(...)`: run strategies side by side on a dataset, resumably, and write the summary and report.

    from cropper import compare
    result = compare("data.jsonl", backend="openai:gpt-4.1-mini", strategies="low,full,policy,tool",
                     out="ab-run", concurrency=8, rpm=500)
    result.summary["strategies"]["policy"]["token_ratio_vs_full"]
    result.rows          # list of dicts, one per (item, strategy): what results.jsonl holds

The run folder holds `run.json` (the settings results were made with), `results.jsonl` (appended as each
answer comes), `summary.json` and `report.html`. Rerunning with the same folder does only what is missing.
While a run writes the folder it holds a lock on `results.jsonl.lock`: a second run there is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..geometry import FULL, evidence_hit
from ..strategies import STRATEGIES, run_strategy
from .metering import MeteredBackend, RateLimiter, TimedCropper
from .results import ResultsFile, read_results

__all__ = ["compare", "Comparison", "parse_strategies", "RUN_FILE", "RESULTS_FILE", "SUMMARY_FILE", "REPORT_FILE"]

RUN_FILE, RESULTS_FILE, SUMMARY_FILE, REPORT_FILE = "run.json", "results.jsonl", "summary.json", "report.html"
#: Settings that change what a result means: a rerun into the same folder must keep them.
_FINGERPRINT = ("data", "backend", "cropper", "budget", "global_side", "max_rounds", "abstain_retries")
_API_CONCURRENCY = 8


@dataclass
class Comparison:
    """What `compare` returns: the summary (as in `summary.json`), the rows, and where the files are."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        """The summary as a plain-text table (what the CLI prints)."""
        from .table import format_summary

        return format_summary(self.summary)

    def _repr_html_(self) -> str:  # Jupyter shows the summary table
        from .report import summary_table_html

        return summary_table_html(self.summary)

    def __repr__(self) -> str:
        return f"Comparison(out={os.fspath(self.out)!r}, rows={len(self.rows)})"


def parse_strategies(strategies: str | Iterable[str]) -> list[str]:
    """`"low,full,policy"` or a list -> validated labels in order, duplicates dropped.

    Besides the four strategies, an entry may be a `policy` variant with its own cropper, so one run can put
    several croppers side by side: `policy:CROPPER` (e.g. `policy:vlm:openai-compatible:URL#cropvlm`), or
    `LABEL=policy:CROPPER` to give it a short name in the tables (`vlm=policy:vlm:...`). Likewise
    `LABEL=tool:awares` runs the `tool` strategy with AwaRes's `GET_CROPS` protocol.
    """
    names = strategies.split(",") if isinstance(strategies, str) else list(strategies)
    out: list[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        strategy_variant(name)  # validates
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no strategies given; choose from {', '.join(STRATEGIES)}")
    return out


def strategy_variant(entry: str) -> tuple[str, str, str | None]:
    """`(label, strategy, option)` of a `--strategies` entry: the cropper of a policy variant, or a tool protocol."""
    label, _, spec = entry.partition("=") if "=" in entry else (entry, "", entry)
    base, _, option = spec.partition(":")
    if base not in STRATEGIES:
        raise ValueError(f"unknown strategy {base!r} in {entry!r}; choose from {', '.join(STRATEGIES)} "
                         "(or policy:CROPPER, LABEL=policy:CROPPER, LABEL=tool:awares)")
    if option and base not in ("policy", "tool"):
        raise ValueError(f"{entry!r}: only policy (a cropper) and tool (a protocol) take an option")
    if base == "tool" and option and option not in ("tools", "awares"):
        raise ValueError(f"{entry!r}: the tool protocol is 'tools' or 'awares'")
    if not label.strip():
        raise ValueError(f"{entry!r}: empty label")
    return label.strip(), base, option or None


def compare(
    data: str | os.PathLike,
    backend: Any = "reader",
    strategies: str | Iterable[str] = ("low", "full", "policy", "tool"),
    out: str | os.PathLike = "cropper-compare",
    *,
    cropper: Any = None,
    limit: int | None = None,
    budget: int | None = None,
    global_side: int = 1024,
    max_rounds: int = 3,
    abstain_retries: int = 2,
    concurrency: int | None = None,
    rpm: float | None = None,
    by: str | None = None,
    prices: str | os.PathLike | dict | None = None,
    report: bool = True,
    gallery: int = 24,
    overwrite: bool = False,
    progress: bool = True,
    max_consecutive_errors: int = 25,
    **backend_options: Any,
) -> Comparison:
    """Answer every item of the dataset `data` with each strategy on `backend`; write and summarize.

    Args:
        data: a dataset JSONL (the contract in DESIGN.md; `evidence` optional).
        backend: a backend spec (`"reader"`, `"openai:gpt-4.1-mini"`, ...) or a `Backend`.
        strategies: which to run (`low`, `full`, `policy`, `tool`); `full` is the plain model.
        out: the run folder; rerunning into it resumes (same data, backend, cropper and budget).
        cropper: the `policy` strategy's cropper: a name (`text-regions`, `policy`, `policy:DIR`, `grid:N`)
            or an object with `propose`; default the same as `ZoomWrapper`'s.
        limit: only the first `limit` items. budget/global_side/max_rounds/abstain_retries: as in `ZoomWrapper`.
        concurrency: questions in flight at once (default 8 for API backends, 1 for local ones).
        rpm: at most this many backend requests per minute (API rate limits).
        by: an item field (e.g. `subset`) to break the summary down by.
        prices: a price table (JSON file or dict) merged over the built-in one, for dollars per 1,000.
        report: write `report.html`; gallery: how many items it shows, failures first.
        overwrite: start over when the folder holds results made with other settings.
        progress: show a progress bar.
        max_consecutive_errors: stop (resumably) after this many failed calls in a row, e.g. a bad key.
        **backend_options: passed to `load_backend` (e.g. `api_key`, `timeout`, `max_retries`).

    Each result line holds `id, strategy, answer, correct, score, visual_tokens, pixels, crops,
    latency_s, error`, plus `evidence_hit` (items with evidence: every evidence box at least 90% inside
    one crop; `full` counts the whole image as its crop, `low` has none), `rounds`, `backend_calls`,
    `input_tokens`, `output_tokens`, and the item's `question`, `answers`, `image` and scalar `fields`.
    """
    from training.datasets import load_jsonl  # lazy: cropper does not import training at import time

    from ..wrapper import DEFAULT_CROPPER, ZoomWrapper, make_cropper
    from .pricing import load_prices
    from .summary import summarize

    setup_started = time.perf_counter()
    variants: dict[str, tuple[str, str | None]] = {}
    for entry in parse_strategies(strategies):
        label, base, option = strategy_variant(entry)
        if variants.get(label, (base, option)) != (base, option):
            raise ValueError(f"strategy label {label!r} is given twice with different meanings")
        variants[label] = (base, option)
    names = list(variants)  # result rows, tables and plots use the labels
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    price_table = load_prices(prices)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cropper_spec = cropper if cropper is not None else DEFAULT_CROPPER
    settings = {
        "data": os.fspath(Path(data).resolve()), "backend": backend if isinstance(backend, str) else repr(backend),
        "cropper": cropper_spec if isinstance(cropper_spec, str) else type(cropper_spec).__name__,
        "budget": budget, "global_side": global_side, "max_rounds": max_rounds,
        "abstain_retries": abstain_retries,
    }
    settings["variants"] = {name: f"{base}:{option}" for name, (base, option) in variants.items() if option}
    croppers: dict[str, TimedCropper] = {}
    for name, (base, option) in variants.items():
        if base == "policy":
            inner = make_cropper(option or cropper_spec)
            if hasattr(inner, "crop_side"):
                inner.crop_side = None  # the view planner applies the crop cap; see ZoomWrapper.cropper
            croppers[name] = TimedCropper(inner)
    # Which trained policy each label ran (weights and settings): `policy` names whatever is bundled today.
    settings["policies"] = {name: fp for name, c in croppers.items()
                            if (fp := getattr(c.inner, "fingerprint", lambda: None)()) is not None}
    results = ResultsFile(out / RESULTS_FILE)
    # Lock first: a second run on this folder must fail before it rewrites run.json or --overwrite deletes
    # the results the first one is still appending to.
    results.lock()
    try:
        _check_run_file(out, settings, overwrite)

        items, bad_lines = load_jsonl(data, check_images=False)  # a missing image becomes that item's error line
        if limit is not None:
            items = items[:limit]
        item_ids = {item.id for item in items}
        wrapper = ZoomWrapper(backend, strategy="low", budget=budget, global_side=global_side, max_rounds=max_rounds,
                              abstain_retries=abstain_retries, **backend_options)
        target = wrapper.backend_for_ask()
        wrapper.pin_token_model(target)  # count on the real backend, not the proxies
        local = not hasattr(type(target), "async_client")  # HTTP backends have an async client; local ones not
        workers = concurrency or (1 if local else _API_CONCURRENCY)

        done = results.open()
        _record_bad_lines(results, done, bad_lines, item_ids, names)
        jobs = [(item, [s for s in names if (item.id, s) not in done]) for item in items]
        jobs = [(item, todo) for item, todo in jobs if todo]
        runner = _Runner(wrapper, target, results, variants, croppers, RateLimiter(rpm), max_consecutive_errors)
        setup_s = time.perf_counter() - setup_started
        total = sum(len(todo) for _, todo in jobs)
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="compare", unit="answer", disable=not progress or not total) as bar:
            runner.bar = bar
            if workers == 1 or len(jobs) <= 1:
                runner.run_sequential(jobs)
            else:
                runner.run_concurrent(jobs, workers, use_async=not local and hasattr(target, "agenerate"))
    finally:
        results.close()

    finish_started = time.perf_counter()
    wanted = item_ids | {_bad_line_id(e, item_ids) for e in bad_lines}
    rows = [r for r in read_results(out / RESULTS_FILE) if str(r["id"]) in wanted and r["strategy"] in names]
    summary = summarize(rows, names, by=by, prices=price_table, model=getattr(target, "model", None))
    summary["settings"] = {**settings, "strategies": names, "limit": limit, "concurrency": workers, "rpm": rpm}
    files = {"results": out / RESULTS_FILE, "summary": out / SUMMARY_FILE}
    if report:
        from .report import write_report

        files["report"] = write_report(out / REPORT_FILE, summary, rows, gallery=gallery)
    summary["timing"] = runner.timing(setup_s, time.perf_counter() - finish_started)
    _write_json(out / SUMMARY_FILE, summary)
    return Comparison(summary=summary, rows=rows, out=out, files=files)


def _check_run_file(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    path = out / RUN_FILE
    if path.exists() and not overwrite:
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            before = {}
        if before and "abstain_retries" not in before:
            before["abstain_retries"] = 0  # folders written before abstain retries existed ran without them
        changed = [k for k in _FINGERPRINT if k in before and before[k] != settings[k]]
        old_variants = before.get("variants") or {}
        changed += [f"strategy {label!r}" for label, spec in settings["variants"].items()
                    if label in old_variants and old_variants[label] != spec]
        old_policies = before.get("policies") or {}  # folders from before this was kept: not checked
        changed += [f"the trained policy behind {label!r}" for label, fp in settings["policies"].items()
                    if label in old_policies and old_policies[label] != fp]
        if changed:
            what = ", ".join(f"{k} {before[k]!r} -> {settings[k]!r}" if k in before else k for k in changed)
            raise ValueError(f"{out} holds results made with other settings ({what}); use another --out, or "
                             "--overwrite to start over")
    if overwrite:
        for name in (RESULTS_FILE, SUMMARY_FILE, REPORT_FILE):
            (out / name).unlink(missing_ok=True)
    if path.exists() and not overwrite:  # remember every variant label (and its policy) ever run here
        try:
            before = json.loads(path.read_text())
            settings = {**settings, "variants": {**(before.get("variants") or {}), **settings["variants"]},
                        "policies": {**(before.get("policies") or {}), **settings["policies"]}}
        except (json.JSONDecodeError, OSError):
            pass
    _write_json(path, settings)


def _bad_line_id(error, item_ids: set[str]) -> str:
    # A duplicate id must not take the first item's (id, strategy) slot.
    if error.item_id is not None and error.item_id not in item_ids:
        return str(error.item_id)
    return f"line {error.line}"


def _record_bad_lines(results: ResultsFile, done, bad_lines, item_ids: set[str], names: list[str]) -> None:
    for error in bad_lines:
        row_id = _bad_line_id(error, item_ids)
        for strategy in names:
            if (row_id, strategy) not in done:
                results.append(error_row(row_id, strategy, f"bad dataset line: {error}"))


def error_row(item_id: str, strategy: str, message: str, item=None) -> dict[str, Any]:
    """A result line for an (item, strategy) that could not be answered."""
    row: dict[str, Any] = {"id": item_id, "strategy": strategy, "answer": None, "correct": None, "score": None,
                           "visual_tokens": None, "pixels": None, "crops": [], "latency_s": None, "error": message}
    if item is not None:
        row.update(_item_fields(item))
    return row


def _item_fields(item) -> dict[str, Any]:
    fields = {k: v for k, v in item.extra.items()
              if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 80)}
    return {"question": item.question, "answers": list(item.answers), "image": os.fspath(Path(item.image_path).resolve()),
            "evidence": [b.to_list(4) for b in item.evidence] if item.evidence else None, "fields": fields}


class _Runner:
    """Runs the jobs (item, strategies to do), writes each row as it finishes, and keeps the clocks."""

    def __init__(self, wrapper, target, results: ResultsFile, variants: dict[str, tuple[str, str | None]],
                 croppers: dict[str, TimedCropper], limiter: RateLimiter, max_consecutive_errors: int):
        self.wrapper, self.target, self.results = wrapper, target, results
        self.variants, self.croppers, self.limiter = variants, croppers, limiter
        self.max_errors = max_consecutive_errors
        self.bar = None
        self._lock = threading.Lock()
        self._consecutive_errors = 0
        self._last_error = ""
        self.item_seconds = self.backend_seconds = self.cropper_seconds = 0.0
        self.calls = 0
        self.wall_started = time.perf_counter()

    # --- scheduling -----------------------------------------------------------------------------------

    def run_sequential(self, jobs) -> None:
        metered = MeteredBackend(self.target, self.limiter)
        for item, todo in jobs:
            self.run_item(item, todo, metered)

    def run_concurrent(self, jobs, workers: int, use_async: bool) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            # Our own pool: the loop's default executor must stay free, because the async SDKs use it (e.g.
            # openai runs platform probes through it) while our threads block on their requests.
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compare")
            if use_async:
                from ..wrapper import LoopBridge

                # HTTP requests run on this loop through the SDK's async client; the threads only run the
                # strategy logic around them.
                backend = LoopBridge(self.target, loop)
            else:
                backend = self.target
            metered = MeteredBackend(backend, self.limiter)
            gate = asyncio.Semaphore(workers)

            async def one(item, todo) -> None:
                async with gate:
                    await loop.run_in_executor(pool, self.run_item, item, todo, metered)

            try:
                await asyncio.gather(*(one(item, todo) for item, todo in jobs))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(main())
            return
        # Called from a running loop (a notebook): run ours in a thread of its own.
        failure: list[BaseException] = []
        worker = threading.Thread(target=lambda: _capture(failure, asyncio.run, main()), name="compare-loop")
        worker.start()
        worker.join()
        if failure:
            raise failure[0]

    # --- one item -------------------------------------------------------------------------------------

    def run_item(self, item, todo: list[str], metered: MeteredBackend) -> None:
        started = time.perf_counter()
        backend_before, cropper_before = metered.thread_seconds(), self._cropper_thread_seconds()
        try:
            image = item.load_image()
        except Exception as exc:  # unreadable, missing, too large: this item's error, the run goes on
            image = None
            problem = f"{type(exc).__name__}: {exc}"
        for strategy in todo:
            if image is None:
                row = error_row(item.id, strategy, problem, item)
            else:
                row = self.answer_row(item, image, strategy, metered)
            self.results.append(row)
            if self.bar is not None:
                self.bar.update(1)
            self._give_up_if_dead()  # after the write: the failed line is kept like any other
        elapsed = time.perf_counter() - started
        with self._lock:
            self.item_seconds += elapsed
            self.backend_seconds += metered.thread_seconds() - backend_before
            self.cropper_seconds += self._cropper_thread_seconds() - cropper_before

    def answer_row(self, item, image, strategy: str, metered: MeteredBackend) -> dict[str, Any]:
        from training.judge import is_correct, score  # lazy: cropper does not import training at import time

        base, option = self.variants[strategy]
        config = self.wrapper.config
        if base == "tool" and option:
            config = dataclasses.replace(config, protocol=option)
        try:
            answer = run_strategy(base, metered, self.wrapper.token_model_for(self.target), image, item.question,
                                  config, cropper=self.croppers.get(strategy))
        except Exception as exc:  # a backend that failed after its retries, a bad reply: recorded, run goes on
            self._count_error(f"{type(exc).__name__}: {exc}")
            return error_row(item.id, strategy, f"{type(exc).__name__}: {exc}", item)
        self._count_error(None)
        metric = item.metric or "auto"
        row: dict[str, Any] = {
            "id": item.id, "strategy": strategy, "answer": answer.text,
            "correct": is_correct(answer.text, item.answers, metric), "score": round(score(answer.text, item.answers, metric), 4),
            "visual_tokens": answer.visual_tokens, "pixels": answer.pixels,
            "crops": [b.to_list(4) for b in answer.crops], "latency_s": round(answer.latency_s, 4), "error": None,
            "rounds": answer.rounds, "backend_calls": len(answer.replies),
            "input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens,
        }
        if item.evidence:
            seen = [FULL] if base == "full" else answer.crops
            row["evidence_hit"] = evidence_hit(seen, item.evidence)
        row.update(_item_fields(item))
        return row

    def _count_error(self, message: str | None) -> None:
        with self._lock:
            if message is None:
                self._consecutive_errors = 0
            else:
                self._consecutive_errors += 1
                self._last_error = message

    def _give_up_if_dead(self) -> None:
        with self._lock:
            failed, message = self._consecutive_errors, self._last_error
        if self.max_errors and failed >= self.max_errors:
            raise BackendGaveUp(f"stopping: the last {failed} answers all failed (latest: {message}); finished "
                                "results are kept, rerun to resume")

    def _cropper_thread_seconds(self) -> float:
        return sum(c.thread_seconds() for c in self.croppers.values())

    def timing(self, setup_s: float, finish_s: float) -> dict[str, Any]:
        """Where this invocation's time went; `overhead_share` is the harness's own share of it.

        None when nothing was asked (a rerun that only rewrites the summary): a share of no work says nothing.
        """
        total = setup_s + self.item_seconds + finish_s
        harness = total - self.backend_seconds - self.cropper_seconds
        return {
            "wall_s": round(time.perf_counter() - self.wall_started + setup_s, 3),
            "work_s": round(total, 3), "backend_s": round(self.backend_seconds, 3),
            "cropper_s": round(self.cropper_seconds, 3), "harness_s": round(harness, 3),
            "setup_s": round(setup_s, 3), "finish_s": round(finish_s, 3),
            "overhead_share": round(harness / total, 4) if total > 0 and self.backend_seconds > 0 else None,
        }


class BackendGaveUp(RuntimeError):
    """Too many answers failed in a row (a bad key, a dead server): the run stops, results are kept."""


def _capture(failure: list[BaseException], fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # handed to the calling thread
        failure.append(exc)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
