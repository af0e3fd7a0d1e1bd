"""Supervised fine-tuning of the crop policy: gate + crop scores (+ box refinement) from labels.

Labels come from the judge (does the item need zoom?) and the oracle (where is the evidence?), turned
into targets by `training.examples`.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .examples import Example


@dataclass
class SFTConfig:
    """Settings of `train_sft` (one config dataclass per trainer, as in TRL)."""

    epochs: int = 6
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    gate_weight: float = 1.0
    crop_weight: float = 1.0
    box_weight: float = 2.0
    warmup: float = 0.05  # share of the steps with a linear learning-rate warm-up; then cosine decay to 0
    seed: int = 0


class ImageStore:
    """Each image file made ready for the policy once (`CropPolicy.prepare`: its low-res view and its
    candidate crops), computed on first use."""

    def __init__(self, policy, loader: Callable[[str], object]):
        self._policy = policy
        self._loader = loader
        self._cache: dict[str, object] = {}

    def get(self, key: str):
        """The `Prepared` image for `key`."""
        if key not in self._cache:
            self._cache[key] = self._policy.prepare(self._loader(key))
        return self._cache[key]

    def candidates(self, key: str) -> list:
        """The candidate boxes of image `key` (the policy's fixed ones, then those found in it)."""
        return self.get(key).boxes

    def batch(self, keys: list[str]) -> dict[str, torch.Tensor]:
        """The network's inputs for these images (`CropPolicy.collate`)."""
        return self._policy.collate([self.get(k) for k in keys])

    def prefetch(self, keys, workers: int | None = None, progress: bool = True) -> None:
        """Load and preprocess every image of `keys` up front, in threads.

        Decoding a 4000-px PNG takes a few hundred ms and Pillow releases the GIL while it decodes and
        resizes, so threads use every core; done lazily, the first epoch would pay it one image at a time.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        todo = sorted({k for k in keys if k not in self._cache})
        if not todo:
            return
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            views = pool.map(lambda k: self._policy.prepare(self._loader(k)), todo)
            for key, view in zip(todo, tqdm(views, total=len(todo), desc="low-res views", unit="image",
                                            disable=not progress, leave=False), strict=True):
                self._cache[key] = view


def sft_loss(policy, examples: list[Example], images: ImageStore, config: SFTConfig) -> tuple[torch.Tensor, dict]:
    """The SFT loss on one batch and its parts (for the metrics log)."""
    device = policy.device
    inputs = images.batch([e.image_key for e in examples])
    q = policy.encode_questions([e.question for e in examples])
    out = policy(question_emb=q, **inputs)
    gate_target = torch.tensor([float(e.needs_zoom) for e in examples], device=device)
    gate_loss = F.binary_cross_entropy_with_logits(out.gate_logit, gate_target)
    targets = torch.zeros_like(out.crop_logits)  # padded: images have different numbers of candidates
    for i, e in enumerate(examples):
        targets[i, : len(e.crop_target)] = e.crop_target.to(device)
    has_target = targets.sum(dim=1) > 0
    crop_loss = torch.zeros((), device=device)
    box_loss = torch.zeros((), device=device)
    if has_target.any():
        logp = F.log_softmax(out.crop_logits[has_target], dim=-1)
        crop_loss = -(targets[has_target] * logp).sum(dim=-1).mean()
        if out.box_deltas is not None:
            refined = policy.refined_boxes(out)
            rows, goals = [], []
            for i, e in enumerate(examples):
                if has_target[i] and e.box_target is not None:
                    best = int(torch.argmax(e.crop_target))
                    rows.append(refined[i, best])
                    goals.append(e.box_target.to(device))
            if rows:
                box_loss = F.l1_loss(torch.stack(rows), torch.stack(goals))
    loss = config.gate_weight * gate_loss + config.crop_weight * crop_loss + config.box_weight * box_loss
    parts = {"loss": loss.item(), "gate_loss": gate_loss.item(), "crop_loss": crop_loss.item(), "box_loss": box_loss.item()}
    return loss, parts


def train_sft(policy, examples: list[Example], images: ImageStore, config: SFTConfig | None = None,
              log: Callable[[dict], None] | None = None, progress: bool = True, start_step: int = 0,
              optimizer: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
    """Train `policy` in place; `log` receives one metrics dict per step. Returns the optimizer (for resume)."""
    config = config or SFTConfig()
    if not examples:
        raise ValueError("SFT needs at least one example")
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
    total = config.epochs * steps_per_epoch
    warmup = max(1, int(config.warmup * total))

    def lr_factor(i: int) -> float:
        i += start_step  # resuming: the learning rate continues where the checkpoint stopped
        return min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, i / max(1, total))))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    bar = progress_bar(total, "SFT", progress, initial=start_step)
    step = 0
    policy.train()
    for epoch in range(config.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            step += 1
            if step <= start_step:
                continue  # resuming: these steps are already in the checkpoint (the shuffles stay in sync)
            batch = [examples[i] for i in order[b * config.batch_size : (b + 1) * config.batch_size]]
            loss, parts = sft_loss(policy, batch, images, config)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            schedule.step()
            if log is not None:
                log({"stage": "sft", "step": step, "epoch": epoch, "lr": schedule.get_last_lr()[0], **parts})
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
    bar.close()
    policy.eval()
    return optimizer


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):
    """A tqdm bar over `total` steps starting at `initial` (a resumed run), off when not `enabled`."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, initial=min(initial, total), leave=False)


def config_dict(config) -> dict:
    """A JSON-ready dict of a trainer config."""
    return asdict(config)
