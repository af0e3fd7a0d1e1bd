"""`cropper synth`: determinism, the dataset contract, the easy share, and resuming after a crash."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from training.datasets import load_jsonl
from training.synth import plan, synthesize


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    synthesize(out, 14, seed=3, progress=False, workers=2)
    return out


def test_writes_the_dataset_contract(made):
    items, errors = load_jsonl(made / "data.jsonl")
    assert errors == [] and len(items) == 14
    assert len({i.id for i in items}) == 14
    kinds = {i.extra["kind"] for i in items}
    assert kinds <= {"sign", "form", "page"}
    for item in items:
        assert item.answers and all(a.strip() for a in item.answers)
        assert item.evidence, item.id
        for box in item.evidence:
            assert 0 <= box.x1 < box.x2 <= 1 and 0 <= box.y1 < box.y2 <= 1
        with Image.open(item.image_path) as im:
            assert 3000 <= im.width <= 4200, (item.id, im.size)


def test_same_seed_same_bytes_and_other_workers_too(made, tmp_path):
    synthesize(tmp_path / "b", 14, seed=3, progress=False, workers=1)
    assert _files(tmp_path / "b") == _files(made)


def test_other_seed_other_data(made, tmp_path):
    synthesize(tmp_path / "c", 6, seed=4, progress=False)
    a = [json.loads(x)["question"] + json.loads(x)["answers"][0] for x in (made / "data.jsonl").read_text().splitlines()]
    c = [json.loads(x)["question"] + json.loads(x)["answers"][0] for x in (tmp_path / "c" / "data.jsonl").read_text().splitlines()]
    assert not set(a) & set(c)


def test_resume_after_a_crash_is_byte_identical(made, tmp_path):
    out = tmp_path / "d"
    synthesize(out, 6, seed=3, progress=False)
    data = out / "data.jsonl"
    # A crash mid-write: the last line cut short, and one image of an earlier scene lost.
    raw = data.read_text()
    data.write_text(raw[: len(raw) - 25])
    first_image = sorted((out / "images").iterdir())[0]
    first_image.unlink()
    synthesize(out, 14, seed=3, progress=False)
    assert _files(out) == _files(made)


def test_smaller_n_is_a_prefix(made):
    lines = (made / "data.jsonl").read_text().splitlines()
    planned = plan(14, seed=3)
    assert sum(s.n_items for s in planned) == len(lines)
    assert [json.loads(x)["image"] for x in lines][: planned[0].n_items] == [planned[0].image] * planned[0].n_items


def test_other_arguments_in_the_same_folder_are_refused(made):
    with pytest.raises(ValueError, match="other arguments"):
        synthesize(made, 14, seed=99, progress=False)
    with pytest.raises(ValueError, match="more than n"):
        synthesize(made, 3, seed=3, progress=False)


def test_about_fifteen_percent_of_items_are_easy():
    scenes = plan(4000, seed=11)
    easy = sum(s.n_items for s in scenes if s.easy)
    assert 0.12 <= easy / 4000 <= 0.18


def test_bad_mix_and_fraction_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown scene kind"):
        synthesize(tmp_path / "e", 2, mix={"poster": 1.0}, progress=False)
    with pytest.raises(ValueError, match="easy_fraction"):
        synthesize(tmp_path / "f", 2, easy_fraction=1.5, progress=False)
