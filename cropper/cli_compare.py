"""`cropper compare`: the CLI over `cropper.ab.compare` (A/B of strategies on a dataset)."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    """Register `compare` on the CLI's subparsers."""
    from backends import SPEC_HELP

    from .wrapper import CROPPER_SPEC_HELP

    p = sub.add_parser("compare", help="A/B strategies on a dataset: accuracy, visual tokens, cost, latency, "
                                       "significance, an HTML report (resumable)")
    p.add_argument("--data", required=True, help="dataset JSONL (id, image, question, answers[, evidence])")
    p.add_argument("--backend", default="reader", help=f"the model to compare on (default: the offline reader); {SPEC_HELP}")
    p.add_argument("--strategies", default="low,full,policy,tool",
                   help="comma-separated: low, full, policy, tool; policy:CROPPER or LABEL=policy:CROPPER (a policy run "
                        "with its own cropper, LABEL naming it in the tables); tool:awares or LABEL=tool:awares (the "
                        "tool strategy with AwaRes's GET_CROPS protocol)")
    p.add_argument("--policy", default=None, help="a trained policy folder for the policy strategy")
    p.add_argument("--cropper", default=None,
                   help=f"the policy strategy's cropper instead of --policy; {CROPPER_SPEC_HELP}")
    p.add_argument("--out", required=True, help="run folder; rerunning into it resumes")
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--budget", type=int, default=None, help="visual-token budget per question")
    p.add_argument("--global-side", type=int, default=1024, help="long side of the low-res view in px")
    p.add_argument("--max-rounds", type=int, default=3, help="zoom rounds for the tool strategy")
    p.add_argument("--abstain-retries", type=int, default=2,
                   help="policy strategy: times to show the next-best crops when the model abstains (0: off)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="questions in flight (default 8 for API backends, 1 for local ones)")
    p.add_argument("--rpm", type=float, default=None, help="at most this many backend requests per minute")
    p.add_argument("--by", default=None, help="item field to break results down by (e.g. subset, kind)")
    p.add_argument("--prices", default=None, help="JSON price table {model: {input, output}} in USD per 1M tokens")
    p.add_argument("--gallery", type=int, default=24, help="items shown in the report (failures first)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--overwrite", action="store_true", help="start over if OUT holds results of other settings")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")


def run(args) -> int:
    from .ab import compare

    if args.policy and args.cropper:
        raise ValueError("give --policy DIR or --cropper NAME, not both")
    cropper = f"policy:{args.policy}" if args.policy else args.cropper
    result = compare(
        args.data, backend=args.backend, strategies=args.strategies, out=args.out, cropper=cropper,
        limit=args.limit, budget=args.budget, global_side=args.global_side, max_rounds=args.max_rounds,
        abstain_retries=args.abstain_retries,
        concurrency=args.concurrency, rpm=args.rpm, by=args.by, prices=args.prices, report=not args.no_report,
        gallery=args.gallery, overwrite=args.overwrite, progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(result.summary, indent=2))
        return 0
    print(result.table())
    timing = result.summary["timing"]
    share = timing.get("overhead_share")
    if share is None:
        print(f"\nthis run: nothing left to ask (every result was already in {args.out}); "
              f"summary and report in {timing['work_s']:.1f}s")
    else:
        print(f"\nthis run: {timing['work_s']:.1f}s of work, backend {timing['backend_s']:.1f}s, cropper "
              f"{timing['cropper_s']:.1f}s, harness overhead {share:.1%}")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0
