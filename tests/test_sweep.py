"""The selection sweep: evidence hits against crop area over k / mass / max_area, from one pass of the network."""

from __future__ import annotations

import json

import pytest
import torch
from test_policy_training import scene, tiny_policy

from cropper.cli import main
from cropper.geometry import Box
from cropper.policy import Decision
from training.examples import Example, make_examples
from training.sweep import decide_all, pareto_front, plot_sweep, ranking_report, selection_sweep


@pytest.fixture(scope="module")
def setup():
    images, items = {}, []
    for i, colour in enumerate(["green", "blue", "red", "purple", "orange", "yellow"]):
        image, box = scene(i % 4, colour, f"AB {i}")
        images[f"img{i}"] = image
        items.append({"id": f"q{i}", "image": f"img{i}", "question": f"What is written on the {colour} sign?",
                      "answers": [f"AB {i}"], "evidence": [list(box)], "needs_zoom": True})
    policy = tiny_policy()
    with torch.no_grad():  # an open gate, so every setting selects crops
        policy.heads.gate[-1].bias.fill_(30.0)
    return policy, make_examples(items, policy.candidate_boxes), images.__getitem__


def test_every_setting_gets_a_row_and_more_crops_never_hold_less(setup):
    policy, examples, load = setup
    rows = selection_sweep(policy, examples, ks=(1, 2, 4, 8), masses=(None, 0.9), max_areas=(None, 0.2),
                           load=load, progress=False)
    assert [(r["k"], r["mass"], r["max_area"]) for r in rows][:3] == [(1, None, None), (1, None, 0.2), (1, 0.9, None)]
    assert len(rows) == 4 * 2 * 2
    exact = [r for r in rows if r["mass"] is None and r["max_area"] is None]
    # Best-first selection: a larger k extends the same list of crops.
    for a, b in zip(exact, exact[1:], strict=False):
        assert b["evidence_hit_rate"] >= a["evidence_hit_rate"]
        assert b["mean_crop_area"] >= a["mean_crop_area"] and b["mean_crops"] >= a["mean_crops"]
    assert exact[0]["mean_crops"] == 1
    capped = [r for r in rows if r["max_area"] == 0.2]
    # The cap holds except for the first crop, which is always kept.
    assert all(r["mean_crop_area"] <= max(0.2, e["mean_crop_area"]) + 1e-9 for r, e in zip(capped, exact, strict=False))


def test_ranking_report_tells_missing_candidates_from_bad_ranking():
    sign = Box(0.40, 0.40, 0.45, 0.42)
    holds, misses = Box(0.35, 0.35, 0.5, 0.5), Box(0.0, 0.0, 0.3, 0.3)

    def item(i, needs=True, evidence=(sign,)):
        return Example(f"q{i}", "img", "q?", ["a"], needs, torch.zeros(0), None, list(evidence))

    def decision(*boxes):
        return Decision(gate=1.0, names=[str(i) for i in range(len(boxes))], scores=[0.0] * len(boxes),
                        boxes=list(boxes))

    decisions = [
        (item(0), decision(holds, misses)),  # the best candidate holds it: rank 1
        (item(1), decision(misses, misses, holds)),  # held, but ranked 3rd
        (item(2), decision(*[misses] * 5, holds)),  # held, ranked 6th
        (item(3), decision(misses, Box(0.41, 0.40, 0.5, 0.5))),  # only partly inside any candidate
        (item(4, needs=False), decision(misses)),  # needs no zoom: not counted
        (item(5, evidence=()), decision(holds)),  # no evidence: not counted
    ]
    report = ranking_report(decisions, tops=(1, 4, 16))
    assert report["items"] == 4
    assert report["candidate_recall"] == pytest.approx(3 / 4)
    assert report["first_covering_within"] == {1: pytest.approx(1 / 4), 4: pytest.approx(2 / 4), 16: pytest.approx(3 / 4)}
    assert report["median_first_covering_rank"] == 3


def test_the_pareto_front_dominates_every_setting():
    rows = [{"k": k, "mass": None, "max_area": None, "evidence_hit_rate": h, "mean_crop_area": a,
             "gate_accuracy": 1.0, "mean_crops": k} for k, h, a in
            [(1, 0.3, 0.01), (2, 0.5, 0.05), (3, 0.45, 0.06), (4, 0.5, 0.08), (8, 0.9, 0.2), (9, 0.9, 0.3)]]
    front = pareto_front(rows)
    assert [r["k"] for r in front] == [1, 2, 8]
    for r in rows:
        assert any(f["mean_crop_area"] <= r["mean_crop_area"] and f["evidence_hit_rate"] >= r["evidence_hit_rate"]
                   for f in front)


def test_plot_and_cli(setup, tmp_path, capsys):
    policy, examples, load = setup
    rows = selection_sweep(policy, examples, ks=(1, 4), masses=(None,), max_areas=(None,), load=load, progress=False)
    png = plot_sweep(rows, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Only a trained policy ranks candidates; a training-free cropper is refused with the reason.
    data = tmp_path / "data.jsonl"
    image = tmp_path / "img.png"
    scene(0, "green", "AB 1")[0].save(image)
    data.write_text(json.dumps({"id": "a", "image": "img.png", "question": "What is on the green sign?",
                                "answers": ["AB 1"], "evidence": [[0.1, 0.15, 0.29, 0.23]]}) + "\n")
    assert main(["evaluate", "--data", str(data), "--cropper", "text-regions", "--sweep", str(tmp_path / "s.png")]) == 2
    assert "needs a trained policy" in capsys.readouterr().err
    policy.save_pretrained(tmp_path / "pol")
    out = tmp_path / "sweep.json"
    assert main(["evaluate", "--data", str(data), "--cropper", f"policy:{tmp_path / 'pol'}",
                 "--sweep", str(tmp_path / "s.png"), "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 7 * 4 * 4 and saved["pareto"]
    printed = capsys.readouterr().out
    assert (tmp_path / "s.png").stat().st_size > 0 and "best evidence hits" in printed
    # The ranking diagnosis is the same as the library's on the same decisions.
    examples = make_examples([json.loads(data.read_text()) | {"image": str(image)}], None)
    want = ranking_report(decide_all(policy, examples, progress=False))
    assert saved["ranking"]["items"] == want["items"] == 1
    assert saved["ranking"]["candidate_recall"] == want["candidate_recall"]
    assert "candidates: one holds the evidence for" in printed
