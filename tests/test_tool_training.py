"""AwaRes-style tool training on a tiny random Qwen2.5-VL (built offline): the SFT collator's labels and
weights, SFT and GRPO steps through TRL, `train_tool` end to end, and the checkpoint under the tool strategy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from compare_data import make_dataset
from PIL import Image
from tiny_models import VISION_ONLY_TEMPLATE, build_tiny_qwen25vl
from transformers import AutoModelForImageTextToText, AutoProcessor

from backends.hf_wire import parse_tool_calls, to_chat
from cropper import ZoomWrapper
from cropper.geometry import Box, crop_set
from cropper.tokens import QwenVLModel
from cropper.zoom_tool import parse_zoom_arguments
from training.chat_templates import QWEN_VL_TOOL_TEMPLATE, prepare_for_tools
from training.datasets import read_dataset
from training.tool_sft import ToolTurnCollator, make_tool_sft_trainer, render_conversation
from training.tool_train import ToolTrainConfig, train_tool
from training.trajectories import build_trajectory, to_chat_example

TOKENS = QwenVLModel.qwen25(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "base", chat_template=VISION_ONLY_TEMPLATE)


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 800, 3), dtype=np.uint8))


def _examples(image):
    return [to_chat_example(build_trajectory(image, "What is written on the sign?", "B7", needs_zoom=z,
                                             evidence=[Box(0.6, 0.6, 0.7, 0.7)], token_model=TOKENS))
            for z in (True, False)]


def test_stock_template_gets_the_tool_template_and_both_renderings_agree(base, image):
    processor = prepare_for_tools(AutoProcessor.from_pretrained(base))
    assert processor.chat_template == QWEN_VL_TOOL_TEMPLATE
    traj = build_trajectory(image, "What is written on the sign?", "B7", needs_zoom=True,
                            evidence=[Box(0.6, 0.6, 0.7, 0.7)], token_model=TOKENS)
    native = to_chat_example(traj, native_tools=True)
    hermes, _ = to_chat(traj.messages, traj.tools, native_tools=False)
    # What SFT trains on (native tools) is the text the backend writes for a tool-unaware template (Hermes).
    assert render_conversation(processor, native) == processor.apply_chat_template(hermes, tokenize=False)


def test_collator_learns_assistant_turns_only_with_the_tool_turn_weighted(base, image):
    processor = prepare_for_tools(AutoProcessor.from_pretrained(base))
    zoom, direct = _examples(image)
    batch = ToolTurnCollator(processor, tool_turn_weight=5.0)([zoom, direct])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["loss_weights"].shape
    assert batch["image_grid_thw"].shape[0] == 3  # zoom: global view + crop; direct: global view
    tok = processor.tokenizer
    learned = tok.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert learned == ('<tool_call>\n{"name": "zoom", "arguments": {"crop": "bottom_right"}}\n</tool_call><|im_end|>\n'
                       "B7<|im_end|>\n")
    heavy = tok.decode(batch["input_ids"][0][batch["loss_weights"][0] == 5.0])
    assert heavy.startswith("<tool_call>") and "B7" not in heavy
    assert tok.decode(batch["input_ids"][1][batch["labels"][1] != -100]) == "B7<|im_end|>\n"
    assert set(batch["loss_weights"][1].unique().tolist()) == {0.0, 1.0}


def test_sft_steps_train_the_model(base, image, tmp_path):
    from trl import SFTConfig

    processor = prepare_for_tools(AutoProcessor.from_pretrained(base))
    model = AutoModelForImageTextToText.from_pretrained(base)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = SFTConfig(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=2, learning_rate=3e-3,
                     report_to=[], save_strategy="no", use_cpu=True, logging_steps=1, disable_tqdm=True)
    trainer = make_tool_sft_trainer(model, processor, _examples(image), args)
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)


def _dataset(root, n, needs_zoom=lambda i: i % 2 == 0, metric=None):
    data = make_dataset(root, n)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for i, row in enumerate(rows):
        row["needs_zoom"] = needs_zoom(i)
        if metric:
            row["metric"] = metric
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return data


def test_train_tool_runs_sft_and_grpo_and_the_checkpoint_runs_under_the_tool_strategy(base, tmp_path):
    # Semantic-similarity rewards differ between a random model's samples, so GRPO has advantages to follow.
    data = _dataset(tmp_path / "d", 4, metric="semantic")
    config = ToolTrainConfig(sft_steps=3, grpo_steps=2, group_size=2, batch_size=2, grad_accum=1, sft_lr=1e-3,
                             grpo_lr=1e-3, max_completion_length=16, global_side=512, device="cpu", save_steps=1)
    final = train_tool(f"hf:{base}", data, tmp_path / "run", config, progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if m["stage"] == "sft" and "loss" in m] == [1, 2, 3]
    grpo = [m for m in metrics if m["stage"] == "grpo" and "reward" in m]
    assert len(grpo) == 2 and any(m["reward_std"] > 0 for m in grpo)
    assert json.loads((tmp_path / "run" / "prepare.json").read_text())["zoom"] == 2
    assert (tmp_path / "run" / "training.png").stat().st_size > 5_000
    sft = AutoModelForImageTextToText.from_pretrained(tmp_path / "run" / "sft-final")
    tuned = AutoModelForImageTextToText.from_pretrained(final)
    sft_params = dict(sft.named_parameters())
    assert any(not torch.equal(sft_params[n], p) for n, p in tuned.named_parameters())  # GRPO moved the weights
    # The checkpoint loads as `hf:DIR` with the tool template, and the strategy runs on it unchanged.
    item = read_dataset(data)[0]
    wrapper = ZoomWrapper(f"hf:{final}", strategy="tool", global_side=512, max_rounds=1)
    answer = wrapper.ask(item.image_path, item.question)
    assert answer.strategy == "tool" and len(answer.replies) >= 1
    # What training taught for the zoom turn is what the backend parses into the same call and crop.
    processor = AutoProcessor.from_pretrained(final)
    traj = build_trajectory(item.load_image(), item.question, item.answers[0], needs_zoom=True,
                            evidence=item.evidence, token_model=TOKENS)
    example = to_chat_example(traj)
    turn = render_conversation(processor, example, upto=3)[len(render_conversation(processor, example, upto=2,
                                                                                   add_generation_prompt=True)):]
    _, calls = parse_tool_calls(turn.removesuffix("<|im_end|>\n"))
    assert [c.arguments for c in calls] == traj.calls
    assert parse_zoom_arguments(calls[0].arguments, crop_set("awares9")) == crop_set("awares9")[traj.calls[0]["crop"]]
    assert sorted(os.listdir(tmp_path / "run" / "grpo"))  # checkpoints to resume from


def test_sft_overfit_model_opens_a_zoom_call_at_inference(base, tmp_path):
    data = _dataset(tmp_path / "d", 1, needs_zoom=lambda i: True)
    config = ToolTrainConfig(stage="sft", sft_steps=60, batch_size=1, grad_accum=1, sft_lr=1e-2, global_side=512,
                             device="cpu", save_steps=1000)
    final = train_tool(f"hf:{base}", data, tmp_path / "run", config, progress=False)
    item = read_dataset(data)[0]
    answer = ZoomWrapper(f"hf:{final}", strategy="tool", global_side=512, max_rounds=1).ask(item.image_path, item.question)
    first = answer.replies[0]
    assert first.tool_calls or first.text.startswith("<tool_call>")  # it learned to ask for a crop first


def test_bad_stage_and_missing_model_are_clear_errors(tmp_path):
    data = _dataset(tmp_path / "d", 1)
    with pytest.raises(ValueError, match="unknown stage 'rl'"):
        train_tool("hf:/nowhere", data, tmp_path / "run", ToolTrainConfig(stage="rl"))
    with pytest.raises(FileNotFoundError, match="model folder not found: /nowhere"):
        train_tool("hf:/nowhere", data, tmp_path / "run", ToolTrainConfig(device="cpu"))


def test_cli_train_tool_sft_stage(base, tmp_path, capsys):
    from cropper.cli import main

    data = _dataset(tmp_path / "d", 2)
    assert main(["train-tool", "--model", f"hf:{base}", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--stage", "sft", "--sft-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--device", "cpu",
                 "--global-side", "512"]) == 0
    assert "trained model:" in capsys.readouterr().out
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    assert json.loads((tmp_path / "run" / "tool_train_config.json").read_text())["sft_steps"] == 2
    assert main(["train-tool", "--model", "hf:/nowhere", "--data", str(data), "--out", str(tmp_path / "x"),
                 "--device", "cpu"]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_interrupted_sft_resumes_from_its_checkpoint(base, tmp_path):
    data = _dataset(tmp_path / "d", 2)
    first = ToolTrainConfig(stage="sft", sft_steps=2, batch_size=1, grad_accum=1, sft_lr=1e-3, global_side=512,
                            device="cpu", save_steps=2)
    train_tool(f"hf:{base}", data, tmp_path / "run", first, progress=False)  # stops after step 2 (a "crash")
    assert (tmp_path / "run" / "sft" / "checkpoint-2").is_dir()
    longer = ToolTrainConfig(**{**first.__dict__, "sft_steps": 4})
    train_tool(f"hf:{base}", data, tmp_path / "run", longer, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in line and '"stage": "sft"' in line]
    assert steps == [1, 2, 3, 4]  # the rerun went on from step 3, it did not start over


def test_lora_training_saves_a_merged_plain_checkpoint(base, tmp_path):
    data = _dataset(tmp_path / "d", 2)
    config = ToolTrainConfig(stage="sft", sft_steps=2, batch_size=1, grad_accum=1, sft_lr=1e-2, global_side=512,
                             device="cpu", lora=True, lora_r=4, save_steps=100)
    final = train_tool(f"hf:{base}", data, tmp_path / "run", config, progress=False)
    assert not (final / "adapter_config.json").exists()
    tuned = AutoModelForImageTextToText.from_pretrained(final)
    original = dict(AutoModelForImageTextToText.from_pretrained(base).named_parameters())
    changed = [n for n, p in tuned.named_parameters() if not torch.equal(original[n], p)]
    assert changed and all(any(m in n for m in ("q_proj", "k_proj", "v_proj", "o_proj")) for n in changed)


def test_judge_labels_and_oracle_grounds_items_without_labels_or_boxes(tmp_path):
    from training.tool_train import prepare_tool_items

    data = make_dataset(tmp_path / "d", 3)
    truth = {row["id"]: Box.from_list(row["evidence"][0]) for row in map(json.loads, data.read_text().splitlines())}
    rows = [{k: v for k, v in json.loads(line).items() if k != "evidence"} for line in data.read_text().splitlines()]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = read_dataset(data)
    # The reader cannot read 26-px text from a 160-px view and can at full resolution: every item needs zoom.
    judge = ZoomWrapper("reader", strategy="low", global_side=160)
    prepared, counts = prepare_tool_items(items, ToolTrainConfig(judge=True), judge, progress=False)
    assert counts["zoom"] == 3 and counts["no_evidence"] == 0
    for entry in prepared:
        found, true = entry["evidence"][0], truth[entry["item"].id]
        centre = ((found.x1 + found.x2) / 2, (found.y1 + found.y2) / 2)
        assert true.x1 <= centre[0] <= true.x2 and true.y1 <= centre[1] <= true.y2, (found, true)  # OCR found the answer
