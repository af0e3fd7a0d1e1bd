"""`cropper train-tool`: teach an open VLM to call `zoom` (AwaRes): trajectories -> SFT -> GRPO, with TRL.

    train_tool("hf:/models/Qwen2.5-VL-3B-Instruct", "data.jsonl", "runs/zoomer", ToolTrainConfig(stage="all"))
    ZoomWrapper("hf:runs/zoomer/final", strategy="tool")       # the result, unchanged inference code

Labels: an item needs zoom when its row says so (`needs_zoom`, e.g. `cropper synth`), else when the judge
finds the model wrong at low resolution and right at full resolution (`judge=True`: asks the model itself).
Evidence: the row's boxes, else the oracle's OCR grounding of the answer. An item that needs zoom but has
no evidence cannot be taught where to look and is left out (counted in `prepare.json`).

Layout of `out`: `sft/` and `grpo/` (TRL checkpoints: rerun the same command to resume), `sft-final/`,
`final/` (loads with `hf:DIR`; its processor carries the tool-aware chat template), `metrics.jsonl`,
`training.png`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .tool_env import ToolCostWeights, make_environment_factory, tool_answer_reward, tool_cost_reward
from .trajectories import build_trajectory, default_config, to_chat_example

__all__ = ["ToolTrainConfig", "train_tool", "prepare_tool_items", "ToolExamples"]

STAGES = ("sft", "grpo", "all")


@dataclass
class ToolTrainConfig:
    """Settings of `train_tool` (defaults follow AwaRes where it says; docs/training.md has a GPU recipe)."""

    stage: str = "all"
    crops: str | None = "awares9"  # the named crops offered to `zoom` (None: free boxes only)
    allow_boxes: bool = True
    global_side: int = 1024
    judge: bool = False  # label needs_zoom with the model itself when a row has no `needs_zoom`
    limit: int | None = None
    # SFT
    sft_epochs: float = 1.0
    sft_steps: int = -1  # > 0 overrides the epochs
    sft_lr: float = 1e-5
    tool_turn_weight: float = 5.0
    batch_size: int = 1
    grad_accum: int = 8
    # GRPO
    grpo_steps: int = 100
    grpo_lr: float = 1e-6
    group_size: int = 4
    beta: float = 0.04  # KL to the reference (the SFT model)
    epsilon: float = 0.2  # ratio clipping
    temperature: float = 1.0
    max_completion_length: int = 256
    max_tool_calls: int = 3
    alpha_use: float = 0.05
    lam: float = 0.05
    alpha_miss: float = 0.1
    cost_per: str = "call"  # "call" or "area"
    use_vllm: bool = False
    # Both
    lora: bool = False
    lora_r: int = 16
    device: str = "auto"
    bf16: bool | None = None  # default: on when training on CUDA
    seed: int = 0
    save_steps: int = 50
    logging_steps: int = 1


def prepare_tool_items(items, config: ToolTrainConfig, judge_backend=None, progress: bool = True) -> tuple[list[dict], dict]:
    """Label and ground the items: `[{item, needs_zoom, evidence}]` plus counts of what was kept and why not."""
    from tqdm.auto import tqdm

    from .judge import needs_zoom as judge_needs_zoom
    from .oracle import ground_answer

    kept, counts = [], {"items": len(items), "kept": 0, "zoom": 0, "direct": 0, "no_evidence": 0, "unlabelled": 0}
    for item in tqdm(items, desc="label and ground", disable=not progress, leave=False):
        needed = item.extra.get("needs_zoom")
        if needed is None and config.judge and judge_backend is not None:
            needed = judge_needs_zoom(judge_backend, item.image_path, item.question, item.answers,
                                      metric=item.metric or "auto").needs_zoom
        if needed is None:
            needed = bool(item.evidence)  # boxes given: the dataset says where the answer is; assume it is small
            counts["unlabelled"] += 1
        evidence = list(item.evidence or [])
        if needed and not evidence:
            evidence = ground_answer(item.load_image(), item.answers, item.question)
        if needed and not evidence:
            counts["no_evidence"] += 1
            continue
        kept.append({"item": item, "needs_zoom": bool(needed), "evidence": evidence})
        counts["zoom" if needed else "direct"] += 1
    counts["kept"] = len(kept)
    return kept, counts


class ToolExamples:
    """SFT examples built when asked (one image in memory at a time), in `to_chat_example` form."""

    def __init__(self, prepared: list[dict], config: ToolTrainConfig, token_model):
        self.prepared, self.config, self.token_model = prepared, config, token_model
        self.strategy = default_config(config.crops, config.allow_boxes, config.global_side)

    def __len__(self) -> int:
        return len(self.prepared)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.prepared[index]
        item = entry["item"]
        traj = build_trajectory(item.load_image(), item.question, item.answers[0], needs_zoom=entry["needs_zoom"],
                                evidence=entry["evidence"], config=self.strategy, token_model=self.token_model,
                                item_id=item.id)
        return to_chat_example(traj, native_tools=True)


def _grpo_rows(prepared: list[dict], config: ToolTrainConfig, token_model) -> list[dict[str, Any]]:
    strategy = default_config(config.crops, config.allow_boxes, config.global_side)
    rows = []
    for entry in prepared:
        item = entry["item"]
        traj = build_trajectory(item.load_image(), item.question, item.answers[0], needs_zoom=False,
                                config=strategy, token_model=token_model)
        example = to_chat_example(traj, native_tools=True)
        rows.append({"prompt": example["messages"][:2], "images": example["images"][:1],
                     "full_image": os.fspath(Path(item.image_path).resolve()), "answers": list(item.answers),
                     "needs_zoom": entry["needs_zoom"], "metric": item.metric or "auto"})
    return rows


def _device_args(config: ToolTrainConfig) -> dict[str, Any]:
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_cuda = device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: CUDA is not available on this machine")
    bf16 = config.bf16 if config.bf16 is not None else (on_cuda and torch.cuda.is_bf16_supported())
    return {"use_cpu": not on_cuda, "bf16": bool(bf16)}


def _peft_config(config: ToolTrainConfig):
    if not config.lora:
        return None
    from backends.base import require

    peft = require("peft", "'cropper-vlm[lora]'")
    return peft.LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.05,
                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(os.fspath(folder)) if folder.is_dir() else None


def _metrics_callback(path: Path, stage: str):
    from transformers import TrainerCallback

    class WriteMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"stage": stage, "step": state.global_step, **logs}) + "\n")

    return WriteMetrics()


def _load(model_dir: str, device_args: dict[str, Any]):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .chat_templates import prepare_for_tools

    processor = prepare_for_tools(AutoProcessor.from_pretrained(model_dir))
    dtype = torch.bfloat16 if device_args["bf16"] else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype)
    return model, processor


def _save(trainer, processor, folder: Path, config: ToolTrainConfig) -> Path:
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # LoRA: ship a plain checkpoint `hf:DIR` can load
        model = model.merge_and_unload()
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    (folder / "cropper_tool.json").write_text(json.dumps(
        {"crops": config.crops, "allow_boxes": config.allow_boxes, "global_side": config.global_side}, indent=2))
    return folder


def _model_dir(spec: str) -> str:
    path = spec.split(":", 1)[1] if spec.startswith("hf:") else spec
    if not Path(path).exists():
        raise FileNotFoundError(f"model folder not found: {path} (train-tool takes a local checkpoint, hf:DIR)")
    return path


def train_tool(model: str, data: str | os.PathLike, out: str | os.PathLike, config: ToolTrainConfig | None = None,
               progress: bool = True) -> Path:
    """Run the stages of `config.stage` and return the folder of the trained model (`out/final`)."""
    from trl import GRPOConfig, SFTConfig

    from cropper.tokens import token_model_for

    from .datasets import load_jsonl
    from .tool_sft import make_tool_sft_trainer

    config = config or ToolTrainConfig()
    if config.stage not in STAGES:
        raise ValueError(f"unknown stage {config.stage!r}; choose from {', '.join(STAGES)}")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental in TRL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tool_train_config.json").write_text(json.dumps(asdict(config), indent=2))
    items, bad = load_jsonl(data)
    if bad:
        (out / "bad_lines.json").write_text(json.dumps([b.to_dict() for b in bad], indent=2))
    if config.limit:
        items = items[: config.limit]
    if not items:
        raise ValueError(f"{data}: no usable items" + (f" ({len(bad)} bad lines, see {out / 'bad_lines.json'})" if bad else ""))
    start = _model_dir(model)
    device_args = _device_args(config)
    judge = None
    if config.judge:
        from cropper.wrapper import ZoomWrapper

        # "low" means the global view this run trains with.
        judge = ZoomWrapper(f"hf:{start}", strategy="low", global_side=config.global_side)
    prepared, counts = prepare_tool_items(items, config, judge, progress)
    (out / "prepare.json").write_text(json.dumps(counts, indent=2))
    if not prepared:
        raise ValueError(f"{data}: no item could be turned into a trajectory ({counts})")
    token_model = token_model_for("hf", start)
    metrics = out / "metrics.jsonl"
    common = dict(report_to=[], seed=config.seed, logging_steps=config.logging_steps, save_steps=config.save_steps,
                  save_total_limit=2, disable_tqdm=not progress, **device_args)

    current = start
    if config.stage in ("sft", "all"):
        model_obj, processor = _load(current, device_args)
        args = SFTConfig(output_dir=os.fspath(out / "sft"), num_train_epochs=config.sft_epochs,
                         max_steps=config.sft_steps, learning_rate=config.sft_lr,
                         per_device_train_batch_size=config.batch_size,
                         gradient_accumulation_steps=config.grad_accum, lr_scheduler_type="cosine", warmup_steps=0.05,
                         **common)
        trainer = make_tool_sft_trainer(model_obj, processor, ToolExamples(prepared, config, token_model), args,
                                        config.tool_turn_weight, _peft_config(config),
                                        callbacks=[_metrics_callback(metrics, "sft")])
        trainer.train(resume_from_checkpoint=_last_checkpoint(out / "sft"))
        current = os.fspath(_save(trainer, processor, out / "sft-final", config))
        if config.stage == "sft":
            return _finish(out, Path(current))

    if config.stage == "grpo" and (out / "sft-final").is_dir():
        current = os.fspath(out / "sft-final")  # a GRPO-only rerun continues from this run's SFT
    model_obj, processor = _load(current, device_args)
    processor.tokenizer.padding_side = "left"
    from datasets import Dataset
    from trl import GRPOTrainer

    weights = ToolCostWeights(config.alpha_use, config.lam, config.alpha_miss, config.cost_per)

    def tool_cost(completions, needs_zoom, environments=None, **kwargs):
        return tool_cost_reward(completions, needs_zoom, environments=environments, weights=weights)

    tool_cost.__name__ = "tool_cost_reward"
    args = GRPOConfig(output_dir=os.fspath(out / "grpo"), max_steps=config.grpo_steps, learning_rate=config.grpo_lr,
                      per_device_train_batch_size=config.group_size, num_generations=config.group_size,
                      gradient_accumulation_steps=1, beta=config.beta, epsilon=config.epsilon,
                      temperature=config.temperature, max_completion_length=config.max_completion_length,
                      max_tool_calling_iterations=config.max_tool_calls, use_vllm=config.use_vllm, **common)
    strategy = default_config(config.crops, config.allow_boxes, config.global_side)
    trainer = GRPOTrainer(model=model_obj, reward_funcs=[tool_answer_reward, tool_cost], args=args,
                          train_dataset=Dataset.from_list(_grpo_rows(prepared, config, token_model)),
                          processing_class=processor, peft_config=_peft_config(config),
                          environment_factory=make_environment_factory(strategy, token_model),
                          callbacks=[_metrics_callback(metrics, "grpo")])
    trainer.train(resume_from_checkpoint=_last_checkpoint(out / "grpo"))
    processor.tokenizer.padding_side = "right"
    return _finish(out, _save(trainer, processor, out / "final", config))


def _finish(out: Path, model_dir: Path) -> Path:
    final = out / "final"
    if model_dir != final:
        import shutil

        shutil.copytree(model_dir, final, dirs_exist_ok=True)
    _plot(out / "metrics.jsonl", out / "training.png")
    return final


def _plot(metrics: Path, png: Path) -> None:
    if not metrics.exists():
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    figure = Figure(figsize=(9, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    panels = (("sft", "loss", "SFT loss"), ("grpo", "reward", "GRPO reward"), ("grpo", "tools/call_frequency", "zoom calls per rollout"))
    for i, (stage, key, title) in enumerate(panels, 1):
        ax = figure.add_subplot(1, 3, i)
        points = [(r["step"], float(r[key])) for r in rows if r.get("stage") == stage and key in r]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png)
