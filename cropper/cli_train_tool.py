"""`cropper train-tool`: the CLI over `training.tool_train.train_tool` (teach an open VLM to call `zoom`)."""

from __future__ import annotations

import argparse
import dataclasses


def add_parser(sub) -> None:
    """Register `train-tool` on the CLI's subparsers."""
    from training.tool_train import STAGES, ToolTrainConfig

    d = ToolTrainConfig()
    p = sub.add_parser("train-tool", help="teach an open VLM (hf:DIR) to call the zoom tool: SFT then GRPO (TRL)")
    p.add_argument("--model", required=True, help="local checkpoint to start from: hf:DIR (e.g. Qwen2.5-VL-3B-Instruct)")
    p.add_argument("--data", required=True, help="dataset JSONL (needs_zoom and evidence optional)")
    p.add_argument("--out", required=True, help="run folder; rerun the same command to resume")
    p.add_argument("--stage", choices=STAGES, default=d.stage)
    p.add_argument("--device", default=d.device, help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--crops", default=d.crops, help="named crops offered to zoom (awares9, grid:N, none)")
    p.add_argument("--no-boxes", action="store_true", help="offer named crops only, no free boxes")
    p.add_argument("--global-side", type=int, default=d.global_side, help="long side of the low-res view")
    p.add_argument("--judge", action="store_true", help="label needs_zoom with the model where a row has none")
    p.add_argument("--limit", type=int, default=None, help="use only the first N items")
    p.add_argument("--sft-epochs", type=float, default=d.sft_epochs)
    p.add_argument("--sft-steps", type=int, default=d.sft_steps, help="> 0: SFT steps instead of epochs")
    p.add_argument("--sft-lr", type=float, default=d.sft_lr)
    p.add_argument("--tool-turn-weight", type=float, default=d.tool_turn_weight, help="loss weight of the zoom turn")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument("--grpo-steps", type=int, default=d.grpo_steps)
    p.add_argument("--grpo-lr", type=float, default=d.grpo_lr)
    p.add_argument("--group-size", type=int, default=d.group_size, help="GRPO samples per question")
    p.add_argument("--beta", type=float, default=d.beta, help="KL weight to the SFT model")
    p.add_argument("--epsilon", type=float, default=d.epsilon, help="PPO-style ratio clipping")
    p.add_argument("--max-completion-length", type=int, default=d.max_completion_length)
    p.add_argument("--max-tool-calls", type=int, default=d.max_tool_calls)
    p.add_argument("--cost-per", choices=["call", "area"], default=d.cost_per, help="crop cost per zoom call or per crop area")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (needs peft); merged on save")
    p.add_argument("--lora-r", type=int, default=d.lora_r)
    p.add_argument("--use-vllm", action="store_true", help="generate GRPO samples with vLLM (needs vllm, CUDA)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 (default: on with CUDA)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--save-steps", type=int, default=d.save_steps)


def run(args) -> int:
    from training.tool_train import ToolTrainConfig, train_tool

    config = dataclasses.replace(
        ToolTrainConfig(), stage=args.stage, device=args.device,
        crops=None if str(args.crops).lower() == "none" else args.crops, allow_boxes=not args.no_boxes,
        global_side=args.global_side, judge=args.judge, limit=args.limit, sft_epochs=args.sft_epochs,
        sft_steps=args.sft_steps, sft_lr=args.sft_lr, tool_turn_weight=args.tool_turn_weight,
        batch_size=args.batch_size, grad_accum=args.grad_accum, grpo_steps=args.grpo_steps, grpo_lr=args.grpo_lr,
        group_size=args.group_size, beta=args.beta, epsilon=args.epsilon,
        max_completion_length=args.max_completion_length, max_tool_calls=args.max_tool_calls,
        cost_per=args.cost_per, lora=args.lora, lora_r=args.lora_r, use_vllm=args.use_vllm, bf16=args.bf16,
        seed=args.seed, save_steps=args.save_steps,
    )
    final = train_tool(args.model, args.data, args.out, config)
    print(f"trained model: {final}\nuse it: ZoomWrapper('hf:{final}', strategy='tool')  or  "
          f"cropper compare --backend hf:{final} --strategies low,full,tool ...")
    return 0
