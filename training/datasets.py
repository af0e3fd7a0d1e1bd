"""The dataset contract (JSONL) and converters from the public fine-grained benchmarks' on-disk formats.

One item per line, image paths relative to the JSONL file, `evidence` optional (normalized boxes):

    {"id": "q1", "image": "images/0001.png", "question": "What is written on the green sign?",
     "answers": ["B7-4421"], "evidence": [[0.61, 0.72, 0.66, 0.75]]}

Any other field is kept in `Item.extra` and written back. `metric` is the one the converters set
(`vqa` for TextVQA, `anls` for DocVQA, `relaxed` for ChartQA, `exact` for the multiple-choice
benchmarks) and `training.judge` uses it when asked for `metric="auto"`.

Converters read the files as they come from the benchmarks' releases (nothing is downloaded) and write
`<out_dir>/<name>.jsonl`; images stay where they are (referenced by relative path) except HR-Bench's,
which are embedded in its table and get written to `<out_dir>/images/<name>/`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import random
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from cropper.geometry import Box
from cropper.images import load_image as _load_image

CONTRACT_FIELDS = ("id", "image", "question", "answers", "evidence")


class DatasetError(ValueError):
    """One bad line of a dataset file: names the file, the line number, the item id and the problem."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str, item_id: str | None = None):
        self.path = str(path)
        self.line = line
        self.item_id = item_id
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        who = f" (item {item_id!r})" if item_id is not None else ""
        super().__init__(f"{where}{who}: {problem}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "id": self.item_id, "problem": self.problem}


@dataclass
class Item:
    """One question about one image. `image_path` is resolved (absolute or relative to the cwd)."""

    id: str
    image_path: Path
    question: str
    answers: list[str]
    evidence: list[Box] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def load_image(self) -> Image.Image:
        """The image as RGB (through `cropper.images.load_image`: size cap, EXIF, clear errors)."""
        return _load_image(self.image_path, name=f"item {self.id!r} ({self.image_path})")

    @property
    def metric(self) -> str | None:
        """The scoring metric the dataset asks for (`extra["metric"]`), if any."""
        return self.extra.get("metric")

    def to_dict(self, base_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        """The contract dict; `image` relative to `base_dir` (the JSONL's folder) when given."""
        image = Path(self.image_path)
        if base_dir is not None:
            image = Path(os.path.relpath(image.resolve(), Path(base_dir).resolve()))
        out: dict[str, Any] = {"id": self.id, "image": image.as_posix(), "question": self.question,
                               "answers": list(self.answers)}
        if self.evidence:
            out["evidence"] = [b.to_list(6) for b in self.evidence]
        for key, value in self.extra.items():
            if key not in out and key not in CONTRACT_FIELDS:
                out[key] = value
        return out


# --- reading and writing the contract --------------------------------------------------------------------


def load_jsonl(path: str | os.PathLike, strict: bool = False, check_images: bool = True) -> tuple[list[Item], list[DatasetError]]:
    """Read a dataset JSONL into `Item`s; bad lines become `DatasetError`s (or raise, with `strict`).

    A line is bad when it is not a JSON object, lacks `id`/`image`/`question`/`answers`, has an empty or
    non-string question, no answers, a duplicate id, an image file that does not exist (`check_images`),
    or `evidence` that is not a list of boxes of 4 numbers in 0..1 with x1 <= x2 and y1 <= y2.
    Blank lines are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    base = path.parent
    items: list[Item] = []
    errors: list[DatasetError] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = _parse_line(line, base, check_images)
                if item.id in seen:
                    raise _Bad(f"duplicate id (first on line {seen[item.id]})", item.id)
            except _Bad as bad:
                error = DatasetError(path, number, bad.problem, bad.item_id)
                if strict:
                    raise error from None
                errors.append(error)
                continue
            seen[item.id] = number
            items.append(item)
    return items, errors


def read_dataset(path: str | os.PathLike, check_images: bool = True) -> list[Item]:
    """`load_jsonl(path, strict=True)`'s items: the first bad line raises `DatasetError`."""
    return load_jsonl(path, strict=True, check_images=check_images)[0]


class _Bad(Exception):
    def __init__(self, problem: str, item_id: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.item_id = item_id


def _parse_line(line: str, base: Path, check_images: bool) -> Item:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" ("Invalid control character at"): say the column only once.
        message = exc.msg.removesuffix(" at")
        raise _Bad(f"not valid JSON ({message} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise _Bad(f"expected a JSON object, got {type(row).__name__}")
    raw_id = row.get("id")
    item_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    missing = [k for k in ("id", "image", "question", "answers") if k not in row]
    if missing:
        raise _Bad(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}", item_id)
    if item_id is None or not item_id.strip():
        raise _Bad(f"id must be a non-empty string or integer, got {raw_id!r}")
    question = row["question"]
    if not isinstance(question, str) or not question.strip():
        raise _Bad("question is empty" if isinstance(question, str) else f"question must be a string, got {question!r}", item_id)
    answers = _answers(row["answers"], item_id)
    image = row["image"]
    if not isinstance(image, str) or not image.strip():
        raise _Bad(f"image must be a path string, got {image!r}", item_id)
    image_path = base / image
    if check_images and not image_path.is_file():
        raise _Bad(f"image file not found: {image_path}", item_id)
    evidence = _evidence(row.get("evidence"), item_id)
    extra = {k: v for k, v in row.items() if k not in CONTRACT_FIELDS}
    return Item(item_id, image_path, question, answers, evidence, extra)


def _answers(value: Any, item_id: str) -> list[str]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise _Bad(f"answers must be a list of strings, got {type(value).__name__}", item_id)
    if not value:
        raise _Bad("answers is empty (an item needs at least one reference answer)", item_id)
    out = []
    for a in value:
        if isinstance(a, bool) or not isinstance(a, (str, int, float)):
            raise _Bad(f"answers must be strings, got {a!r}", item_id)
        text = str(a)
        if not text.strip():
            raise _Bad("answers contains an empty string", item_id)
        out.append(text)
    return out


def _evidence(value: Any, item_id: str) -> list[Box] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise _Bad(f"evidence must be a list of [x1, y1, x2, y2] boxes, got {value!r}", item_id)
    boxes = [value] if value and all(_is_number(v) for v in value) else value  # one flat box is accepted
    out = []
    for i, box in enumerate(boxes):
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise _Bad(f"evidence box {i} must be 4 numbers [x1, y1, x2, y2], got {box!r}", item_id)
        if not all(0.0 <= v <= 1.0 for v in box):
            raise _Bad(f"evidence box {i} {box} is not normalized: coordinates must be in 0..1 "
                       "(pixel boxes need dividing by the image width/height)", item_id)
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 < x1 or y2 < y1:
            raise _Bad(f"evidence box {i} {box} has x2 < x1 or y2 < y1", item_id)
        out.append(Box(x1, y1, x2, y2))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def write_jsonl(items: Iterable[Item | dict], path: str | os.PathLike) -> Path:
    """Write items as the contract (images relative to the file's folder); atomic (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for item in items:
            row = item.to_dict(path.parent) if isinstance(item, Item) else dict(item)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


# --- converters ------------------------------------------------------------------------------------------


class ConversionError(ValueError):
    """The source does not look like the format asked for (the message says what was expected)."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{what}: {path} is not valid JSON ({exc})") from exc


def _find_file(src: Path, patterns: tuple[str, ...], what: str, expected: str) -> Path:
    if src.is_file():
        return src
    if not src.exists():
        raise ConversionError(f"{what}: {src} does not exist; expected {expected}")
    for pattern in patterns:
        found = sorted(src.glob(pattern))
        if found:
            return found[0]
    raise ConversionError(f"{what}: no {' or '.join(patterns)} under {src}; expected {expected}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "_", text.lower()).strip("_") or "data"


def _finish(items: list[Item], skipped: list[str], out_path: Path, what: str, reason: str) -> Path:
    if not items:
        raise ConversionError(f"{what}: no usable items ({len(skipped)} skipped: {reason})")
    if skipped:
        warnings.warn(f"{what}: skipped {len(skipped)} item(s) ({reason}), e.g. {skipped[:3]}", stacklevel=3)
    return write_jsonl(items, out_path)


def _image_dir(json_path: Path, images: str | os.PathLike | None, candidates: tuple[str, ...], what: str) -> Path:
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise ConversionError(f"{what}: images folder {folder} does not exist")
        return folder
    for name in candidates:
        for root in (json_path.parent, json_path.parent.parent):
            if (root / name).is_dir():
                return root / name
    raise ConversionError(
        f"{what}: no images folder found next to {json_path} (looked for {', '.join(candidates)}); "
        "pass images=PATH"
    )


def convert_textvqa(src: str | os.PathLike, out_dir: str | os.PathLike, images: str | os.PathLike | None = None,
                    name: str | None = None) -> Path:
    """TextVQA: the official `TextVQA_0.5.1_{train,val}.json` (`{"data": [{question_id, image_id, question,
    answers, ...}]}`, 10 human answers each) and its images folder (`train_images/<image_id>.jpg`).

    `src`: the JSON file, or a folder holding it and `train_images/`. Scored with VQA accuracy.
    """
    what = "TextVQA"
    json_path = _find_file(Path(src), ("TextVQA_*.json", "*textvqa*.json", "*.json"), what,
                           "TextVQA_0.5.1_val.json with a 'data' list and a train_images/ folder")
    data = _read_json(json_path, what)
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list) or (rows and not {"question_id", "image_id", "question"} <= set(rows[0])):
        raise ConversionError(f"{what}: {json_path} is not TextVQA JSON (expected 'data': [{{question_id, "
                              "image_id, question, answers}}])")
    folder = _image_dir(json_path, images, ("train_images", "test_images", "images", "train_val_images/train_images"), what)
    out_dir = Path(out_dir)
    items, skipped = [], []
    for row in rows:
        qid = str(row["question_id"])
        answers = [str(a) for a in row.get("answers") or [] if str(a).strip()]
        image = next((folder / f"{row['image_id']}{ext}" for ext in (".jpg", ".png", ".jpeg") if (folder / f"{row['image_id']}{ext}").is_file()), None)
        if not answers or image is None:
            skipped.append(qid)
            continue
        extra = {"metric": "vqa", "dataset": "textvqa", "image_id": row["image_id"]}
        if "set_name" in row:
            extra["split"] = row["set_name"]
        items.append(Item(f"textvqa-{qid}", image, str(row["question"]), answers, None, extra))
    return _finish(items, skipped, out_dir / f"{name or _slug(json_path.stem)}.jsonl", what,
                   "no answers (test split) or image file missing")


def convert_docvqa(src: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None) -> Path:
    """DocVQA (single-page): the official `{train,val}_v1.0.json` (`{"data": [{questionId, question, image,
    answers, ...}]}`) whose `image` (`documents/xxx.png`) is relative to the JSON's folder.

    `src`: the JSON file or its folder. Scored with ANLS.
    """
    what = "DocVQA"
    json_path = _find_file(Path(src), ("*_v1.0*.json", "*.json"), what,
                           "val_v1.0.json with a 'data' list next to a documents/ folder")
    data = _read_json(json_path, what)
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list) or (rows and not {"questionId", "question", "image"} <= set(rows[0])):
        raise ConversionError(f"{what}: {json_path} is not DocVQA JSON (expected 'data': [{{questionId, "
                              "question, image, answers}}])")
    split = data.get("dataset_split") or json_path.stem
    items, skipped = [], []
    for row in rows:
        qid = str(row["questionId"])
        answers = [str(a) for a in row.get("answers") or [] if str(a).strip()]
        image = json_path.parent / row["image"]
        if not answers or not image.is_file():
            skipped.append(qid)
            continue
        extra = {"metric": "anls", "dataset": "docvqa", "split": split}
        for key in ("docId", "question_types"):
            if key in row:
                extra[key] = row[key]
        items.append(Item(f"docvqa-{qid}", image, str(row["question"]), answers, None, extra))
    return _finish(items, skipped, Path(out_dir) / f"{name or 'docvqa_' + _slug(str(split))}.jsonl", what,
                   "no answers (test split) or image file missing")


def convert_chartqa(src: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None) -> Path:
    """ChartQA: a split folder of the release (`test/` with `test_human.json`, `test_augmented.json` and
    `png/`), or one of those JSON files; each a list of `{imgname, query, label}`.

    Both the human and the augmented questions are converted (`extra["source"]` says which). Scored with
    relaxed accuracy.
    """
    what = "ChartQA"
    src = Path(src)
    if src.is_file():
        files, folder = [src], src.parent
    elif src.is_dir():
        files, folder = sorted(src.glob("*_human.json")) + sorted(src.glob("*_augmented.json")), src
        if not files:
            raise ConversionError(f"{what}: no *_human.json or *_augmented.json under {src}; expected a split "
                                  "folder of the ChartQA release (e.g. 'ChartQA Dataset/test')")
    else:
        raise ConversionError(f"{what}: {src} does not exist; expected a split folder such as 'ChartQA Dataset/test'")
    png = folder / "png"
    if not png.is_dir():
        raise ConversionError(f"{what}: no png/ folder next to {files[0]} (the chart images)")
    split = re.sub(r"_(human|augmented)$", "", files[0].stem) if src.is_file() else folder.name
    items, skipped = [], []
    for path in files:
        rows = _read_json(path, what)
        if not isinstance(rows, list) or (rows and not {"imgname", "query", "label"} <= set(rows[0])):
            raise ConversionError(f"{what}: {path} is not ChartQA JSON (expected a list of {{imgname, query, label}})")
        source = "human" if path.stem.endswith("human") else "augmented" if path.stem.endswith("augmented") else path.stem
        for i, row in enumerate(rows):
            item_id = f"chartqa-{split}-{source}-{i}"
            image = png / row["imgname"]
            label = row["label"]
            labels = [str(x) for x in label] if isinstance(label, list) else [str(label)]
            if not image.is_file() or not any(x.strip() for x in labels):
                skipped.append(item_id)
                continue
            items.append(Item(item_id, image, str(row["query"]), labels, None,
                              {"metric": "relaxed", "dataset": "chartqa", "split": split, "source": source,
                               "imgname": row["imgname"]}))
    return _finish(items, skipped, Path(out_dir) / f"{name or 'chartqa_' + _slug(split)}.jsonl", what,
                   "image file missing or empty label")


LETTERS = "ABCDEFGH"
MC_PROMPT = "Answer with the option's letter from the given choices directly."


def multiple_choice(question: str, options: list[str], correct: int) -> tuple[str, list[str], str]:
    """The question with lettered options appended, the accepted answers (the letter, the option text and
    `B. text`, all compared normalized), and the correct letter."""
    lines = [question.strip(), *(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options)), MC_PROMPT]
    letter = LETTERS[correct]
    text = options[correct].strip()
    return "\n".join(lines), list(dict.fromkeys([letter, text, f"{letter}. {text}"])), letter


def convert_vstar(src: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None,
                  shuffle_options: bool = True) -> Path:
    """V* Bench: the release folder (`direct_attributes/`, `relative_position/`), each image next to a
    same-name `.json` holding `question`, `options` (the first is the correct one), `target_object` and
    `bbox` (`[x, y, w, h]` in pixels per target object).

    The boxes become normalized `evidence`. Because the correct option is always first in the release,
    options are shuffled (deterministically per item) unless `shuffle_options=False`. Scored exact
    (letter or option text).
    """
    what = "V* Bench"
    root = Path(src)
    if not root.is_dir():
        raise ConversionError(f"{what}: {root} is not a folder; expected the vstar_bench folder with "
                              "direct_attributes/ and relative_position/")
    annotations = sorted(root.rglob("*.json"))
    items, skipped = [], []
    for ann_path in annotations:
        ann = _read_json(ann_path, what)
        if not isinstance(ann, dict) or "question" not in ann or "options" not in ann:
            continue  # not an item annotation (e.g. a metadata file)
        image = next((ann_path.with_suffix(ext) for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG")
                      if ann_path.with_suffix(ext).is_file()), None)
        category = ann_path.parent.name if ann_path.parent != root else "vstar"
        item_id = f"vstar-{category}-{ann_path.stem}"
        options = [str(o) for o in ann["options"]]
        if image is None or not options:
            skipped.append(item_id)
            continue
        order = list(range(len(options)))
        if shuffle_options:
            random.Random(item_id).shuffle(order)
        shuffled = [options[i] for i in order]
        question, answers, letter = multiple_choice(str(ann["question"]), shuffled, order.index(0))
        try:
            with Image.open(image) as im:  # header only: the size, for normalizing the pixel boxes
                width, height = im.size
        except (OSError, ValueError):
            skipped.append(item_id)
            continue
        evidence = []
        for box in ann.get("bbox") or []:
            if isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box):
                x, y, w, h = (float(v) for v in box)
                evidence.append(Box.from_pixels(x, y, x + w, y + h, width, height))
        extra = {"metric": "exact", "dataset": "vstar", "category": category, "options": shuffled,
                 "answer_letter": letter, "target_object": ann.get("target_object"),
                 "question_raw": ann["question"]}
        items.append(Item(item_id, image, question, answers, evidence or None, extra))
    if not annotations:
        raise ConversionError(f"{what}: no .json annotations under {root}; expected image + same-name .json "
                              "pairs in direct_attributes/ and relative_position/")
    return _finish(items, skipped, Path(out_dir) / f"{name or 'vstar'}.jsonl", what, "image missing or no options")


def _read_table(path: Path, what: str):
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".tsv", ".csv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    raise ConversionError(f"{what}: {path} is neither .parquet nor .tsv")


def _native(value: Any) -> Any:
    """A plain Python value for JSON (numpy scalars from pandas become int/float/str)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _image_ext(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".bin"


def convert_hrbench(src: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None) -> Path:
    """HR-Bench (4K/8K): the release table (`hr_bench_4k.parquet` or the VLMEvalKit-style `.tsv`) with
    `index, question, answer (letter), A, B, C, D, category, image (base64)` per row.

    Images are decoded and written unchanged to `<out_dir>/images/<name>/<index>.<ext>`. Scored exact
    (letter or option text).
    """
    what = "HR-Bench"
    path = _find_file(Path(src), ("hr_bench_*.parquet", "*.parquet", "hr_bench_*.tsv", "*.tsv"), what,
                      "hr_bench_4k.parquet / hr_bench_8k.parquet or a .tsv with base64 images")
    table = _read_table(path, what)
    required = {"index", "question", "answer", "image", "A", "B"}
    if not required <= set(table.columns):
        raise ConversionError(f"{what}: {path} lacks column(s) {sorted(required - set(table.columns))} "
                              f"(has {list(table.columns)})")
    name = name or _slug(path.stem)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images" / name
    image_dir.mkdir(parents=True, exist_ok=True)
    letters = [c for c in LETTERS if c in table.columns]
    rows = [{k: _native(v) for k, v in row.items()} for row in table.to_dict("records")]
    # VLMEvalKit's TSVs store a shared image once; other rows hold the index of the row that has it.
    by_index = {str(row["index"]): str(row["image"]) for row in rows}
    items, skipped = [], []
    for row in rows:
        index = str(row["index"])
        item_id = f"hrbench-{name}-{index}"
        options = [str(row[c]) for c in letters if str(row.get(c, "")).strip() and str(row[c]) != "nan"]
        answer = str(row["answer"]).strip().upper()
        encoded = str(row["image"])
        if len(encoded) < 16 and encoded in by_index:
            encoded = by_index[encoded]
        try:
            data = base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            data = b""
        if not data or answer not in letters[: len(options)]:
            skipped.append(item_id)
            continue
        image = image_dir / f"{_slug(index)}{_image_ext(data)}"
        image.write_bytes(data)
        question, answers, letter = multiple_choice(str(row["question"]), options, letters.index(answer))
        extra = {"metric": "exact", "dataset": "hrbench", "options": options, "answer_letter": letter,
                 "index": row["index"], "question_raw": row["question"]}
        for key in ("category", "cycle_category"):
            if key in row and str(row[key]) not in ("", "nan"):
                extra[key] = row[key]
        items.append(Item(item_id, image, question, answers, None, extra))
    return _finish(items, skipped, out_dir / f"{name}.jsonl", what, "undecodable image or answer not among options")


CONVERTERS: dict[str, Callable[..., Path]] = {
    "textvqa": convert_textvqa,
    "docvqa": convert_docvqa,
    "chartqa": convert_chartqa,
    "vstar": convert_vstar,
    "hrbench": convert_hrbench,
}
_ALIASES = {"v*": "vstar", "vstar_bench": "vstar", "vstar-bench": "vstar", "v*bench": "vstar",
            "hr-bench": "hrbench", "hr_bench": "hrbench"}


def convert(format_name: str, src: str | os.PathLike, out_dir: str | os.PathLike, **options: Any) -> Path:
    """Convert `src` in the public format `format_name` (textvqa, docvqa, chartqa, vstar, hrbench) into the
    JSONL contract under `out_dir`; returns the written file's path."""
    key = format_name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in CONVERTERS:
        raise ValueError(f"unknown dataset format {format_name!r}; known: {', '.join(CONVERTERS)}")
    return CONVERTERS[key](src, out_dir, **options)


__all__ = [
    "CONVERTERS", "ConversionError", "DatasetError", "Item", "convert", "convert_chartqa", "convert_docvqa",
    "convert_hrbench", "convert_textvqa", "convert_vstar", "load_jsonl", "multiple_choice", "read_dataset",
    "write_jsonl",
]
