"""`cropper serve`: the CLI of the OpenAI-compatible zoom proxy."""

from __future__ import annotations

import os


def add_parser(sub) -> None:
    """Register `serve` on the CLI's subparsers."""
    from backends import SPEC_HELP

    from .wrapper import CROPPER_SPEC_HELP

    p = sub.add_parser("serve", help="an OpenAI-compatible HTTP proxy that zooms the images in chat requests")
    p.add_argument("--upstream", default="reader",
                   help=f"the model behind the proxy; {SPEC_HELP}")
    p.add_argument("--strategy", choices=["policy", "tool", "low", "full"], default="policy")
    p.add_argument("--policy", default=None, help="a trained policy folder for the policy strategy")
    p.add_argument("--cropper", default=None, help=f"the policy strategy's cropper instead of --policy; {CROPPER_SPEC_HELP}")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--budget", type=int, default=None, help="visual-token budget per request")
    p.add_argument("--global-side", type=int, default=1024)
    p.add_argument("--api-key", default=None,
                   help="clients must send 'Authorization: Bearer KEY'. Prefer $CROPPER_PROXY_KEY (the default): "
                        "a key on the command line shows in `ps`")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="request body cap")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    p.add_argument("--max-concurrency", type=int, default=8, help="requests answered at once")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting beyond that before 429")
    p.add_argument("--max-decoded-mpixels", type=float, default=150.0,
                   help="megapixels all requests may hold decoded at once (3 bytes each in memory); a request "
                        "over it is refused with 413, one that does not fit now with 429")
    p.add_argument("--allow-remote-images", action="store_true",
                   help="fetch http(s) image URLs (public hosts only, size-capped, with a timeout)")
    p.add_argument("--log-level", default="info")


def run(args) -> int:
    from .serve import ServeConfig, serve

    if args.policy and args.cropper:
        raise ValueError("give --policy DIR or --cropper NAME, not both")
    config = ServeConfig(
        upstream=args.upstream, strategy=args.strategy,
        cropper=f"policy:{args.policy}" if args.policy else args.cropper, budget=args.budget,
        global_side=args.global_side, api_key=args.api_key or os.environ.get("CROPPER_PROXY_KEY") or None,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024), timeout_s=args.timeout,
        max_concurrency=args.max_concurrency, max_queue=args.max_queue, allow_remote_images=args.allow_remote_images,
        max_decoded_pixels=int(args.max_decoded_mpixels * 1_000_000),
    )
    print(f"cropper serve: http://{args.host}:{args.port}/v1 -> {args.upstream} ({args.strategy})"
          + (", client auth on" if config.api_key else ""), flush=True)
    serve(config, host=args.host, port=args.port, log_level=args.log_level)
    return 0
