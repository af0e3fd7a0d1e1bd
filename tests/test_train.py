"""`cropper train` end to end on the real reader: judge -> oracle -> SFT -> GRPO, resume, CLI, bench."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from backends import load_backend
from backends.reader import PALETTE
from cropper.cli import main
from cropper.geometry import Box
from cropper.policy import CropPolicy
from training.grpo import GRPOConfig
from training.scenes import font
from training.sft import SFTConfig
from training.train import MetricsLog, TrainConfig, train

TINY = {"backbone": "test_efficientnet", "image_size": 96, "dim": 32, "hidden": 64, "encoder": "hash",
        "crop_set": "awares9"}
COLOURS = ("green", "blue", "red", "purple")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _dataset(folder, n: int = 8, with_labels: bool = False):
    """`n` 1000x750 images, each with one small sign (16 px text): unreadable in a 256-px view, readable in full."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    lines, truth = [], {}
    for i in range(n):
        image = Image.new("RGB", (1000, 750), (118, 124, 120))
        draw = ImageDraw.Draw(image)
        colour = COLOURS[i % 4]
        text = f"{rng.choice('ABCDEFGHKMNPRSTX')}{rng.choice('ABCDEFGHKMNPRSTX')} {rng.randint(100, 999)}"
        x, y = rng.choice([60, 560]) + rng.randint(0, 200), rng.choice([60, 430]) + rng.randint(0, 150)
        draw.rectangle([x, y, x + 110, y + 30], fill=PALETTE[colour])
        draw.text((x + 10, y + 6), text, font=font(16), fill=(250, 250, 250))
        image.save(folder / f"{i}.png")
        item = {"id": f"q{i}", "image": f"{i}.png", "question": f"What is written on the {colour} sign?",
                "answers": [text]}
        truth[item["id"]] = Box.from_pixels(x, y, x + 110, y + 30, 1000, 750)
        if with_labels:
            item.update(needs_zoom=True, evidence=[truth[item["id"]].to_list()])
        lines.append(json.dumps(item))
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "data.jsonl", truth


def _config(**overrides) -> TrainConfig:
    base = TrainConfig(policy=dict(TINY), sft=SFTConfig(epochs=2, batch_size=4), global_side=256,
                       grpo=GRPOConfig(steps=2, batch_size=3, group_size=2), holdout=0.25, eval_limit=4,
                       progress=False)
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="module")
def reader():
    return load_backend("reader")


@pytest.fixture(scope="module")
def unlabelled_run(tmp_path_factory, reader):
    data, truth = _dataset(tmp_path_factory.mktemp("unlabelled"))
    out = data.parent / "run"
    said: list[str] = []
    policy, report = train(data, reader, out, _config(), say=said.append)
    return data, truth, out, policy, report, said


def test_train_without_evidence_judges_grounds_and_trains(unlabelled_run):
    data, truth, out, policy, report, said = unlabelled_run
    labels = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 8
    # The reader cannot read 16-px text in a 256-px view and can at full resolution: every item needs zoom.
    assert all(x["needs_zoom"] and not x["low_correct"] and x["full_correct"] for x in labels), labels
    grounded = [json.loads(x) for x in (out / "evidence.jsonl").read_text().splitlines()]
    assert len(grounded) == 8 and all(g["source"] == "ocr" for g in grounded)
    # The oracle's boxes sit on the signs (the dataset never told it where they are).
    matched = {item_id for g in grounded for item_id, box in truth.items()
               if Box.from_list(g["evidence"][0]).intersection(box) > 0}
    assert matched == set(truth)
    assert any("grounding the answers of 8 items" in s for s in said)

    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "sft"] == list(range(1, 5))  # 6 items / 4 x 2 epochs
    assert [r["step"] for r in rows if r["stage"] == "grpo"] == [1, 2]
    stamps = [r["time"] for r in rows]  # wall-clock per step, in order, from this run
    assert stamps == sorted(stamps) and 0 < stamps[-1] - stamps[0] < 3600
    assert (out / "training.png").stat().st_size > 1000
    assert json.loads((out / "state.json").read_text())["stage"] == "done"


def test_the_trained_policy_loads_and_differs_from_sft_and_init(unlabelled_run):
    _, _, out, policy, report, _ = unlabelled_run
    loaded = CropPolicy.from_pretrained(out)
    final, sft = load_file(out / "model.safetensors"), load_file(out / "sft" / "model.safetensors")
    assert any(not torch.equal(final[k], sft[k]) for k in final)  # GRPO moved the weights
    torch.manual_seed(0)
    fresh = CropPolicy(**TINY).state_dict()
    assert any(not torch.equal(fresh[k], sft[k]) for k in sft)  # SFT moved them from the start
    assert all(torch.equal(loaded.state_dict()[k], final[k]) for k in final)
    assert set(report) >= {"policy", "text_regions", "sft_only", "held_out_items"}
    for name in ("policy", "text_regions", "sft_only"):
        assert report[name]["items"] == 2 and report[name]["accuracy"] is not None
    assert json.loads((out / "eval.json").read_text()) == report


def test_init_fine_tunes_a_trained_policy_and_keeps_its_network(unlabelled_run, tmp_path, reader):
    from training.train import initial_policy

    data, _, out, policy, _, _ = unlabelled_run
    start = initial_policy(_config(init=str(out), policy={"k": 3, "gate_threshold": 0.2}))
    saved = load_file(out / "model.safetensors")
    assert all(torch.equal(start.state_dict()[k], saved[k]) for k in saved)  # the trained weights, not random
    assert (start.config.k, start.config.gate_threshold) == (3, 0.2)
    with pytest.raises(ValueError, match="image_size cannot change"):
        initial_policy(_config(init=str(out), policy={**TINY, "image_size": 128}))

    tuned, _ = train(data, reader, tmp_path / "tuned", _config(init=str(out), policy={"k": 3},
                                                                grpo=GRPOConfig(steps=0)), say=lambda s: None)
    sft = load_file(tmp_path / "tuned" / "model.safetensors")
    assert any(not torch.equal(sft[k], saved[k]) for k in saved)  # SFT moved them on from the init
    assert tuned.config.k == 3 and tuned.config.extra["init"] == str(out)
    with pytest.raises(ValueError, match="init"):  # a folder started from one init is not resumed from another
        train(data, reader, tmp_path / "tuned", _config(init="default", policy={"k": 3}, grpo=GRPOConfig(steps=0)))


def test_grpo_alone_from_a_trained_policy(unlabelled_run, tmp_path, reader):
    """`--init DIR --sft-epochs 0`: no SFT step (its schedule once divided by zero steps), GRPO's reference is
    the init itself, and GRPO moves the weights on from it."""
    data, _, out, _, _, _ = unlabelled_run
    saved = load_file(out / "model.safetensors")
    config = _config(init=str(out), sft=SFTConfig(epochs=0, batch_size=4),
                     grpo=GRPOConfig(steps=1, batch_size=2, group_size=2), eval_target=False)
    train(data, reader, tmp_path / "grpo_only", config, say=lambda s: None)
    reference = load_file(tmp_path / "grpo_only" / "sft" / "model.safetensors")
    assert all(torch.equal(reference[k], saved[k]) for k in saved)
    tuned = load_file(tmp_path / "grpo_only" / "model.safetensors")
    assert any(not torch.equal(tuned[k], saved[k]) for k in saved)
    rows = [json.loads(line) for line in (tmp_path / "grpo_only" / "metrics.jsonl").read_text().splitlines()]
    assert not any(r.get("stage") == "sft" for r in rows) and any(r.get("stage") == "grpo" for r in rows)


def test_resume_continues_from_the_last_checkpoint(tmp_path, reader, monkeypatch):
    data, _ = _dataset(tmp_path / "labelled", with_labels=True)
    out = tmp_path / "run"
    config = _config(checkpoint_every=2, eval_target=False)
    real_call = MetricsLog.__call__

    def crash_at_step_3(self, row):
        real_call(self, row)
        if row["stage"] == "sft" and row["step"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(MetricsLog, "__call__", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(data, reader, out, config, say=lambda s: None)
    assert json.loads((out / "state.json").read_text()) == {"stage": "sft", "step": 2}
    checkpoint = load_file(out / "checkpoint" / "model.safetensors")
    monkeypatch.setattr(MetricsLog, "__call__", real_call)

    import training.train as train_module

    seen = {}
    real_sft = train_module.train_sft

    def spy(policy, *args, **kwargs):
        seen["start_step"] = kwargs["start_step"]
        seen["weights"] = {k: v.clone() for k, v in policy.state_dict().items()}
        return real_sft(policy, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_sft", spy)
    said: list[str] = []
    train(data, reader, out, config, say=said.append)
    assert seen["start_step"] == 2
    assert all(torch.equal(seen["weights"][k], checkpoint[k]) for k in checkpoint)
    assert any("resuming: stage 'sft', step 2" in s for s in said)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "sft"] == [1, 2, 3, 4]  # step 3 logged once, not twice
    assert [r["step"] for r in rows if r["stage"] == "grpo"] == [1, 2]
    stamps = [r["time"] for r in rows]  # wall-clock per step, in order, from this run
    assert stamps == sorted(stamps) and 0 < stamps[-1] - stamps[0] < 3600

    with pytest.raises(ValueError, match="other settings"):
        train(data, reader, out, _config(seed=5), say=lambda s: None)


def test_a_dataset_with_only_bad_lines_is_a_clear_error(tmp_path, reader):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "image": "missing.png", "question": "q?", "answers": ["x"]}\nnot json\n'
                    '{"id": "b", "image": "missing.png", "question": "q?", "answers": []}\n')
    said: list[str] = []
    with pytest.raises(ValueError, match="no usable items"):
        train(data, reader, tmp_path / "out", _config(), say=said.append)
    assert len(said) == 3
    assert "bad.jsonl:1 (item 'a')" in said[0] and "missing.png" in said[0]
    assert "bad.jsonl:2" in said[1]
    assert "bad.jsonl:3 (item 'b')" in said[2] and "answers is empty" in said[2]


def test_cli_synth_writes_and_reports_bad_arguments(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--n", "4", "--seed", "2", "--mix", "sign"]) == 0
    assert len((tmp_path / "d" / "data.jsonl").read_text().splitlines()) == 4
    assert main(["synth", "--out", str(tmp_path / "e"), "--n", "2", "--mix", "poster=1"]) == 2
    assert "unknown scene kind" in capsys.readouterr().err


def test_bench_times_the_policy_beside_a_reader_call(tmp_path):
    from cropper.bench import format_bench, run_bench

    torch.manual_seed(0)
    CropPolicy(**TINY).save_pretrained(tmp_path / "p")
    result = run_bench(str(tmp_path / "p"), repeats=4)
    for threads in ("1_thread", "2_threads"):
        row = result["policy_latency"][threads]
        assert 0 < row["p50_ms"] <= row["p90_ms"]
    assert result["reader_call_ms"] > 0 and result["peak_rss_mb"] > 50
    assert result["policy_vs_reader"] == pytest.approx(result["policy_latency"]["2_threads"]["p50_ms"]
                                                        / result["reader_call_ms"])
    assert "p50" in format_bench(result)
    assert result["machine_reference_ms"] > 0 and "machine reference" in format_bench(result)
    assert result["image_half"] == "onnxruntime"  # the warm-up made the graph, so the timed calls ran on it


def test_bench_takes_turns_between_one_and_two_threads(tmp_path, monkeypatch):
    """The two thread settings alternate query by query (each first half the time), so the machine's drift
    weighs on both alike; the caller's setting is given back."""
    from cropper.bench import QUESTIONS, run_bench

    torch.manual_seed(0)
    CropPolicy(**TINY).save_pretrained(tmp_path / "p")
    seen = []
    real = CropPolicy.propose

    def recording(self, image, question, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(self, image, question, *args, **kwargs)

    monkeypatch.setattr(CropPolicy, "propose", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_bench(str(tmp_path / "p"), repeats=4)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    timed = seen[len(QUESTIONS) : len(QUESTIONS) + 8]  # after the warm-up, before the reader's calls
    assert timed == [1, 2, 2, 1, 1, 2, 2, 1]  # the machine reference (1 thread) between them changes none
    assert after == 2  # the caller's setting is given back


def test_the_machine_reference_runs_on_one_thread_and_gives_the_callers_back(monkeypatch):
    from cropper.bench import reference_workload

    before = torch.get_num_threads()
    seen = []
    real = torch.tanh
    monkeypatch.setattr(torch, "tanh", lambda x: (seen.append(torch.get_num_threads()), real(x))[1])
    torch.set_num_threads(2)
    try:
        assert reference_workload() > 0
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {1} and len(seen) == 40
    assert after == 2


def test_cli_evaluate_breaks_the_summary_down_by_kind(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--n", "6", "--seed", "3", "--mix", "sign,form"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "d" / "data.jsonl").read_text().splitlines()]
    capsys.readouterr()
    # The whole image as the one crop: it holds every evidence box, so every item that needs zoom is a hit.
    assert main(["evaluate", "--data", str(tmp_path / "d" / "data.jsonl"), "--cropper", "grid:1",
                 "--out", str(tmp_path / "eval.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 6 and summary["evidence_hit_rate"] == 1.0
    assert summary["mean_crop_area"] == pytest.approx(1.0)
    kinds = {r["kind"] for r in rows}
    assert set(summary["by_group"]) == kinds
    assert sum(g["items"] for g in summary["by_group"].values()) == 6
    # The gate is right exactly on the items that need zoom (grid:1 always crops).
    assert summary["gate_accuracy"] == pytest.approx(sum(r["needs_zoom"] for r in rows) / 6)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert len(saved["rows"]) == 6 and {r["group"] for r in saved["rows"]} == kinds
