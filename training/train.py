"""`cropper train`: judge -> oracle -> SFT -> GRPO on a user's dataset, resumable, with logs and a plot.

Everything lands in `out/`: `labels.jsonl` (judge), `evidence.jsonl` (oracle), `answers.jsonl` (target
answers per crop choice), `metrics.jsonl` (one line per step), `state.json` (where a rerun resumes),
`checkpoint/` (the policy at the last finished stage), and finally `config.json` + `model.safetensors`
(the trained policy, loadable with `CropPolicy.from_pretrained(out)`), `eval.json` and `training.png`.
A rerun with the same `out` resumes after the last finished stage (the optimizer's moments restart).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cropper.geometry import Box
from cropper.images import load_image

from .datasets import Item, load_jsonl
from .examples import Example, make_examples
from .grpo import GRPOConfig, frozen_copy, train_grpo
from .rollout import BackendRollout
from .sft import ImageStore, SFTConfig, train_sft


@dataclass
class TrainConfig:
    """What `train` needs beyond the data, the target and the output folder."""

    policy: dict = field(default_factory=dict)  # PolicyConfig overrides (backbone, image_size, encoder, ...)
    sft: SFTConfig = field(default_factory=SFTConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    holdout: float = 0.1
    seed: int = 0
    device: str = "cpu"
    global_side: int = 1024
    limit: int | None = None
    progress: bool = True


def train(data: str | Path, backend, out: str | Path, config: TrainConfig | None = None,
          say: Callable[[str], None] = print):
    """Train a crop policy for `backend` on the JSONL `data`; returns (policy, evaluation dict)."""
    from cropper.policy import CropPolicy, PolicyConfig

    config = config or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    items, errors = load_jsonl(data)
    for err in errors:
        say(f"skipping {err}")
    if config.limit:
        items = items[: config.limit]
    if not items:
        raise ValueError(f"{data}: no usable items")
    train_items, held_out = split_by_image(items, config.holdout, config.seed)
    say(f"{len(train_items)} training items, {len(held_out)} held out")
    _fill_labels(train_items, backend, out, config, say)
    _fill_evidence(train_items, out, say)
    state = _read_state(out)
    if state.get("stage") in ("sft", "grpo", "done") and (out / "checkpoint" / "config.json").is_file():
        policy = CropPolicy.from_pretrained(out / "checkpoint", device=config.device)
        say(f"resuming after stage {state['stage']!r} from {out / 'checkpoint'}")
    else:
        policy = CropPolicy(PolicyConfig(**config.policy)).to(config.device)
    examples = make_examples(train_items, policy.candidate_boxes)
    images = ImageStore(policy, _loader())
    log = _metrics_logger(out / "metrics.jsonl")
    if state.get("stage") not in ("sft", "grpo", "done"):
        train_sft(policy, examples, images, config.sft, log=log, progress=config.progress)
        _checkpoint(policy, out, "sft")
    if state.get("stage") not in ("grpo", "done") and config.grpo.steps > 0:
        rollout = BackendRollout(backend, policy.candidate_boxes, _loader(), out / "answers.jsonl",
                                 global_side=config.global_side)
        train_grpo(policy, frozen_copy(policy), examples, images, rollout, config.grpo, log=log,
                   progress=config.progress)
        _checkpoint(policy, out, "grpo")
    policy.config.extra.update({"trained_on": str(data), "items": len(train_items)})
    policy.save_pretrained(out)
    report = evaluate_policy(policy, make_examples(held_out, policy.candidate_boxes) if held_out else examples)
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    plot_metrics(out / "metrics.jsonl", out / "training.png")
    _write_state(out, {"stage": "done"})
    return policy, report


def split_by_image(items: list[Item], holdout: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out whole images (questions on one image never straddle the split)."""
    keys = sorted({str(i.image_path) for i in items})
    random.Random(seed).shuffle(keys)
    n_out = int(round(len(keys) * holdout)) if len(keys) > 1 else 0
    out_keys = set(keys[:n_out])
    return [i for i in items if str(i.image_path) not in out_keys], [i for i in items if str(i.image_path) in out_keys]


def evaluate_policy(policy, examples: list[Example], coverage: float = 0.9) -> dict:
    """Gate accuracy over all items; evidence hit rate and mean crop area over items that need zoom."""
    loader = _loader()
    gate_right, hits, areas, zoom_items = 0, 0, [], 0
    for e in examples:
        image = loader(e.image_key)
        boxes = policy.propose(image, e.question)
        gate_right += (bool(boxes) == e.needs_zoom)
        if e.needs_zoom and e.evidence:
            zoom_items += 1
            hits += all(any(b.coverage(ev) >= coverage for b in boxes) for ev in e.evidence)
            areas.append(sum(b.area for b in boxes))
    return {
        "items": len(examples),
        "gate_accuracy": gate_right / len(examples) if examples else None,
        "evidence_hit_rate": hits / zoom_items if zoom_items else None,
        "mean_crop_area": sum(areas) / len(areas) if areas else None,
    }


def plot_metrics(metrics: Path, png: Path) -> Path | None:
    """Loss (SFT) and reward, accuracy and crop cost (GRPO) over steps, as one PNG."""
    if not metrics.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    sft = [r for r in rows if r.get("stage") == "sft"]
    grpo = [r for r in rows if r.get("stage") == "grpo"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if sft:
        axes[0].plot([r["step"] for r in sft], [r["loss"] for r in sft], label="SFT loss")
        axes[0].plot([r["step"] for r in sft], [r["crop_loss"] for r in sft], label="crop loss", alpha=0.7)
        axes[0].set_xlabel("SFT step")
        axes[0].legend()
    for key in ("reward", "accuracy", "crop_cost"):
        if grpo:
            axes[1].plot([r["step"] for r in grpo], [r[key] for r in grpo], label=key)
    axes[1].set_xlabel("GRPO step")
    if grpo:
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


# --- pieces --------------------------------------------------------------------------------------------------


def _loader():
    cache: dict[str, object] = {}

    def load(key: str):
        if key not in cache:
            if len(cache) > 64:  # large originals: keep a bounded number in memory
                cache.pop(next(iter(cache)))
            cache[key] = load_image(key)
        return cache[key]

    return load


def _fill_labels(items: list[Item], backend, out: Path, config: TrainConfig, say) -> None:
    missing = [i for i in items if i.extra.get("needs_zoom") is None]
    if not missing:
        return
    from .judge import label_items

    say(f"judging {len(missing)} items at low and full resolution (needs zoom?)")
    labels = label_items(missing, backend, cache_path=out / "labels.jsonl", progress=config.progress)
    by_id = {label.id: label for label in labels}
    for item in missing:
        label = by_id.get(item.id)
        item.extra["needs_zoom"] = bool(label.needs_zoom) if label is not None else bool(item.evidence)


def _fill_evidence(items: list[Item], out: Path, say) -> None:
    missing = [i for i in items if not i.evidence and i.extra.get("needs_zoom")]
    if not missing:
        return
    from .oracle import ground_answer

    say(f"grounding the answers of {len(missing)} items with OCR (no evidence boxes given)")
    cache_path = out / "evidence.jsonl"
    cache = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            try:
                row = json.loads(line)
                cache[row["id"]] = [Box.from_list(b) for b in row["evidence"]]
            except (ValueError, KeyError):
                continue
    with cache_path.open("a") as f:
        for item in missing:
            if item.id not in cache:
                cache[item.id] = ground_answer(load_image(item.image_path), item.answers)
                f.write(json.dumps({"id": item.id, "evidence": [b.to_list() for b in cache[item.id]]}) + "\n")
                f.flush()
            item.evidence = cache[item.id] or None


def _metrics_logger(path: Path):
    def log(row: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    return log


def _checkpoint(policy, out: Path, stage: str) -> None:
    policy.save_pretrained(out / "checkpoint")
    _write_state(out, {"stage": stage})


def _read_state(out: Path) -> dict:
    path = out / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write_state(out: Path, state: dict) -> None:
    tmp = out / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(out / "state.json")
