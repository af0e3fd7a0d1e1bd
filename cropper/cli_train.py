"""`cropper synth`, `train`, `evaluate` and `bench`: the crop-policy commands of the CLI."""

from __future__ import annotations

import json
from pathlib import Path


def add_parsers(sub) -> None:
    """Register the policy commands on the CLI's subparsers."""
    synth = sub.add_parser("synth", help="write a synthetic fine-detail dataset (JSONL + images + evidence)")
    synth.add_argument("--out", required=True, help="output folder (a rerun resumes it)")
    synth.add_argument("--n", type=int, required=True, help="number of items (questions)")
    synth.add_argument("--seed", type=int, default=0, help="dataset seed: the content is a function of it")
    synth.add_argument("--mix", default=None,
                       help="scene kinds and weights, e.g. sign=0.5,form=0.25,page=0.25 (the default) or sign")
    synth.add_argument("--easy-fraction", type=float, default=0.15,
                       help="share of items answerable from the low-res view (default 0.15)")
    synth.add_argument("--workers", type=int, default=None, help="render threads (default: up to 4)")

    train = sub.add_parser("train", help="train a crop policy for a target backend: judge, oracle, SFT, GRPO")
    train.add_argument("--data", required=True, help="dataset JSONL (evidence boxes optional)")
    train.add_argument("--backend", default="reader", help="the frozen target model (reward); default reader")
    train.add_argument("--out", required=True, help="run folder: checkpoints, logs, the trained policy")
    train.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    train.add_argument("--backbone", default=None, help="timm model name (default mobilenetv3_small_100)")
    train.add_argument("--image-size", type=int, default=None, help="side of the policy's low-res view")
    train.add_argument("--crop-set", default=None, help="candidate crops, e.g. awares9+multiscale:3,4")
    train.add_argument("--encoder", default=None, choices=["minilm", "hash"], help="question encoder")
    train.add_argument("--k", type=int, default=None, help="crops the policy proposes (with --mass: at most)")
    train.add_argument("--max-area", type=float, default=None,
                       help="crops after the first stop once their total share of the image would pass this")
    train.add_argument("--proposals", type=int, default=None,
                       help="also score up to this many boxes found in each image (0: the fixed candidates only)")
    train.add_argument("--mass", type=float, default=None,
                       help="adaptive crop count: add crops until they hold this share of the policy's scores")
    train.add_argument("--init", default=None, metavar="DIR",
                       help="start from a trained policy (a folder, or 'default' for the bundled one) instead of "
                            "random weights: fine-tune it for your domain")
    train.add_argument("--sft-epochs", type=int, default=None)
    train.add_argument("--sft-lr", type=float, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--grpo-steps", type=int, default=None)
    train.add_argument("--group-size", type=int, default=None)
    train.add_argument("--grpo-crops", type=int, default=None,
                       help="crops per GRPO sample: 1 (default) or an ordered set of N, as propose sends")
    train.add_argument("--holdout", type=float, default=0.1, help="share of images held out for evaluation")
    train.add_argument("--limit", type=int, default=None, help="use only the first N items")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-limit", type=int, default=200, help="held-out items evaluated at the end")
    train.add_argument("--no-eval-target", action="store_true",
                       help="evaluate crops only (no target calls for held-out accuracy)")
    train.add_argument("--eval-full", action="store_true",
                       help="also ask the plain model at full resolution on held-out items (slow, for the ratio)")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    evaluate = sub.add_parser("evaluate", help="measure a cropper on a labelled dataset: evidence hits, crop area, "
                                               "gate, and with --backend the answers (policy vs full)")
    evaluate.add_argument("--data", required=True, help="dataset JSONL with evidence boxes (e.g. from cropper synth)")
    evaluate.add_argument("--cropper", default="policy",
                          help="policy (the bundled one), policy:DIR, text-regions, grid:N, awares9 (default policy)")
    evaluate.add_argument("--backend", default=None, help="also ask this target (e.g. reader) and score answers")
    evaluate.add_argument("--full", action="store_true", help="with --backend: also ask the plain model (ratio)")
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    evaluate.add_argument("--by", default="kind", help="item field to break the summary down by (default kind)")
    evaluate.add_argument("--global-side", type=int, default=1024, help="long side of the low-res view")
    evaluate.add_argument("--out", default=None, help="write the summary and per-item rows to this JSON file")
    evaluate.add_argument("--sweep", default=None, metavar="PNG",
                          help="for a trained policy: evidence hits vs crop area over k / mass / max_area "
                               "settings, plotted to this PNG (rows to --out)")

    bench = sub.add_parser("bench", help="time the crop policy per query beside one reader call")
    bench.add_argument("--policy", default=None, help="policy folder (default: the bundled policy)")
    bench.add_argument("--repeats", type=int, default=50, help="timed queries per thread count")
    bench.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int | None:
    """Run a policy command; None when `args.command` is not one of them."""
    if args.command == "synth":
        return _synth(args)
    if args.command == "train":
        return _train(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "evaluate":
        return _evaluate(args)
    return None


def parse_mix(text: str | None) -> dict[str, float] | None:
    """`sign=0.5,form=0.25` or `sign,form` -> kind weights (None: the default mix)."""
    if not text:
        return None
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        try:
            mix[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"--mix: {part!r} is not KIND=WEIGHT") from None
    return mix


def _synth(args) -> int:
    from training.synth import synthesize

    path = synthesize(args.out, args.n, seed=args.seed, mix=parse_mix(args.mix), easy_fraction=args.easy_fraction,
                      workers=args.workers)
    print(f"wrote {args.n} items to {path}")
    return 0


def _train(args) -> int:
    import dataclasses

    import torch

    from backends import load_backend
    from training.grpo import GRPOConfig
    from training.sft import SFTConfig
    from training.train import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    policy = {k: v for k, v in {"backbone": args.backbone, "image_size": args.image_size,
                                "crop_set": args.crop_set, "encoder": args.encoder, "k": args.k,
                                "mass": args.mass, "max_area": args.max_area,
                                "proposals": args.proposals}.items() if v is not None}
    sft = dataclasses.replace(SFTConfig(seed=args.seed), **{k: v for k, v in {
        "epochs": args.sft_epochs, "lr": args.sft_lr, "batch_size": args.batch_size}.items() if v is not None})
    grpo = dataclasses.replace(GRPOConfig(seed=args.seed), **{k: v for k, v in {
        "steps": args.grpo_steps, "group_size": args.group_size, "crops": args.grpo_crops}.items()
        if v is not None})
    config = TrainConfig(policy=policy, sft=sft, grpo=grpo, holdout=args.holdout, seed=args.seed,
                         device=args.device, limit=args.limit, eval_limit=args.eval_limit,
                         eval_target=not args.no_eval_target, eval_full=args.eval_full,
                         init=args.init)
    _, report = train(args.data, load_backend(args.backend), args.out, config)
    print(json.dumps(report, indent=2))
    return 0


def _bench(args) -> int:
    from .bench import format_bench, run_bench

    result = run_bench(args.policy, repeats=args.repeats)
    print(json.dumps(result, indent=2) if args.json else format_bench(result))
    return 0


def _evaluate(args) -> int:
    from backends import load_backend
    from training.datasets import load_jsonl
    from training.evaluate import evaluate_cropper
    from training.examples import make_examples

    from .wrapper import make_cropper

    items, errors = load_jsonl(args.data)
    for err in errors:
        print(f"skipping {err}")
    items = items[: args.limit] if args.limit else items
    if not items:
        raise ValueError(f"{args.data}: no usable items")
    cropper = make_cropper(args.cropper)
    examples = make_examples(items, None)  # evaluation reads no crop targets
    if args.sweep:
        return _sweep(cropper, examples, args)
    groups = {i.id: str(i.extra.get(args.by)) for i in items} if args.by else None
    target = load_backend(args.backend) if args.backend else None
    result = evaluate_cropper(cropper, examples, target, full=args.full and target is not None,
                              global_side=args.global_side, groups=groups)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result["summary"], indent=2))
    return 0


def _sweep(cropper, examples, args) -> int:
    from training.sweep import decide_all, pareto_front, plot_sweep, ranking_report, selection_sweep

    from .policy import CropPolicy

    if not isinstance(cropper, CropPolicy):
        raise ValueError(f"--sweep needs a trained policy (--cropper policy or policy:DIR), not {args.cropper!r}: "
                         "only a policy ranks candidates whose selection can be swept")
    decisions = decide_all(cropper, examples)
    rows = selection_sweep(cropper, examples, decisions=decisions)
    ranking = ranking_report(decisions)
    plot_sweep(rows, args.sweep, title=f"{args.cropper} on {Path(args.data).parent.name}/{Path(args.data).name} ({len(examples)} items)")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "pareto": pareto_front(rows), "ranking": ranking},
                                             indent=2), encoding="utf-8")
    print("settings with the best evidence hits for their crop area:")
    print(f"{'k':>3} {'mass':>5} {'max_area':>8} {'hit':>6} {'area':>6} {'crops':>6} {'gate':>6}")
    for r in pareto_front(rows):
        mass = "-" if r["mass"] is None else f"{r['mass']:.2f}"
        area = "-" if r["max_area"] is None else f"{r['max_area']:.2f}"
        print(f"{r['k']:>3} {mass:>5} {area:>8} {r['evidence_hit_rate']:>6.3f} {r['mean_crop_area']:>6.3f} "
              f"{r['mean_crops']:>6.1f} {r['gate_accuracy']:>6.3f}")
    if ranking["items"]:
        within = ", ".join(f"top {t}: {share:.0%}" for t, share in ranking["first_covering_within"].items())
        print(f"candidates: one holds the evidence for {ranking['candidate_recall']:.0%} of the {ranking['items']} "
              f"items that need zoom; the best-ranked one that does is in the {within}")
    print(f"plot: {args.sweep}")
    return 0
