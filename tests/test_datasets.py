"""The JSONL dataset contract (per-line errors) and the converters from the public benchmarks' formats."""

from __future__ import annotations

import base64
import io
import json

import pandas as pd
import pytest
from PIL import Image

from cropper.geometry import Box
from training.datasets import (
    ConversionError,
    DatasetError,
    Item,
    convert,
    convert_chartqa,
    convert_docvqa,
    convert_hrbench,
    convert_textvqa,
    convert_vstar,
    load_jsonl,
    read_dataset,
    write_jsonl,
)
from training.judge import score


def tiny_image(path, size=(40, 30), colour=(200, 30, 30), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"id": "q1", "image": "images/a.png", "question": "What is written on the green sign?",
        "answers": ["B7-4421"], "evidence": [[0.61, 0.72, 0.66, 0.75]], "kind": "sign", "easy": False}


# --- the contract ---------------------------------------------------------------------------------------


def test_load_jsonl_reads_items_with_evidence_and_extra_fields(tmp_path):
    tiny_image(tmp_path / "images" / "a.png")
    path = write_lines(tmp_path / "data.jsonl", [GOOD, "", {**GOOD, "id": 2, "evidence": None, "answers": "x"}])
    items, errors = load_jsonl(path)
    assert errors == []
    first, second = items
    assert first.id == "q1" and first.image_path == tmp_path / "images" / "a.png"
    assert first.evidence == [Box(0.61, 0.72, 0.66, 0.75)]
    assert first.extra == {"kind": "sign", "easy": False}
    assert first.load_image().size == (40, 30)
    assert (second.id, second.answers, second.evidence) == ("2", ["x"], None)


def test_write_jsonl_round_trips_with_paths_relative_to_the_new_file(tmp_path):
    tiny_image(tmp_path / "images" / "a.png")
    items, _ = load_jsonl(write_lines(tmp_path / "data.jsonl", [GOOD]))
    out = write_jsonl(items, tmp_path / "elsewhere" / "copy.jsonl")
    row = json.loads(out.read_text())
    assert row["image"] == "../images/a.png" and row["kind"] == "sign"
    again = read_dataset(out)
    assert again[0].image_path.resolve() == items[0].image_path.resolve()
    assert (again[0].answers, again[0].evidence, again[0].extra) == (items[0].answers, items[0].evidence, items[0].extra)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "q9", "image": "images/a.png", "question": "Q?", "answers": ["a"]', "not valid JSON"),
        ('["q9", "images/a.png"]', "expected a JSON object"),
        ({"id": "q9", "image": "images/a.png", "answers": ["a"]}, "missing field question"),
        ({"id": "q9", "image": "images/a.png", "question": "Q?", "answers": []}, "answers is empty"),
        ({"id": "q9", "image": "images/a.png", "question": "Q?", "answers": [""]}, "empty string"),
        ({"id": "q9", "image": "images/a.png", "question": "  ", "answers": ["a"]}, "question is empty"),
        ({"id": "q9", "image": "images/missing.png", "question": "Q?", "answers": ["a"]}, "image file not found"),
        ({"id": "q9", "image": "images/a.png", "question": "Q?", "answers": ["a"], "evidence": [[0.1, 0.2, 0.3]]},
         "must be 4 numbers"),
        ({"id": "q9", "image": "images/a.png", "question": "Q?", "answers": ["a"], "evidence": [[10, 20, 300, 400]]},
         "not normalized"),
        ({"id": "q9", "image": "images/a.png", "question": "Q?", "answers": ["a"], "evidence": [[0.5, 0.2, 0.3, 0.4]]},
         "x2 < x1"),
        ({"id": "q1", "image": "images/a.png", "question": "Q?", "answers": ["a"]}, "duplicate id (first on line 1)"),
    ],
)
def test_each_bad_line_names_the_file_line_item_and_problem(tmp_path, line, problem):
    tiny_image(tmp_path / "images" / "a.png")
    path = write_lines(tmp_path / "data.jsonl", [GOOD, line, {**GOOD, "id": "q3"}])
    items, errors = load_jsonl(path)
    assert [i.id for i in items] == ["q1", "q3"]  # the good lines around it still load
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, DatasetError) and error.line == 2 and problem in error.problem
    assert str(error).startswith(f"{path}:2") and problem in str(error)
    if "JSON" not in problem:
        assert error.item_id == "q1" if "duplicate" in problem else error.item_id == "q9"
        assert "'q" in str(error)
    with pytest.raises(DatasetError, match=f"data.jsonl:2.*{problem[:12]}"):
        load_jsonl(path, strict=True)


def test_missing_dataset_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset file not found"):
        load_jsonl(tmp_path / "nope.jsonl")


# --- converters -----------------------------------------------------------------------------------------


def test_textvqa(tmp_path):
    src = tmp_path / "textvqa"
    tiny_image(src / "train_images" / "0054c91397f2fe05.jpg", fmt="JPEG")
    tiny_image(src / "train_images" / "003a8ae2ef43b901.jpg", fmt="JPEG")
    data = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
        {"question": "what is the brand of phone?", "image_id": "0054c91397f2fe05", "image_classes": ["Phone"],
         "image_width": 1024, "image_height": 730, "answers": ["nokia"] * 9 + ["nokia phone"],
         "question_tokens": ["what", "is"], "question_id": 34602, "set_name": "val"},
        {"question": "what does the sign say?", "image_id": "003a8ae2ef43b901", "answers": ["stop"] * 3 + ["halt"] * 7,
         "question_id": 34603, "set_name": "val"},
        {"question": "image not on disk?", "image_id": "ffffffffffffffff", "answers": ["x"] * 10,
         "question_id": 34604, "set_name": "val"},
    ]}
    (src / "TextVQA_0.5.1_val.json").write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="skipped 1 item"):
        out = convert_textvqa(src, tmp_path / "out")
    items = read_dataset(out)
    assert out.name == "textvqa_0.5.1_val.jsonl"
    assert [i.id for i in items] == ["textvqa-34602", "textvqa-34603"]
    assert len(items[0].answers) == 10 and items[0].metric == "vqa" and items[0].load_image().size == (40, 30)
    assert score("Stop", items[1].answers, items[1].metric) == pytest.approx(0.9)


def test_docvqa(tmp_path):
    src = tmp_path / "val"
    tiny_image(src / "documents" / "pybv0228_81.png")
    data = {"dataset_name": "docvqa", "dataset_split": "val", "dataset_version": "1.0", "data": [
        {"questionId": 49153, "question": "What is the ‘actual’ value per 1000, during the year 1975?",
         "question_types": ["figure/diagram"], "image": "documents/pybv0228_81.png", "docId": 14465,
         "ucsf_document_id": "pybv0228", "ucsf_document_page_no": "81", "answers": ["0.28"], "data_split": "val"},
    ]}
    (src / "val_v1.0.json").write_text(json.dumps(data))
    items = read_dataset(convert_docvqa(src / "val_v1.0.json", tmp_path / "out"))
    assert items[0].id == "docvqa-49153" and items[0].answers == ["0.28"] and items[0].metric == "anls"
    assert items[0].image_path.resolve() == (src / "documents" / "pybv0228_81.png").resolve()
    assert score("0.2B", items[0].answers, items[0].metric) == pytest.approx(0.75)


def test_chartqa(tmp_path):
    src = tmp_path / "ChartQA Dataset" / "test"
    tiny_image(src / "png" / "41699051005347.png")
    tiny_image(src / "png" / "multi_col_100.png")
    (src / "test_human.json").write_text(json.dumps([
        {"imgname": "41699051005347.png", "query": "What's the value of the lowest bar?", "label": "23"}]))
    (src / "test_augmented.json").write_text(json.dumps([
        {"imgname": "multi_col_100.png", "query": "Which year has the highest value?", "label": 2019}]))
    items = read_dataset(convert(format_name="ChartQA", src=src, out_dir=tmp_path / "out"))
    assert [(i.id, i.answers, i.extra["source"]) for i in items] == [
        ("chartqa-test-human-0", ["23"], "human"), ("chartqa-test-augmented-0", ["2019"], "augmented")]
    assert score("23.9", items[0].answers, items[0].metric) == 1.0  # relaxed: within 5%
    one = read_dataset(convert_chartqa(src / "test_human.json", tmp_path / "one"))  # a single file works too
    assert [i.id for i in one] == ["chartqa-test-human-0"]


def test_vstar_normalizes_pixel_boxes_and_shuffles_options(tmp_path):
    root = tmp_path / "vstar_bench"
    tiny_image(root / "direct_attributes" / "sa_4690.jpg", size=(200, 100), fmt="JPEG")
    (root / "direct_attributes" / "sa_4690.json").write_text(json.dumps({
        "target_object": ["woman's bag"], "bbox": [[50, 20, 30, 40]],
        "question": "What is the color of the woman's bag?", "options": ["black", "white", "red", "blue"]}))
    tiny_image(root / "relative_position" / "sa_100.jpg", size=(100, 100), fmt="JPEG")
    (root / "relative_position" / "sa_100.json").write_text(json.dumps({
        "target_object": ["dog", "car"], "bbox": [[0, 0, 10, 10], [90, 90, 10, 10]],
        "question": "Is the dog on the left or right side of the car?", "options": ["left", "right"]}))
    items = {i.id: i for i in read_dataset(convert("vstar", root, tmp_path / "out"))}
    bag = items["vstar-direct_attributes-sa_4690"]
    assert bag.evidence == [Box(0.25, 0.2, 0.4, 0.6)]  # [x, y, w, h] px -> normalized x1, y1, x2, y2
    letter = bag.extra["answer_letter"]
    assert bag.extra["options"]["ABCD".index(letter)] == "black"
    assert f"({letter}) black" in bag.question and bag.question.startswith("What is the color")
    assert set(bag.answers) == {letter, "black", f"{letter}. black"}
    assert score(letter, bag.answers, bag.metric) == score("Black", bag.answers) == score(f"({letter}) black", bag.answers) == 1.0
    assert len(items["vstar-relative_position-sa_100"].evidence) == 2
    # The shuffle is per item and deterministic.
    again = read_dataset(convert_vstar(root, tmp_path / "out2"))
    assert [i.extra["options"] for i in again] == [i.extra["options"] for i in items.values()]


def _jpeg_b64(colour):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def _hrbench_table():
    return pd.DataFrame({
        "index": [0, 1], "question": ["What is the color of the umbrella?", "What number is on the bus?"],
        "answer": ["C", "A"], "A": ["red", "42"], "B": ["blue", "24"], "C": ["green", "12"], "D": ["black", "21"],
        "category": ["single", "cross"], "cycle_category": ["single", "cross"],
        "image": [_jpeg_b64((0, 120, 0)), _jpeg_b64((0, 0, 200))],
    })


@pytest.mark.parametrize("suffix", ["parquet", "tsv"])
def test_hrbench_writes_the_embedded_images(tmp_path, suffix):
    table = _hrbench_table()
    if suffix == "tsv":
        table.loc[1, "image"] = "0"  # VLMEvalKit stores a shared image once; the other row names its index
    src = tmp_path / f"hr_bench_4k.{suffix}"
    table.to_parquet(src) if suffix == "parquet" else table.to_csv(src, sep="\t", index=False)
    out = convert_hrbench(src, tmp_path / "out")
    items = read_dataset(out)
    assert out.name == "hr_bench_4k.jsonl" and [i.id for i in items] == ["hrbench-hr_bench_4k-0", "hrbench-hr_bench_4k-1"]
    umbrella = items[0]
    assert umbrella.image_path.parent == tmp_path / "out" / "images" / "hr_bench_4k"
    assert umbrella.image_path.suffix == ".jpg" and umbrella.load_image().size == (64, 48)
    assert "(C) green" in umbrella.question and set(umbrella.answers) == {"C", "green", "C. green"}
    assert umbrella.extra["category"] == "single" and umbrella.metric == "exact"
    assert score("C", umbrella.answers, umbrella.metric) == 1.0 and score("B", umbrella.answers) == 0.0
    bus_colour = items[1].load_image().getpixel((30, 20))
    assert (bus_colour[1] > 100) == (suffix == "tsv")  # the shared green image, or its own blue one


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("textvqa", "TextVQA: no TextVQA_"),
        ("docvqa", "DocVQA: no "),
        ("chartqa", "ChartQA: no \\*_human.json"),
        ("vstar", "V\\* Bench: no .json annotations"),
        ("hrbench", "HR-Bench: no hr_bench_"),
    ],
)
def test_converters_say_what_they_expected_when_files_are_missing(tmp_path, fmt, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match=message):
        convert(fmt, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ConversionError, match="does not exist|not a folder"):
        convert(fmt, tmp_path / "absent", tmp_path / "out")


def test_converter_rejects_a_file_of_another_format(tmp_path):
    (tmp_path / "val_v1.0.json").write_text(json.dumps([{"imgname": "a.png", "query": "q", "label": "1"}]))
    with pytest.raises(ConversionError, match="is not DocVQA JSON"):
        convert_docvqa(tmp_path / "val_v1.0.json", tmp_path / "out")
    src = tmp_path / "tv"
    (src / "train_images").mkdir(parents=True)
    (src / "TextVQA_0.5.1_test.json").write_text(json.dumps({"data": [
        {"question": "q", "image_id": "abc", "question_id": 1, "set_name": "test"}]}))
    with pytest.raises(ConversionError, match="no usable items"):  # the test split has no answers
        convert_textvqa(src, tmp_path / "out")


def test_convert_names_the_known_formats():
    with pytest.raises(ValueError, match="textvqa, docvqa, chartqa, vstar, hrbench"):
        convert("coco", "x", "y")


def test_item_to_dict_keeps_extra_fields(tmp_path):
    item = Item("a", tmp_path / "img.png", "Q?", ["x"], [Box(0, 0, 0.5, 0.5)], {"metric": "anls", "id": "ignored"})
    assert item.to_dict(tmp_path) == {"id": "a", "image": "img.png", "question": "Q?", "answers": ["x"],
                                      "evidence": [[0.0, 0.0, 0.5, 0.5]], "metric": "anls"}
