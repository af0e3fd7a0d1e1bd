"""`ZoomWrapper`: put it around a backend or an SDK client and keep calling the model as before.

    from cropper import ZoomWrapper
    client = ZoomWrapper(openai.OpenAI(), strategy="tool")
    client.chat.completions.create(model="gpt-4.1-mini", messages=[...])   # images get zoomed
    client.ask("scene.png", "What is written on the green sign?")         # -> Answer

The base model is never modified: the wrapper only decides what the model is shown.
"""

from __future__ import annotations

import asyncio
from typing import Any

from backends import load_backend
from backends.base import Backend
from backends.messages import Message

from .answer import Answer
from .croppers import Cropper, GridCropper, TextRegionCropper
from .geometry import crop_set
from .images import load_image
from .strategies import STRATEGIES, StrategyConfig, run_strategy
from .tokens import QwenVLModel, TokenModel, token_model_for
from .zoom_request import ZoomRequest


class ZoomWrapper:
    """Wrap a VLM so it sees a low-res global view plus only the high-res crops a question needs.

    Args:
        target: a backend spec (`"reader"`, `"openai:gpt-4.1-mini"`, `"hf:/path"`, ...), a `Backend`, or
            a raw SDK client (`openai.OpenAI`, `openai.AsyncOpenAI`, `anthropic.Anthropic`,
            `anthropic.AsyncAnthropic`), whose own interface keeps working.
        strategy: `low` (global view only), `full` (the original image, as the plain model), `policy`
            (a cropper picks crops), `tool` (the model calls `zoom`).
        cropper: for `policy`: any object with `propose(image, question, k, budget)`, or a name:
            `"text-regions"`, `"grid"`, `"grid:N"`, `"awares9"`. Default: text regions.
        budget: visual tokens per question (global view + crops), under the backend's token model.
        global_side: long side of the global view in pixels.
        crop_side: cap on the long side of a crop (None: full resolution, within the budget).
        k: number of crops for `policy` (None: the cropper's default).
        max_rounds: `tool` rounds of zooming before the model must answer.
        abstain_retries: `policy`: when the model abstains ("unknown", "I can't read it"), show it the cropper's
            next-best crops in the same conversation, at most this many times (croppers with a
            `propose_more` method: the trained policy, `text-regions` and the grids). 0 turns it off.
            Visual tokens count only the new crops; an API bills the whole conversation again per call
            (see `input_tokens`).
        crops: the named crop set offered to the `zoom` tool (`awares9`, `grid:N`, `multiscale`), or None.
        allow_boxes: whether `zoom` also accepts free boxes.
        protocol: how the `tool` strategy asks for crops: `"tools"` (the `zoom` tool call) or `"awares"` (the
            released AwaRes model's `GET_CROPS [...]` text protocol, with its evaluation plugin's prompt;
            `wrapper.config.awares_prompt = "readme"` sends the README's wording; see `cropper.awares`).
        model: the model id, when `target` is a raw SDK client and you call `ask`.
        token_model: override the visual-token model (default: from the backend's provider and model).
        **backend_options: passed to `load_backend` when `target` is a spec string.
    """

    def __init__(
        self,
        target: str | Backend | Any = "reader",
        strategy: str = "tool",
        *,
        cropper: Cropper | str | None = None,
        budget: int | None = None,
        global_side: int = 1024,
        crop_side: int | None = None,
        k: int | None = None,
        max_rounds: int = 3,
        abstain_retries: int = 2,
        crops: str | None = "awares9",
        allow_boxes: bool = True,
        protocol: str = "tools",
        model: str | None = None,
        token_model: TokenModel | None = None,
        **backend_options: Any,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if protocol not in ("tools", "awares"):
            raise ValueError(f"unknown protocol {protocol!r}; choose 'tools' or 'awares'")
        if abstain_retries < 0:
            raise ValueError(f"abstain_retries must be 0 or more, got {abstain_retries}")
        self.strategy = strategy
        self.config = StrategyConfig(
            global_side=global_side, crop_side=crop_side, budget=budget, k=k, max_rounds=max_rounds,
            abstain_retries=abstain_retries, crops=crop_set(crops) if crops else {}, allow_boxes=allow_boxes,
            protocol=protocol,
        )
        self._cropper_spec = cropper
        self._cropper: Cropper | None = cropper if cropper is not None and not isinstance(cropper, str) else None
        self._token_model = token_model
        self._model = model
        self.client = None
        self.backend: Backend | None = None
        self.last_answer: Answer | None = None
        from . import dropin

        kind = dropin.client_kind(target)
        if kind is not None:
            self.client = target
            self._client_kind = kind
            dropin.attach(self, kind)
        else:
            self._client_kind = None
            self.backend = load_backend(target, **backend_options)

    @property
    def client_kind(self) -> str | None:
        """'openai', 'openai-async', 'anthropic' or 'anthropic-async' for a wrapped SDK client, else None."""
        return self._client_kind

    def __repr__(self) -> str:
        inner = self.backend if self.backend is not None else type(self.client).__name__
        return f"ZoomWrapper({inner!r}, strategy={self.strategy!r})"

    def __getattr__(self, name: str) -> Any:
        # Everything the wrapper does not handle goes to the wrapped client (instructor's habit).
        client = self.__dict__.get("client")
        if client is None:
            raise AttributeError(name)
        return getattr(client, name)

    # --- the simple API -------------------------------------------------------------------------------------

    def ask(self, image: Any, question: str, strategy: str | None = None, **options: Any) -> Answer:
        """Answer `question` about `image` (path, bytes, PIL image, array) with the chosen strategy."""
        backend = self.backend_for_ask()
        return self.run(backend, load_image(image), question, strategy=strategy, options=options)

    async def aask(self, image: Any, question: str, strategy: str | None = None, **options: Any) -> Answer:
        """Async `ask`: the strategy runs in a worker thread; async backends run on this event loop."""
        backend = self.backend_for_ask()
        img = load_image(image)
        if hasattr(backend, "agenerate"):
            backend = LoopBridge(backend, asyncio.get_running_loop())
        return await asyncio.to_thread(self.run, backend, img, question, strategy=strategy, options=options)

    def run(self, backend: Backend, image=None, question: str | None = None, strategy: str | None = None,
            prefix: list[Message] | None = None, options: dict | None = None, request: ZoomRequest | None = None,
            config: StrategyConfig | None = None) -> Answer:
        """Run one strategy on an already-loaded image, or on a whole `ZoomRequest` (a conversation whose
        images get zoomed; the drop-in path and the proxy build one). Used by `ask`, the drop-in path and
        `compare`; `config` overrides the wrapper's own for this call."""
        strategy = strategy or self.strategy
        answer = run_strategy(
            strategy, backend, self.token_model_for(backend), image, question, config or self.config,
            cropper=self.cropper if strategy == "policy" else None, prefix=prefix, options=options, request=request,
        )
        self.last_answer = answer
        return answer

    def backend_for_ask(self) -> Backend:
        """The backend `ask` calls: the wrapped one, or for an SDK client one over it for the wrapper's `model`."""
        if self.backend is not None:
            return self.backend
        if not self._model:
            raise ValueError("ask() on a wrapped SDK client needs the model: ZoomWrapper(client, model='...')")
        from . import dropin

        return dropin.backend_for(self, self._model)

    # --- pieces ---------------------------------------------------------------------------------------------

    @property
    def cropper(self) -> Cropper:
        """The cropper of the `policy` strategy (built on first use)."""
        if self._cropper is None:
            self._cropper = make_cropper(self._cropper_spec)
            if hasattr(self._cropper, "crop_side"):
                # A CropPolicy applies budgets the way the view planner will.
                self._cropper.crop_side = self.config.crop_side
        return self._cropper

    def pin_token_model(self, backend: Backend) -> TokenModel:
        """Count every strategy's tokens with `backend`'s token model from now on, whatever backend (a proxy,
        a bridge) a call goes through; returns that model."""
        self._token_model = self.token_model_for(backend)
        return self._token_model

    def token_model_for(self, backend: Backend) -> TokenModel:
        """The token model that counts `backend`'s visual tokens (the one given to the wrapper, if any)."""
        if self._token_model is not None:
            return self._token_model
        provider = getattr(backend, "provider", "openai")
        lo, hi = getattr(backend, "min_pixels", None), getattr(backend, "max_pixels", None)
        if provider in ("qwen2.5-vl", "qwen2-vl", "qwen3-vl") and (lo or hi):
            # A local Qwen run with its own pixel bounds: count with the bounds it really uses.
            base = QwenVLModel.qwen3() if provider == "qwen3-vl" else QwenVLModel.qwen25()
            factory = QwenVLModel.qwen3 if provider == "qwen3-vl" else QwenVLModel.qwen25
            return factory(min_pixels=lo or base.min_pixels, max_pixels=hi or base.max_pixels)
        return token_model_for(provider, getattr(backend, "model", None))


#: What `strategy="policy"` uses when no cropper is given (see `make_cropper`).
DEFAULT_CROPPER = "text-regions"


#: Every cropper spec `make_cropper` takes, as the CLIs' --help list them.
CROPPER_SPEC_HELP = ("cropper specs: text-regions (default), policy (the bundled CropPolicy), policy:DIR (a saved one), "
                     "grid (2x2), grid:N, awares9, multiscale, vlm:BACKEND_SPEC (a VLM picks the region)")


def make_cropper(spec: Cropper | str | None) -> Cropper:
    """A cropper from a name.

    `policy` (the bundled trained CropPolicy), `policy:DIR` (one saved with `save_pretrained`),
    `text-regions` (the default), `grid`, `grid:N`, `awares9`, `multiscale`, `vlm:BACKEND_SPEC` (a VLM asked
    for the region, CropVLM-style: `vlm:openai:gpt-4.1-nano`, `vlm:openai-compatible:URL#MODEL`).

    The default stays `text-regions` while the bundled policy is not clearly better on held-out synthetic
    data (answer accuracy with the reader as the target: ahead on one held-out set, behind on another, at
    1.4-2.1x the visual tokens; docs/results.md has the numbers): a default should be the best thing
    shipped, not the newest.
    """
    if spec is None:
        spec = DEFAULT_CROPPER
    if not isinstance(spec, str):
        return spec
    if spec == "text-regions":
        return TextRegionCropper()
    if spec == "policy" or spec.startswith("policy:"):
        from .policy import CropPolicy

        return CropPolicy.default() if spec == "policy" else CropPolicy.from_pretrained(spec.split(":", 1)[1])
    if spec == "grid":
        return GridCropper("grid:2")
    if spec.startswith(("grid:", "awares9", "multiscale")):
        return GridCropper(spec)
    if spec.startswith("vlm:"):
        from .vlm_cropper import VLMCropper

        return VLMCropper(spec.split(":", 1)[1])
    raise ValueError(f"unknown cropper {spec!r}; use 'policy', 'policy:DIR', 'text-regions', 'grid', 'grid:N', "
                     "'awares9', 'vlm:BACKEND_SPEC' or an object with propose()")


class LoopBridge:
    """A sync `generate` over an async backend, for strategy code running in a worker thread."""

    def __init__(self, backend: Any, loop: asyncio.AbstractEventLoop):
        self._backend = backend
        self._loop = loop
        self.provider = backend.provider
        self.model = backend.model
        self.supports_tool_images = backend.supports_tool_images
        self.needs_strict_tools = getattr(backend, "needs_strict_tools", False)

    def generate(self, messages, tools=None, **options):
        future = asyncio.run_coroutine_threadsafe(self._backend.agenerate(messages, tools, **options), self._loop)
        return future.result()
