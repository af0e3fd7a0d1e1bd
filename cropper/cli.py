"""The `cropper` command line: `ask`, `demo`, `compare`, `serve`, `train-tool`, and the policy commands `synth`, `train`, `bench`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from backends import SPEC_HELP

from . import __version__
from .strategies import STRATEGIES
from .wrapper import CROPPER_SPEC_HELP

#: Commands whose output folder a rerun resumes (results, items or checkpoints written as they go).
RESUMABLE = {"compare", "synth", "train", "train-tool"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cropper` console script."""
    parser = argparse.ArgumentParser(prog="cropper", description="Make VLMs see fine detail cheaply.")
    parser.add_argument("--version", action="version", version=f"cropper {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question about an image with a zoom strategy")
    ask.add_argument("image", help="path to the image")
    ask.add_argument("question")
    ask.add_argument("--backend", default="reader",
                     help=f"the model to ask (default: the offline reader); {SPEC_HELP}")
    ask.add_argument("--strategy", choices=STRATEGIES, default="tool")
    ask.add_argument("--policy", "--cropper", dest="cropper", default=None,
                     help=f"cropper for --strategy policy; {CROPPER_SPEC_HELP}")
    ask.add_argument("--budget", type=int, default=None, help="visual-token budget per question")
    ask.add_argument("--global-side", type=int, default=1024, help="long side of the global view in px")
    ask.add_argument("--max-rounds", type=int, default=3, help="zoom rounds for --strategy tool")
    ask.add_argument("--protocol", choices=["tools", "awares"], default="tools",
                     help="how --strategy tool asks for crops: a zoom tool call, or AwaRes's GET_CROPS text")
    ask.add_argument("--json", action="store_true", help="print one JSON object")

    demo = sub.add_parser("demo", help="run the built-in offline example with every strategy")
    demo.add_argument("--out", default="cropper-demo", help="folder for the scene and the crops picture")

    from . import cli_compare, cli_serve, cli_train, cli_train_tool

    cli_train.add_parsers(sub)
    cli_compare.add_parser(sub)
    cli_train_tool.add_parser(sub)
    cli_serve.add_parser(sub)

    args = parser.parse_args(argv)
    try:
        if args.command == "ask":
            return _ask(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "compare":
            return cli_compare.run(args)
        if args.command == "train-tool":
            return cli_train_tool.run(args)
        if args.command == "serve":
            return cli_serve.run(args)
        return cli_train.run(args)
    except KeyboardInterrupt:
        resumable = args.command in RESUMABLE
        print("interrupted" + ("; what was written is kept: rerun the same command to resume" if resumable else ""),
              file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError, RuntimeError) as exc:
        print(f"cropper {args.command}: error: {exc}", file=sys.stderr)
        if args.command == "ask" and args.json:
            # A script that asked for JSON reads stdout: give it an object there too, not an empty stream.
            print(json.dumps({"error": str(exc)}))
        return 2
    return 1


def _ask(args) -> int:
    from .images import load_image
    from .wrapper import ZoomWrapper

    image = load_image(args.image)
    wrapper = ZoomWrapper(args.backend, strategy=args.strategy, cropper=args.cropper, budget=args.budget,
                          global_side=args.global_side, max_rounds=args.max_rounds, protocol=args.protocol)
    try:
        answer = wrapper.ask(image, args.question)
    except ValueError as exc:
        if str(args.image) in str(exc):
            raise
        # The strategies see pixels, not files: say which file the problem is with.
        raise ValueError(f"{args.image} ({image.width}x{image.height}): {exc}") from exc
    if args.json:
        payload = answer.to_dict()
        payload["backend"] = args.backend
        print(json.dumps(payload))
    else:
        print(answer.text)
        crops = ", ".join(b.describe() for b in answer.crops) or "none"
        print(f"[{answer.strategy}] visual tokens {answer.visual_tokens}, crops {crops}, {answer.latency_s:.2f}s",
              file=sys.stderr)
    return 0


def _demo(args) -> int:
    from .demo import format_table, run_demo

    started = time.perf_counter()
    print("cropper demo: the offline reader on a built-in 4000-px scene with small signs", flush=True)
    rows, picture = run_demo(args.out, progress=lambda line: print(line, flush=True))
    print()
    print(format_table(rows))
    full = {r["question"]: r["visual_tokens"] for r in rows if r["strategy"] == "full"}
    for strategy in ("policy", "tool"):
        mine = [r for r in rows if r["strategy"] == strategy]
        if mine:
            ratio = sum(r["visual_tokens"] for r in mine) / max(1, sum(full.get(r["question"], 0) for r in mine))
            correct = sum(r["correct"] for r in mine)
            print(f"{strategy}: {correct}/{len(mine)} correct with {ratio:.0%} of the visual tokens of full")
    print(f"crops drawn on the scene: {os.fspath(picture)}  ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
