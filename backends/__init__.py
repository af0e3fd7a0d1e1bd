"""VLM providers behind one small protocol (`Backend.generate`), plus the embedded offline reader.

Select one with a spec string:

- `reader`: the embedded offline OCR reader (no network, no key)
- `openai:gpt-4.1-mini`: OpenAI chat completions (key from OPENAI_API_KEY)
- `openai-compatible:http://host:port/v1#model`: any OpenAI-compatible server (vLLM, Ollama, LM Studio)
- `anthropic:claude-sonnet-4-5`: Anthropic messages (key from ANTHROPIC_API_KEY)
- `hf:/path/or/id`: a local transformers VLM (Qwen2.5-VL, SmolVLM, ...)

`backends` imports nothing from `cropper` or `training`.
"""

from __future__ import annotations

from typing import Any

from .base import Backend, BackendError, MissingDependency
from .messages import ImagePart, Message, Reply, TextPart, ToolCall, ToolSpec, Usage, system, user

__all__ = [
    "Backend", "BackendError", "MissingDependency", "ImagePart", "Message", "Reply", "TextPart",
    "ToolCall", "ToolSpec", "Usage", "load_backend", "system", "user", "SPEC_HELP",
]

SPEC_HELP = (
    "backend specs: 'reader', 'openai:MODEL', 'openai-compatible:http://HOST:PORT/v1#MODEL', "
    "'anthropic:MODEL', 'hf:PATH_OR_ID'"
)


def load_backend(spec: str | Backend, **options: Any) -> Backend:
    """Build a backend from a spec string (see the module docstring); a backend object passes through.

    Extra keyword options go to the backend's constructor (e.g. `api_key`, `timeout`, `max_retries`,
    `device`).
    """
    if not isinstance(spec, str):
        return spec
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "reader":
        from .reader import ReaderBackend

        return ReaderBackend(**options)
    if kind == "openai":
        from .openai_api import OpenAIBackend

        if not rest:
            raise ValueError(f"backend spec {spec!r} names no model; {SPEC_HELP}")
        return OpenAIBackend(model=rest, **options)
    if kind == "openai-compatible":
        from .openai_api import OpenAIBackend

        url, _, model = rest.partition("#")
        if not url or not model:
            raise ValueError(f"backend spec {spec!r} needs a URL and a model after '#'; {SPEC_HELP}")
        return OpenAIBackend(model=model, base_url=url, compatible=True, **options)
    if kind == "anthropic":
        from .anthropic_api import AnthropicBackend

        if not rest:
            raise ValueError(f"backend spec {spec!r} names no model; {SPEC_HELP}")
        return AnthropicBackend(model=rest, **options)
    if kind == "hf":
        from .hf import TransformersBackend

        if not rest:
            raise ValueError(f"backend spec {spec!r} names no model path or id; {SPEC_HELP}")
        return TransformersBackend(rest, **options)
    raise ValueError(f"unknown backend spec {spec!r}; {SPEC_HELP}")
