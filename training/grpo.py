"""GRPO for the crop policy: sample crop choices, ask the frozen target, reward, group-normalize, update.

For each item the policy samples `group_size` choices: first the gate (crop or not), then one candidate
crop, or with `crops=m` an ordered set of m distinct candidates (Plackett-Luce, drawn with the Gumbel top-k
trick), which is what `propose` sends: several crops, best first. The frozen target backend answers the
global view plus those crops (answers cached by (item, choice), so a repeated choice costs nothing),
`training.rewards.total_reward` scores it, advantages are normalized within the group, and the update is
PPO-style: clipped probability ratio plus a KL penalty to the frozen SFT reference policy (k3 estimator, as
in DeepSeekMath's GRPO).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .examples import Example
from .rewards import CostWeights, CropCompletion, answer_reward, total_reward
from .sft import ImageStore, progress_bar

NO_CROP = -1

#: rollout(example, choice) -> what the target answered and what the crops cost. A choice is a candidate
#: index or NO_CROP, or (with `GRPOConfig.crops` > 1) a tuple of candidate indices, best first.
Rollout = Callable[[Example, "int | tuple[int, ...]"], CropCompletion]


@dataclass
class GRPOConfig:
    """Settings of `train_grpo`."""

    steps: int = 40
    batch_size: int = 8
    group_size: int = 4
    inner_steps: int = 2  # updates per batch of rollouts (the clipped ratio matters from the second on)
    lr: float = 2e-4
    clip: float = 0.2
    kl: float = 0.05
    temperature: float = 1.0
    # Crops per sampled choice. 1: learn which single crop pays best. m > 1: an ordered set of m distinct
    # crops, so the reward is the one the target gives for a set like those `propose(k=m)` sends.
    crops: int = 1
    weights: CostWeights = field(default_factory=CostWeights)
    seed: int = 0


def log_probs(out, choices: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(choice) per row: log p(gate=0) for NO_CROP, else log p(gate=1) + log p(crops | gate=1).

    `choices` [N] (one crop each) or [N, m] (ordered sets, NO_CROP rows all NO_CROP): a set's log
    probability is the Plackett-Luce one, each pick's log-softmax over the candidates not yet picked.
    """
    log_yes = torch.nn.functional.logsigmoid(out.gate_logit)
    log_no = torch.nn.functional.logsigmoid(-out.gate_logit)
    logits = out.crop_logits / temperature
    picks = choices[:, None] if choices.dim() == 1 else choices
    safe = picks.clamp(min=0)
    taken = torch.zeros_like(logits, dtype=torch.bool)
    picked = torch.zeros_like(log_yes)
    for j in range(safe.shape[1]):
        remaining = torch.logsumexp(logits.masked_fill(taken, float("-inf")), dim=-1)
        picked = picked + logits.gather(1, safe[:, j : j + 1])[:, 0] - remaining
        taken = taken.scatter(1, safe[:, j : j + 1], True)
    return torch.where(picks[:, 0] == NO_CROP, log_no, log_yes + picked)


@torch.no_grad()
def sample_choices(out, group_size: int, generator: torch.Generator, temperature: float = 1.0,
                   crops: int = 1) -> torch.Tensor:
    """[B, G] sampled choices (candidate index or NO_CROP), or [B, G, crops] ordered sets when crops > 1.

    Sampled on the CPU (where `generator` lives), whatever device the policy runs on."""
    gate = torch.sigmoid(out.gate_logit.detach().float().cpu())[:, None].expand(-1, group_size)
    scores = out.crop_logits.detach().float().cpu()
    crop_now = torch.bernoulli(gate, generator=generator).bool()
    if crops == 1:
        probs = torch.softmax(scores / temperature, dim=-1)
        picks = torch.multinomial(probs, group_size, replacement=True, generator=generator)
        return torch.where(crop_now, picks, torch.full_like(picks, NO_CROP))
    # Gumbel top-k: the order of the perturbed scores' top m is a Plackett-Luce sample of m distinct crops.
    logits = (scores / temperature)[:, None, :].expand(-1, group_size, -1)
    uniform = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1 - 1e-7)
    picks = (logits - torch.log(-torch.log(uniform))).topk(min(crops, logits.shape[-1]), dim=-1).indices
    return torch.where(crop_now[..., None], picks, torch.full_like(picks, NO_CROP))


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """[B, G] rewards -> advantages normalized within each group (zero where the group agrees)."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + 1e-4)


def train_grpo(policy, reference, examples: list[Example], images: ImageStore, rollout: Rollout,
               config: GRPOConfig | None = None, log: Callable[[dict], None] | None = None, progress: bool = True,
               start_step: int = 0, optimizer: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
    """Train `policy` in place against the frozen `reference`; returns the optimizer (for resume)."""
    config = config or GRPOConfig()
    if not examples:
        raise ValueError("GRPO needs at least one example")
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.AdamW(params, lr=config.lr)
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    bar = progress_bar(config.steps, "GRPO", progress, initial=start_step)
    for step in range(1, config.steps + 1):
        batch = rng.sample(examples, min(config.batch_size, len(examples)))
        if step <= start_step:
            _ = torch.rand(1, generator=generator)  # keep the sampling stream in step when resuming
            continue
        inputs = images.batch([e.image_key for e in batch])
        q = policy.encode_questions([e.question for e in batch])
        policy.eval()  # sampling sees the policy as it will be used, and so does the update below
        with torch.no_grad():
            out = policy(question_emb=q, **inputs)
            choices = sample_choices(out, config.group_size, generator, config.temperature, config.crops).cpu()
            flat = choices.reshape(len(batch) * config.group_size, *choices.shape[2:]).to(policy.device)
            old_logp = log_probs(_repeat(out, config.group_size), flat, config.temperature)
            ref_out = reference(question_emb=q, **inputs)
            ref_logp = log_probs(_repeat(ref_out, config.group_size), flat, config.temperature)
        completions = [rollout(e, _as_choice(c)) for e, row in zip(batch, choices, strict=True) for c in row]
        answers = [e.answers for e in batch for _ in range(config.group_size)]
        needs = [e.needs_zoom for e in batch for _ in range(config.group_size)]
        rewards = torch.tensor(total_reward(completions, answers, needs, weights=config.weights))
        advantages = group_advantages(rewards.view(len(batch), config.group_size)).reshape(-1).to(policy.device)
        # The update stays in eval mode: in train mode batch norm would normalize with this batch's
        # statistics, so the ratio to the sampling policy would not start at 1 (a KL of ~5 after one step),
        # and the running statistics would drift with every small batch of rollouts.
        for _ in range(config.inner_steps):
            new_logp = log_probs(_repeat(policy(question_emb=q, **inputs), config.group_size), flat,
                                 config.temperature)
            ratio = torch.exp(new_logp - old_logp)
            surrogate = torch.min(ratio * advantages, ratio.clamp(1 - config.clip, 1 + config.clip) * advantages)
            delta = ref_logp - new_logp
            kl = (torch.exp(delta) - delta - 1).mean()
            loss = -surrogate.mean() + config.kl * kl
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
        used = [c.n_crops > 0 for c in completions]
        if log is not None:
            log({
                "stage": "grpo", "step": step, "reward": rewards.mean().item(), "loss": loss.item(), "kl": kl.item(),
                "accuracy": sum(answer_reward(completions, answers)) / len(completions),
                "crop_rate": sum(used) / len(used),
                "crop_cost": sum(c.crop_tokens / max(1, c.full_tokens) for c in completions) / len(completions),
            })
        bar.update(1)
        bar.set_postfix(reward=f"{rewards.mean().item():.3f}")
    bar.close()
    policy.eval()
    return optimizer


def _as_choice(choice: torch.Tensor) -> int | tuple[int, ...]:
    """A sampled choice as the rollout takes it: an int (one crop or NO_CROP), or a tuple of indices."""
    if choice.dim() == 0:
        return int(choice)
    picks = tuple(int(i) for i in choice)
    return NO_CROP if picks[0] == NO_CROP else picks


def frozen_copy(policy):
    """A frozen copy of `policy` (the KL reference), sharing its question encoder."""
    clone = type(policy)(policy.config, encoder=policy.encoder, token_model=policy.token_model)
    clone.load_state_dict(policy.state_dict())
    clone.to(policy.device).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _repeat(out, group_size: int):
    """A PolicyOutput with each row repeated `group_size` times (rows of one item stay together)."""
    return type(out)(
        out.gate_logit.repeat_interleave(group_size, 0),
        out.crop_logits.repeat_interleave(group_size, 0),
        None if out.box_deltas is None else out.box_deltas.repeat_interleave(group_size, 0),
    )
