"""Ask the frozen target model about one crop choice, with a cache so a choice is paid for once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from cropper.geometry import Box
from cropper.strategies import run_strategy
from cropper.wrapper import ZoomWrapper

from .examples import Example
from .grpo import NO_CROP
from .rewards import CropCompletion


class FixedCropper:
    """A cropper that returns the boxes it was given (to ask the target about one chosen crop).

    It has no `propose_more` on purpose: a reward scores exactly the chosen crops, so no abstain retry.
    """

    def __init__(self, boxes: list[Box]):
        self.boxes = boxes

    def propose(self, image, question, k=None, budget=None) -> list[Box]:
        return list(self.boxes)


class BackendRollout:
    """`rollout(example, choice) -> CropCompletion` over a target backend, cached by (item, choice).

    The cache lives in memory and, with `cache_path`, in a JSONL file appended as answers come, so an
    interrupted training run does not ask again.
    """

    def __init__(self, target, candidates: list[Box] | None, load_image: Callable[[str], object],
                 cache_path: str | Path | None = None, global_side: int = 1024):
        if not isinstance(target, ZoomWrapper) and hasattr(target, "sharing_reads"):
            # The embedded reader: read each view once across the samples of a group (same answers).
            target = target.sharing_reads()
        self.wrapper = target if isinstance(target, ZoomWrapper) else ZoomWrapper(target, strategy="policy",
                                                                                    global_side=global_side)
        self.candidates = candidates
        self.load_image = load_image
        self.cache_path = Path(cache_path) if cache_path else None
        self.calls = 0
        self._lock = threading.Lock()
        self._cache: dict[tuple, CropCompletion] = {}
        if self.cache_path and self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    choice = row["choice"]
                    self._cache[(row["id"], tuple(choice) if isinstance(choice, list) else choice)] = CropCompletion(
                        row["answer"], row["crop_tokens"], row["full_tokens"], row["n_crops"])
                except (ValueError, KeyError):
                    continue  # a line cut off by an interruption

    def __call__(self, example: Example, choice: int | tuple[int, ...]) -> CropCompletion:
        """The target's answer for `example` with the chosen crops (an index, NO_CROP, or indices best first)."""
        choice = tuple(map(int, choice)) if isinstance(choice, (tuple, list)) else int(choice)
        key = (example.item_id, choice)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        image = self.load_image(example.image_key)
        # The example's own candidates when it has them (those found in its image), else the shared ones.
        candidates = example.candidates if example.candidates is not None else self.candidates
        indices = [choice] if isinstance(choice, int) else list(choice)
        boxes = [candidates[i] for i in indices if i != NO_CROP]
        wrapper = self.wrapper
        backend = wrapper.backend
        token_model = wrapper.token_model_for(backend)
        answer = run_strategy("policy" if boxes else "low", backend, token_model, image, example.question,
                              wrapper.config, cropper=FixedCropper(boxes))
        crop_tokens = sum(token_model.count(w, h) for w, h in answer.view_sizes[1:])
        done = CropCompletion(answer.text, crop_tokens, token_model.count(image.width, image.height), len(boxes))
        with self._lock:
            self.calls += 1
            self._cache[key] = done
            if self.cache_path:
                with self.cache_path.open("a") as f:
                    f.write(json.dumps({"id": key[0], "choice": key[1], "answer": done.answer,
                                        "crop_tokens": crop_tokens, "full_tokens": done.full_tokens,
                                        "n_crops": done.n_crops}) + "\n")
        return done
