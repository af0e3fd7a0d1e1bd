"""SFT of an open VLM on zoom trajectories, with TRL's `SFTTrainer` and a heavier loss on the tool-call turn.

AwaRes weighted the turn where the model decides to zoom (and where) 5x: it is one short turn among long
answers, and it is the decision the whole method rests on. `ToolTurnCollator` tokenizes each conversation
with the model's own processor and chat template and marks, per token, whether it is learned (assistant
turns only) and with which weight; `ToolSFTTrainer` is `SFTTrainer` with that weighted token loss.

The conversation is rendered exactly as `TransformersBackend` renders it at inference: with the template's
own tool support when it has one (`native`), else in the Hermes text form Qwen models were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ToolTurnCollator", "make_tool_sft_trainer", "render_conversation", "weighted_token_loss"]  # + ToolSFTTrainer (lazy)


def render_conversation(processor: Any, example: dict[str, Any], upto: int | None = None,
                        add_generation_prompt: bool = False) -> str:
    """The chat-template text of `example["messages"][:upto]` (tools passed when the example has them)."""
    messages = example["messages"] if upto is None else example["messages"][:upto]
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if example.get("tools"):
        kwargs["tools"] = example["tools"]
    return processor.apply_chat_template(messages, **kwargs)


def _count_images(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for part in m["content"] if isinstance(part, dict) and part.get("type") == "image")


@dataclass
class ToolTurnCollator:
    """Batches of `input_ids, attention_mask, labels, loss_weights` + the processor's image tensors.

    Labels keep the assistant turns only (the model is not taught to write the user's words or the tool's
    results); `loss_weights` is `tool_turn_weight` on assistant turns that call a tool, 1 on the others.
    """

    processor: Any
    tool_turn_weight: float = 5.0
    max_length: int | None = None
    #: Where rows of the form {"index": i} are looked up (the trainer's dataset holds only indices: Arrow
    #: would merge the differently shaped tool arguments of different rows into one struct, adding nulls).
    source: Any = None

    def __post_init__(self) -> None:
        self._per_token: set[str] = set()

    def encode(self, example: dict[str, Any]) -> dict[str, torch.Tensor]:
        messages = example["messages"]
        images = list(example.get("images") or [])
        full = self._tokens(render_conversation(self.processor, example), images)
        ids = full["input_ids"][0]
        labels = torch.full_like(ids, -100)
        weights = torch.zeros(ids.shape[0], dtype=torch.float32)
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            # The turn's tokens: what the conversation through it adds to the prompt that asks for it. Chat
            # templates of the Qwen family are prefix-preserving, so both are prefixes of the full tokens.
            before = render_conversation(self.processor, example, upto=k, add_generation_prompt=True)
            through = render_conversation(self.processor, example, upto=k + 1)
            start = self._length(before, images[: _count_images(messages[:k])])
            stop = self._length(through, images[: _count_images(messages[: k + 1])])
            calls_tool = bool(message.get("tool_calls")) or "<tool_call>" in str(message.get("content"))
            labels[start:stop] = ids[start:stop]
            weights[start:stop] = self.tool_turn_weight if calls_tool else 1.0
        out = {"input_ids": ids, "labels": labels, "loss_weights": weights}
        for key, value in full.items():
            if key in ("input_ids", "attention_mask"):
                continue
            # Per-token tensors (e.g. mm_token_type_ids) are padded like the ids; image tensors concatenated.
            out[key] = value[0] if value.dim() == 2 and value.shape == full["input_ids"].shape else value
            if out[key] is not value:
                self._per_token.add(key)
        if self.max_length is not None and ids.shape[0] > self.max_length:
            # Never truncated: cutting into an image's tokens would break the model's image/token alignment.
            raise ValueError(f"a conversation has {ids.shape[0]} tokens, over max_length={self.max_length}; lower "
                             "the global view or crop size, or raise max_length")
        return out

    def _tokens(self, text: str, images: list[Any]) -> dict[str, torch.Tensor]:
        return dict(self.processor(text=[text], images=images or None, return_tensors="pt", add_special_tokens=False))

    def _length(self, text: str, images: list[Any]) -> int:
        return int(self._tokens(text, images)["input_ids"].shape[1])

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.source is not None:
            examples = [self.source[int(e["index"])] if "index" in e else e for e in examples]
        encoded = [self.encode(e) for e in examples]
        pad = self.processor.tokenizer.pad_token_id
        pad = pad if pad is not None else self.processor.tokenizer.eos_token_id
        longest = max(e["input_ids"].shape[0] for e in encoded)
        batch: dict[str, Any] = {
            "input_ids": torch.full((len(encoded), longest), pad, dtype=torch.long),
            "attention_mask": torch.zeros((len(encoded), longest), dtype=torch.long),
            "labels": torch.full((len(encoded), longest), -100, dtype=torch.long),
            "loss_weights": torch.zeros((len(encoded), longest), dtype=torch.float32),
        }
        for i, e in enumerate(encoded):  # right padding: training needs no generation prompt alignment
            n = e["input_ids"].shape[0]
            batch["input_ids"][i, :n] = e["input_ids"]
            batch["attention_mask"][i, :n] = 1
            batch["labels"][i, :n] = e["labels"]
            batch["loss_weights"][i, :n] = e["loss_weights"]
        for key in encoded[0]:
            if key in batch:
                continue
            if key in self._per_token:
                batch[key] = torch.zeros((len(encoded), longest), dtype=encoded[0][key].dtype)
                for i, e in enumerate(encoded):
                    batch[key][i, : e[key].shape[0]] = e[key]
            else:  # pixel_values, image_grid_thw, ...: concatenated over the batch's images
                batch[key] = torch.cat([e[key] for e in encoded if key in e], dim=0)
        return batch


def weighted_token_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next token, weighted per target token, normalized by the total weight."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    w = weights[:, 1:].to(logits.dtype) * (target != -100)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                           ignore_index=-100, reduction="none")
    return (ce * w.reshape(-1)).sum() / w.sum().clamp_min(1e-8)


def _trainer_class():
    from trl import SFTTrainer

    class ToolSFTTrainer(SFTTrainer):
        """`SFTTrainer` with the per-token weighted loss of `ToolTurnCollator` batches."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            weights = inputs.pop("loss_weights")
            outputs = model(**inputs, use_cache=False)
            loss = weighted_token_loss(outputs.logits, labels, weights)
            return (loss, outputs) if return_outputs else loss

    return ToolSFTTrainer


def __getattr__(name: str):
    if name == "ToolSFTTrainer":  # built lazily: importing trl is slow
        return _trainer_class()
    raise AttributeError(name)


def make_tool_sft_trainer(model: Any, processor: Any, examples: Any, args: Any, tool_turn_weight: float = 5.0,
                          peft_config: Any = None, callbacks: list | None = None):
    """A `ToolSFTTrainer` over conversational examples (`to_chat_example` output) with our collator.

    `examples` is any sequence (a list, or a lazy one that builds each trajectory when asked); the trainer's
    dataset holds indices into it, so images are only loaded for the batch being trained on.
    """
    from datasets import Dataset

    trainer_class = _trainer_class()
    args.remove_unused_columns = False
    args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    # args.max_length (SFTConfig defaults it to 1024) is not applied: image conversations are never truncated.
    collator = ToolTurnCollator(processor, tool_turn_weight, None, source=examples)
    return trainer_class(model=model, args=args, train_dataset=Dataset.from_dict({"index": list(range(len(examples)))}),
                         processing_class=processor, data_collator=collator, peft_config=peft_config,
                         callbacks=callbacks)
