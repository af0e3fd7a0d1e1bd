"""A model whose replies are scripted: for conversation shapes and edge cases the reader never produces."""

from __future__ import annotations

from backends.messages import Reply


class ScriptedModel:
    """Returns its replies in order (a `Reply`, or a string for a text reply) and records every call."""

    provider, model, supports_tool_images = "qwen2.5-vl", "scripted", True

    def __init__(self, replies):
        self.replies = [Reply(text=r) if isinstance(r, str) else r for r in replies]
        self.calls: list[tuple[list, list | None]] = []  # (messages, tools) per call
        self.options: list[dict] = []  # the options of each call

    def generate(self, messages, tools=None, **options):
        self.calls.append((list(messages), tools))
        self.options.append(dict(options))
        return self.replies.pop(0)
