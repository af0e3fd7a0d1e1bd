"""`cropper train`: judge -> oracle -> SFT -> GRPO on a user's dataset, resumable, with logs and a plot.

Everything lands in `out/`:

    labels.jsonl      the judge's low/full answers (items without a `needs_zoom` field)
    evidence.jsonl    the oracle's OCR-grounded boxes (items that need zoom and have no evidence)
    answers.jsonl     the target's answer per (item, crop choice) during GRPO
    metrics.jsonl     one line per training step (stage, step, loss / reward, accuracy, crop cost)
    state.json        where a rerun resumes: {"stage": "sft"|"grpo"|"done", "step": n}
    checkpoint/       the policy at the last checkpoint; sft/ the policy after SFT (GRPO's KL reference)
    config.json, model.safetensors   the trained policy (`CropPolicy.from_pretrained(out)`)
    eval.json         held-out evaluation of the policy (after SFT and after GRPO) and of TextRegionCropper
    training.png      loss, reward, accuracy and crop cost over steps

Each stage checkpoints every `checkpoint_every` steps, and every cache above is appended as it is
written, so an interrupted run (Ctrl-C, a crash, a dead API) resumes where it stopped: a rerun with the
same `out` reloads the last checkpoint and continues at the next step with the same data order and the
same GRPO samples. The optimizer's moments restart from zero at a resume (they are not saved: weights
are stored as safetensors only).

Multi-GPU: the trainers are plain PyTorch loops; the steps are small, so one device is the usual case.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .datasets import Item, load_jsonl
from .evaluate import evaluate_cropper, image_loader
from .examples import make_examples
from .grpo import GRPOConfig, train_grpo
from .sft import ImageStore, SFTConfig, train_sft

STATE, METRICS = "state.json", "metrics.jsonl"


@dataclass
class TrainConfig:
    """What `train` needs beyond the data, the target and the output folder."""

    policy: dict = field(default_factory=dict)  # PolicyConfig fields (backbone, image_size, encoder, ...)
    sft: SFTConfig = field(default_factory=SFTConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    holdout: float = 0.1  # share of images held out for the final evaluation
    seed: int = 0
    device: str = "cpu"
    global_side: int = 1024  # the low-res view the target sees (GRPO rollouts and evaluation)
    limit: int | None = None  # use only the first N items
    checkpoint_every: int = 50
    eval_target: bool = True  # evaluate held-out accuracy/reward with the target (costs target calls)
    eval_limit: int | None = 200  # at most this many held-out items are evaluated
    eval_full: bool = False  # also ask the plain model (full resolution) on the held-out items, for the ratio
    progress: bool = True
    # Start from a trained policy instead of random weights: a folder, or "default" for the bundled one.
    # Its network is kept; only the selection settings (SELECTION_FIELDS) may be overridden in `policy`.
    init: str | None = None


# PolicyConfig fields that only decide which crops `propose` returns, not the network: `--init` may change them.
SELECTION_FIELDS = ("k", "mass", "max_area", "gate_threshold", "nms_iou", "proposals")


def train(data: str | Path, backend, out: str | Path, config: TrainConfig | None = None,
          say: Callable[[str], None] = print):
    """Train a crop policy for `backend` (any backend, e.g. `load_backend("reader")`) on the JSONL `data`.

    Returns `(policy, report)`, the report being what `eval.json` holds.
    """
    from cropper.policy import CropPolicy

    config = config or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_run(out, data, config)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    items, errors = load_jsonl(data)
    for err in errors:
        say(f"skipping {err}")
    if config.limit:
        items = items[: config.limit]
    if not items:
        raise ValueError(f"{data}: no usable items (see the errors above)")
    train_items, held_out = split_by_image(items, config.holdout, config.seed)
    say(f"{len(train_items)} training items, {len(held_out)} held out ({len({i.image_path for i in items})} images)")
    fill_labels(train_items + held_out, backend, out, config, say)
    fill_evidence(train_items + held_out, out, config, say)

    state = read_state(out)
    stage, done_steps = state.get("stage"), int(state.get("step", 0))
    if stage is not None and (out / "checkpoint" / "config.json").is_file():
        policy = CropPolicy.from_pretrained(out / "checkpoint", device=config.device)
        say(f"resuming: stage {stage!r}, step {done_steps}, from {out / 'checkpoint'}")
    else:
        stage, done_steps = "sft", 0
        policy = initial_policy(config)
        if config.init:
            say(f"starting from the trained policy {config.init!r}")
    policy.train()
    load = image_loader()
    images = ImageStore(policy, load)
    images.prefetch([str(i.image_path) for i in train_items], progress=config.progress)
    examples = make_examples(train_items, images.candidates)
    log = MetricsLog(out / METRICS, stage, done_steps)

    if stage == "sft":
        train_sft(policy, examples, images, config.sft, progress=config.progress, start_step=done_steps,
                  log=log.with_checkpoints(policy, out, "sft", config.checkpoint_every))
        policy.save_pretrained(out / "sft")
        _checkpoint(policy, out, "grpo", 0)
        stage, done_steps = "grpo", 0
    if stage == "grpo":
        if config.grpo.steps > 0:
            from .rollout import BackendRollout

            reference = CropPolicy.from_pretrained(out / "sft", device=config.device, encoder=policy.encoder)
            rollout = BackendRollout(backend, None, load, out / "answers.jsonl",
                                     global_side=config.global_side)
            train_grpo(policy, reference, examples, images, rollout, config.grpo, progress=config.progress,
                       start_step=done_steps, log=log.with_checkpoints(policy, out, "grpo", config.checkpoint_every))
        _checkpoint(policy, out, "done", 0)

    policy.config.extra.update({"trained_on": str(data), "train_items": len(train_items), "init": config.init,
                                "sft": dataclasses.asdict(config.sft),
                                "grpo": {k: v for k, v in dataclasses.asdict(config.grpo).items()}})
    policy.save_pretrained(out)
    report = evaluate_run(out, policy, held_out or train_items, backend, config, say)
    (out / "eval.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot_metrics(out / METRICS, out / "training.png")
    say(f"wrote {out / 'model.safetensors'}, {out / 'eval.json'} and {out / 'training.png'}")
    return policy, report


def normalized_init(init: str) -> str:
    """`default` for the bundled policy (also spelled `policy`), else the folder's absolute path."""
    return "default" if init in ("default", "policy") else str(Path(init).resolve())


def initial_policy(config: TrainConfig):
    """The policy SFT starts from: random weights from `config.policy`, or the trained one `config.init`."""
    from cropper.policy import CropPolicy, PolicyConfig

    if not config.init:
        return CropPolicy(PolicyConfig(**config.policy)).to(config.device)
    if normalized_init(config.init) == "default":
        policy = CropPolicy.default(device=config.device)
    else:
        policy = CropPolicy.from_pretrained(config.init, device=config.device)
    fixed = sorted(k for k, v in config.policy.items()
                   if k not in SELECTION_FIELDS and getattr(policy.config, k, None) != v)
    if fixed:
        raise ValueError(f"init {config.init!r}: its network is kept, so {', '.join(fixed)} cannot change; "
                         f"drop them, or train from scratch without init")
    selection = {k: v for k, v in config.policy.items() if k in SELECTION_FIELDS}
    policy.config = dataclasses.replace(policy.config, **selection, extra={})
    return policy


def evaluate_run(out: Path, policy, items: list[Item], backend, config: TrainConfig, say) -> dict[str, Any]:
    """Held-out summaries of the final policy, the SFT-only policy and TextRegionCropper."""
    from cropper.croppers import TextRegionCropper
    from cropper.policy import CropPolicy

    items = items[: config.eval_limit] if config.eval_limit else items
    examples = make_examples(items, None)  # evaluation reads no crop targets
    target = backend if config.eval_target else None
    load = image_loader()
    report: dict[str, Any] = {"held_out_items": len(examples)}
    contenders = {"policy": policy, "text_regions": TextRegionCropper()}
    if (out / "sft").is_dir() and config.grpo.steps > 0:
        contenders["sft_only"] = CropPolicy.from_pretrained(out / "sft", device=config.device, encoder=policy.encoder)
    for name, cropper in contenders.items():
        result = evaluate_cropper(cropper, examples, target, full=(name == "policy" and target is not None and config.eval_full),
                                  weights=config.grpo.weights, global_side=config.global_side,
                                  progress=config.progress, desc=f"eval {name}", load=load)
        report[name] = result["summary"]
        say(f"{name}: " + ", ".join(f"{k}={v:.3f}" for k, v in result["summary"].items()
                                     if isinstance(v, float)))
    return report


def split_by_image(items: list[Item], holdout: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out whole images (questions on one image never straddle the split)."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be within [0, 1), got {holdout}")
    keys = sorted({str(i.image_path) for i in items})
    random.Random(seed).shuffle(keys)
    n_out = int(round(len(keys) * holdout)) if len(keys) > 1 else 0
    out_keys = set(keys[:n_out])
    return ([i for i in items if str(i.image_path) not in out_keys],
            [i for i in items if str(i.image_path) in out_keys])


def fill_labels(items: list[Item], backend, out: Path, config: TrainConfig, say) -> None:
    """Set `needs_zoom` where the dataset has none: the judge asks the target at low and full resolution."""
    missing = [i for i in items if i.extra.get("needs_zoom") is None]
    if not missing:
        return
    from cropper.wrapper import ZoomWrapper

    from .judge import label_items

    say(f"judging {len(missing)} items at low and full resolution (does each need zoom?)")
    # "Low" is the global view the policy strategy will send: the same size as in rollouts and evaluation.
    wrapper = ZoomWrapper(backend, strategy="low", global_side=config.global_side)
    labels = label_items(missing, wrapper, cache_path=out / "labels.jsonl", progress=config.progress)
    for item, label in zip(missing, labels, strict=True):
        item.extra["needs_zoom"] = bool(label.needs_zoom)


def fill_evidence(items: list[Item], out: Path, config: TrainConfig, say) -> None:
    """Ground the answers of items that need zoom and have no evidence boxes (OCR at full resolution)."""
    from cropper.geometry import Box

    from .oracle import fill_evidence as oracle_fill

    missing = [i for i in items if not i.evidence and i.extra.get("needs_zoom")]
    if not missing:
        return
    say(f"grounding the answers of {len(missing)} items with OCR (they have no evidence boxes)")
    rows = [{"id": i.id, "image": str(i.image_path), "question": i.question, "answers": i.answers} for i in missing]
    filled = oracle_fill(rows, cache=out / "evidence.jsonl", progress=config.progress)
    found = 0
    for item, row in zip(missing, filled, strict=True):
        item.evidence = [Box.from_list(b) for b in row["evidence"]] or None
        found += bool(item.evidence)
    say(f"the oracle found evidence for {found} of {len(missing)} items")


class MetricsLog:
    """Appends one JSON line per step; on a resume, drops the lines written after the last checkpoint."""

    def __init__(self, path: Path, stage: str, step: int):
        self.path = path
        if path.exists():
            order = {"sft": 0, "grpo": 1, "done": 2}
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                row_stage = order.get(row.get("stage"), 0)
                if row_stage < order.get(stage, 0) or (row_stage == order.get(stage, 0) and row.get("step", 0) <= step):
                    kept.append(line)
            path.write_text("".join(x + "\n" for x in kept), encoding="utf-8")

    def __call__(self, row: dict) -> None:
        # A wall-clock stamp per step: where a run's time went, and how fast a resumed one goes.
        row = {**row, "time": round(time.time(), 3)}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def with_checkpoints(self, policy, out: Path, stage: str, every: int) -> Callable[[dict], None]:
        def log(row: dict) -> None:
            self(row)
            if every and row["step"] % every == 0:
                _checkpoint(policy, out, stage, row["step"])

        return log


def plot_metrics(metrics: Path, png: Path) -> Path | None:
    """SFT loss, and GRPO reward, accuracy and crop cost (smoothed), over steps, as one PNG."""
    if not metrics.exists():
        return None
    # The object API, not pyplot + matplotlib.use("Agg"): switching the global backend would stop a
    # notebook that calls `train` from showing its own figures afterwards.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    sft = [r for r in rows if r.get("stage") == "sft"]
    grpo = [r for r in rows if r.get("stage") == "grpo"]
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    axes[0].set_title("SFT")
    if sft:
        steps = [r["step"] for r in sft]
        for key in ("loss", "gate_loss", "crop_loss", "box_loss"):
            axes[0].plot(steps, _smooth([r[key] for r in sft]), label=key)
        axes[0].set_xlabel("step")
        axes[0].legend()
    axes[1].set_title("GRPO")
    if grpo:
        steps = [r["step"] for r in grpo]
        for key in ("reward", "accuracy", "crop_cost", "crop_rate"):
            axes[1].plot(steps, _smooth([r[key] for r in grpo]), label=key)
        axes[1].set_xlabel("step")
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    return png


def _smooth(values: list[float], window: int = 10) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        acc = acc[-window:]
        out.append(sum(acc) / len(acc))
    return out


def _checkpoint(policy, out: Path, stage: str, step: int) -> None:
    policy.save_pretrained(out / "checkpoint")
    write_state(out, {"stage": stage, "step": step})


def read_state(out: Path) -> dict:
    """The resume point of a run folder ({} for a new one)."""
    path = out / STATE
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(out: Path, state: dict) -> None:
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(out / STATE)


def _check_same_run(out: Path, data, config: TrainConfig) -> None:
    """Refuse to resume a folder that was started with other data or settings (it would mix two runs)."""
    settings = {"data": str(Path(data).resolve()), "policy": config.policy, "seed": config.seed,
                "holdout": config.holdout, "limit": config.limit, "sft": dataclasses.asdict(config.sft),
                "grpo": json.loads(json.dumps(dataclasses.asdict(config.grpo)))}
    if config.init:  # only when set, so folders written before `init` existed still resume
        settings["init"] = normalized_init(config.init)
    path = out / "run.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            changed = sorted(k for k in settings if old.get(k) != settings[k])
            raise ValueError(f"{out} holds a run with other settings ({', '.join(changed)}); "
                             "use a new --out or the same settings to resume")
        return
    path.write_text(json.dumps(settings, indent=2))
