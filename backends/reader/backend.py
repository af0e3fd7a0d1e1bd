"""`ReaderBackend`: the embedded offline reader behind the same `generate` call as any VLM.

It reads every image in the conversation with PP-OCR at the pixels it was sent, answers the question
forms of `questions.py` extractively, and, like a VLM given a `zoom` tool, asks for crops when the views
it has do not answer the question. Without a zoom tool (or when it has nothing left to look at) it
answers "unknown" rather than guess.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import weakref
from typing import Any

from ..messages import ImagePart, Message, Reply, ToolCall, ToolSpec, Usage
from .answering import ViewInput, answer
from .ocr import OcrEngine, shared_engine
from .questions import parse_question

UNKNOWN = "unknown"

# Captions the wrapper puts on views: "... region [x1, y1, x2, y2] of the WxH original image ...".
_REGION = re.compile(
    r"region\s*\[\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\]"
    r"(?:[^\[\]]*?of\s+the\s+(\d+)\s*x\s*(\d+)\s+original)?",
    re.I,
)
# Named crops in a zoom tool's description: "top_left=[0, 0, 0.5, 0.5]".
_NAMED = re.compile(r"([a-z0-9_]+)\s*=\s*\[\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\]", re.I)


class ReaderBackend:
    """The offline reading model. `provider="reader"` (visual tokens counted as Qwen2.5-VL would)."""

    provider = "reader"
    supports_tool_images = True

    def __init__(self, model: str = "pp-ocrv4", calls_per_turn: int = 1, scan_calls_per_turn: int = 5,
                 scan_area_per_turn: float = 0.25, engine: OcrEngine | None = None, share_reads: bool = False):
        """`share_reads`: reuse what was read across conversations (by the pixels), not only within one.

        Off by default, so each question pays for its reading as a VLM's would (honest latency in
        `compare`). Training turns it on (`sharing_reads`): GRPO asks about the same global view and the
        same candidate crops many times, and OCR gives the same lines for the same pixels, so the answers
        are unchanged while each view is read once.
        """
        self.model = model
        self.calls_per_turn = calls_per_turn
        self.scan_calls_per_turn = scan_calls_per_turn
        self.scan_area_per_turn = scan_area_per_turn
        self._engine = engine
        self.share_reads = share_reads

    def sharing_reads(self) -> ReaderBackend:
        """This reader with `share_reads` on (same settings, same OCR engine)."""
        return ReaderBackend(self.model, self.calls_per_turn, self.scan_calls_per_turn, self.scan_area_per_turn,
                             engine=self._engine, share_reads=True)

    def __repr__(self) -> str:
        return f"ReaderBackend(model={self.model!r})"

    @property
    def engine(self) -> OcrEngine:
        if self._engine is None:
            self._engine = shared_engine()
        return self._engine

    def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """Answer the last user question from every image in `messages`, or call `zoom`."""
        question = _question(messages)
        views = _views(messages)
        scope = "shared" if self.share_reads else _conversation_key(messages)
        outcome = answer(parse_question(question), views, self.engine, scope=scope)
        usage = Usage(input_tokens=None, output_tokens=None, image_tokens=None)
        if outcome.answer:
            return Reply(text=outcome.answer, usage=usage, model=self.model)
        if options.get("tool_choice") == "none":
            tools = None  # the neutral "no call this turn"
        zoom_tool = next((t for t in tools or [] if isinstance(t, ToolSpec) and t.name == "zoom"), None)
        if zoom_tool is not None and outcome.zoom:
            calls = []
            made = sum(len(m.tool_calls) for m in messages if m.role == "assistant")
            # A located target needs one look; a search over text zones asks for several at once.
            boxes = self._scan(outcome.zoom) if outcome.scan else outcome.zoom[: self.calls_per_turn]
            for i, box in enumerate(boxes):
                args = _zoom_arguments(zoom_tool, box)
                if args is not None:
                    calls.append(ToolCall(id=f"call_{made + i + 1}", name="zoom", arguments=args))
            if calls:
                return Reply(text="", tool_calls=calls, usage=usage, model=self.model)
        return Reply(text=UNKNOWN, usage=usage, model=self.model)

    def _scan(self, boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
        """The first boxes of a search, at most `scan_calls_per_turn` of them covering about `scan_area_per_turn`.

        Small zones (form fields, signs) are cheap, so several go in one turn; a large text block alone
        may use a turn's share.
        """
        out, area = [], 0.0
        for box in boxes[: self.scan_calls_per_turn]:
            if out and area + _area(box) > self.scan_area_per_turn:
                break
            out.append(box)
            area += _area(box)
        return out

    async def agenerate(self, messages: list[Message], tools: list[ToolSpec] | None = None, **options: Any) -> Reply:
        """`generate` in a worker thread (OCR is CPU-bound)."""
        return await asyncio.to_thread(self.generate, messages, tools, **options)


def _conversation_key(messages: list[Message]) -> str:
    """Identifies one conversation across its tool rounds: its first user message, text and image ids.

    The wrapper keeps the same image objects for every round of a conversation, so their ids are stable
    within it; a new question (or strategy) builds new views and gets a fresh cache scope.
    """
    first = next((m for m in messages if m.role == "user"), None)
    if first is None:
        return ""
    ids = ",".join(str(_lifetime_serial(p.image)) for p in first.content if isinstance(p, ImagePart))
    return f"{first.text}|{ids}"


_serials: dict[int, int] = {}
_serial_counter = itertools.count()
_serial_lock = threading.RLock()  # a finalizer may run inside the lock, on a garbage collection


def _lifetime_serial(obj: object) -> int:
    """A number that names `obj` for as long as it lives and is never given to another object.

    `id()` alone is not enough: CPython hands a freed object's id to the next one, so a new conversation
    whose views land at the old addresses would join the old conversation's cache scope and skip its reads.
    """
    key = id(obj)
    with _serial_lock:
        serial = _serials.get(key)
        if serial is None:
            serial = _serials[key] = next(_serial_counter)
            # Forget the id when the object dies, before the id can be reused.
            weakref.finalize(obj, _forget_serial, key, serial)
        return serial


def _forget_serial(key: int, serial: int) -> None:
    with _serial_lock:
        if _serials.get(key) == serial:
            del _serials[key]


def _question(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user" and message.text.strip():
            return message.text.strip().splitlines()[-1]
    return ""


def _views(messages: list[Message]) -> list[ViewInput]:
    views = []
    for message in messages:
        for part in message.content:
            if isinstance(part, ImagePart):
                views.append(_view(part, len(views)))
    return views


def _view(part: ImagePart, order: int) -> ViewInput:
    m = _REGION.search(part.label or "")
    if not m:
        return ViewInput(part.image, order=order)
    x1, y1, x2, y2 = (float(m.group(i)) for i in range(1, 5))
    scale = None
    if m.group(5) and x2 > x1:
        original_width = int(m.group(5))
        scale = part.image.width / ((x2 - x1) * original_width)
    return ViewInput(part.image, (x1, y1, x2, y2), scale=scale, order=order)


def _zoom_arguments(tool: ToolSpec, box: tuple[float, float, float, float]) -> dict | None:
    props = (tool.parameters or {}).get("properties", {})
    if "box" in props:
        return {"box": [round(v, 4) for v in box]}
    if "crop" in props:
        names = props["crop"].get("enum") or []
        known = {m.group(1): tuple(float(m.group(i)) for i in range(2, 6)) for m in _NAMED.finditer(
            tool.description + " " + str(props["crop"].get("description", "")))}
        candidates = [(n, known[n]) for n in names if n in known]
        if not candidates:
            return None
        # The smallest named crop that holds the box; failing that, the one holding most of it.
        holding = [(n, r) for n, r in candidates if _coverage(r, box) >= 0.99]
        pool = holding or candidates
        name = min(pool, key=lambda nr: (-round(_coverage(nr[1], box), 2), _area(nr[1])))[0]
        return {"crop": name}
    return None


def _coverage(outer, inner) -> float:
    w = min(outer[2], inner[2]) - max(outer[0], inner[0])
    h = min(outer[3], inner[3]) - max(outer[1], inner[1])
    area = _area(inner)
    return max(0.0, w) * max(0.0, h) / area if area > 0 else 0.0


def _area(r) -> float:
    return (r[2] - r[0]) * (r[3] - r[1])
