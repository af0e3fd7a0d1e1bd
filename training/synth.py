"""`cropper synth`: write a synthetic fine-grained dataset in the dataset contract, resumably.

Layout of `out_dir`:

    data.jsonl      one item per line: id, image, question, answers, evidence, kind, easy, needs_zoom, seed
    images/         000000.png, 000001.png, ... (several items may share one image)
    synth.json      the arguments that determine the content (seed, mix, easy_fraction), checked on resume

What is written is a function of `(seed, n, mix, easy_fraction)` only: scene `i` of dataset `seed` is
`make_scene(kind, seed * SCENES_PER_SEED + i, easy)` with `kind` and `easy` drawn from a generator seeded by
`(seed, i)`. So the items of a smaller `n` are the first lines of a larger one, and datasets of different
seeds never share a scene (as long as each holds fewer than `SCENES_PER_SEED` scenes). Each item's `seed`
field is its scene's seed: `make_scene(item["kind"], item["seed"], item["easy"])` redraws its image.

About `easy_fraction` of the items are answerable from the low-res view (the asked-for text is large):
an easy scene asks one question and a scene that needs zoom asks several (`scenes.HARD_QUESTIONS`), so
a scene of kind k is drawn easy with the probability that makes easy items that fraction of kind k's items.

Resuming: scenes are written one at a time (the PNG first, atomically, then its lines in one write), so
an interrupted run leaves whole scenes plus at most one partial one. A rerun with the same arguments
keeps every scene in `data.jsonl` but the last (which it redoes, since it may be cut short), redraws any
image file that has gone missing, and continues; the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scenes import HARD_QUESTIONS, SCENES, make_scene, scene_size

DEFAULT_MIX: dict[str, float] = {"sign": 0.5, "form": 0.25, "page": 0.25}
#: Scene seeds of dataset `seed` are `seed * SCENES_PER_SEED + i`, so datasets never share scenes.
SCENES_PER_SEED = 1_000_000
#: zlib level for the PNGs: level 3 is both faster and smaller than 1 on these flat-coloured scenes.
PNG_COMPRESS_LEVEL = 3
DATA_FILE, IMAGE_DIR, META_FILE = "data.jsonl", "images", "synth.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ScenePlan:
    """One scene of a synthetic dataset: everything needed to render it, known without rendering."""

    index: int
    kind: str
    seed: int  # the seed `make_scene` takes
    easy: bool
    n_items: int  # questions the scene asks (pages: at most this many, almost always exactly)

    @property
    def image(self) -> str:
        return f"{IMAGE_DIR}/{self.index:06d}.png"


def normalize_mix(mix: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    """Scene-kind weights summing to 1: a mapping of kind to weight, a list of kinds (equal weights) or None."""
    if mix is None:
        mix = DEFAULT_MIX
    if not isinstance(mix, Mapping):
        mix = {kind: 1.0 for kind in mix}
    unknown = sorted(set(mix) - set(SCENES))
    if unknown:
        raise ValueError(f"unknown scene kind(s) {unknown} in mix; known: {sorted(SCENES)}")
    weights = {k: float(v) for k, v in mix.items()}
    if any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"mix weights must be >= 0 with a positive sum, got {dict(mix)}")
    total = sum(weights.values())
    # Fixed kind order, so the same mix written in another order gives the same dataset.
    return {k: weights[k] / total for k in sorted(weights) if weights[k] > 0}


def easy_probability(kind: str, easy_fraction: float) -> float:
    """The probability that a `kind` scene is easy, so that easy items are `easy_fraction` of its items.

    An easy scene asks 1 question and a hard one H on average: p / (p + (1 - p) H) = f gives
    p = f H / (1 - f + f H).
    """
    if not 0.0 <= easy_fraction <= 1.0:
        raise ValueError(f"easy_fraction must be within 0..1, got {easy_fraction}")
    low, high = HARD_QUESTIONS[kind]
    hard = (low + high) / 2
    f = easy_fraction
    return f * hard / (1 - f + f * hard) if f < 1 else 1.0


def scenes(seed: int, mix: Mapping[str, float] | Sequence[str] | None = None,
           easy_fraction: float = 0.15, start: int = 0) -> Iterator[ScenePlan]:
    """The endless sequence of scenes of dataset `seed`, from scene `start`."""
    weights = normalize_mix(mix)
    kinds, cum = list(weights), []
    acc = 0.0
    for k in kinds:
        acc += weights[k]
        cum.append(acc)
    p_easy = {k: easy_probability(k, easy_fraction) for k in kinds}
    index = start
    while True:
        rng = random.Random(f"synth:{seed}:{index}")
        u = rng.random() * acc
        kind = next((k for k, c in zip(kinds, cum, strict=True) if u < c), kinds[-1])
        easy = rng.random() < p_easy[kind]
        scene_seed = seed * SCENES_PER_SEED + index
        yield ScenePlan(index, kind, scene_seed, easy, scene_size(kind, scene_seed, easy))
        index += 1


def plan(n: int, seed: int, mix: Mapping[str, float] | Sequence[str] | None = None,
         easy_fraction: float = 0.15) -> list[ScenePlan]:
    """The scenes a dataset of `n` items is made of, without rendering (the dry run).

    The last scene may ask fewer questions than it could (`n_items` is then cut to what fits); a page
    holding fewer unique anchors than planned (rare) makes the real dataset use a scene more.
    """
    out, total = [], 0
    for scene in scenes(seed, mix, easy_fraction):
        if total >= n:
            break
        take = min(scene.n_items, n - total)
        out.append(ScenePlan(scene.index, scene.kind, scene.seed, scene.easy, take))
        total += take
    return out


def render_items(scene: ScenePlan, dataset_seed: int, limit: int | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Render `scene` and turn its questions into dataset items (at most `limit`)."""
    image, raw = make_scene(scene.kind, scene.seed, scene.easy)
    items = []
    for j, item in enumerate(raw[:limit] if limit is not None else raw):
        items.append({
            "id": f"s{dataset_seed}-{scene.index:06d}-{j}",
            "image": scene.image,
            "question": item["question"],
            "answers": list(item["answers"]),
            "evidence": [list(map(float, box)) for box in item["evidence"]],
            "kind": item["kind"],
            "easy": bool(item["easy"]),
            "needs_zoom": not item["easy"],
            "seed": scene.seed,
        })
    return image, items


def synthesize(out_dir: str | os.PathLike, n: int, seed: int = 0,
               mix: Mapping[str, float] | Sequence[str] | None = None, easy_fraction: float = 0.15,
               progress: bool = True, workers: int | None = None) -> Path:
    """Write (or finish writing) a synthetic dataset of `n` items to `out_dir`; returns the JSONL path.

    `mix` weights the scene kinds (default 50% signs, 25% forms, 25% pages, by scene); `easy_fraction` is
    the share of items answerable from the low-res view. `workers` threads render and encode scenes ahead
    of the writer (default: up to 4, by CPU count); the output does not depend on it.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = Path(out_dir)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    weights = normalize_mix(mix)
    easy_probability(next(iter(weights)), easy_fraction)  # validates easy_fraction
    _check_meta(out / META_FILE, {"format": FORMAT_VERSION, "seed": seed, "mix": weights, "easy_fraction": easy_fraction})
    data = out / DATA_FILE
    groups = _read_groups(data)
    written = sum(len(g) for _, g in groups)
    if written > n:
        raise ValueError(f"{data} already holds {written} items, more than n={n}: use a new directory "
                         f"(or n >= {written} to extend it)")
    if written < n and groups:  # the last scene may be cut short: redo it
        groups = groups[:-1]
    kept = [line for _, g in groups for line in g]
    if len(kept) != _count_lines(data):
        _rewrite(data, kept)
    written = len(kept)
    next_index = groups[-1][0] + 1 if groups else 0
    missing = [index for index, _ in groups if not (out / IMAGE_DIR / f"{index:06d}.png").exists()]
    for index in missing:  # an image deleted after its lines were written: draw it again
        scene = next(scenes(seed, weights, easy_fraction, start=index))
        image, _ = render_items(scene, seed)
        _save_png(image, out / scene.image)
    if written >= n:
        return data

    from tqdm.auto import tqdm

    workers = workers or max(1, min(4, os.cpu_count() or 1))
    bar = tqdm(total=n, initial=written, unit="item", desc="synth", disable=not progress)
    pending: deque[tuple[ScenePlan, Future]] = deque()
    source = scenes(seed, weights, easy_fraction, start=next_index)
    with ThreadPoolExecutor(max_workers=workers) as pool, open(data, "a", encoding="utf-8") as fh:
        def top_up() -> None:
            # Render ahead, but never a scene the dataset will not need (it would leave a stray file).
            while len(pending) < 2 * workers and written + sum(s.n_items for s, _ in pending) < n:
                scene = next(source)
                pending.append((scene, pool.submit(_render_and_save, scene, seed, out)))

        top_up()
        while written < n:
            _, future = pending.popleft()
            items = future.result()[: n - written]
            if items:
                fh.write("".join(_dump(item) + "\n" for item in items))
                fh.flush()
                written += len(items)
                bar.update(len(items))
            top_up()
    bar.close()
    return data


def _render_and_save(scene: ScenePlan, dataset_seed: int, out: Path) -> list[dict[str, Any]]:
    image, items = render_items(scene, dataset_seed)
    if items:  # a scene with no question (a page without a unique anchor, rare) leaves no file
        _save_png(image, out / scene.image)
    return items


def _save_png(image, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    os.replace(tmp, path)  # atomic: a file under its real name is always a whole image


def _dump(item: dict[str, Any]) -> str:
    return json.dumps(item, ensure_ascii=False)


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is unreadable ({exc}); remove it or use a new directory") from exc
        if old != meta:
            diff = {k: (old.get(k), meta.get(k)) for k in meta.keys() | old.keys() if old.get(k) != meta.get(k)}
            raise ValueError(f"{path.parent} holds a dataset made with other arguments (was, now): {diff}; "
                             "use a new directory or the same arguments")
        return
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _read_groups(data: Path) -> list[tuple[int, list[str]]]:
    """The whole lines of `data.jsonl` grouped by scene, in order; stops at a cut or garbled line."""
    if not data.exists():
        return []
    groups: list[tuple[int, list[str]]] = []
    raw = data.read_text(encoding="utf-8", errors="replace")
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # no newline at the end: the last line was cut short
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
            index, j = int(Path(item["image"]).stem), int(str(item["id"]).rsplit("-", 1)[1])
        except (json.JSONDecodeError, KeyError, ValueError, IndexError, TypeError):
            break  # a garbled line (say, a crash mid-write on some filesystems): redo from here
        if groups and groups[-1][0] == index and j == len(groups[-1][1]):
            groups[-1][1].append(line)
        elif j == 0 and (not groups or index > groups[-1][0]):
            groups.append((index, [line]))
        else:
            raise ValueError(f"{data}:{number}: item {item.get('id')!r} is out of order; this file was not "
                             "written by `synthesize` in one sequence (use a new directory)")
    return groups


def _count_lines(data: Path) -> int:
    if not data.exists():
        return 0
    raw = data.read_bytes()
    return raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)


def _rewrite(data: Path, lines: list[str]) -> None:
    tmp = data.with_name(data.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, data)
