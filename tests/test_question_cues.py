"""Question cues: the parsed colour / quadrant beside the embedding, and their per-candidate matches."""

from __future__ import annotations

import json

import pytest
import torch

from backends.reader.colours import PALETTE
from cropper.policy import CropPolicy
from cropper.question_cues import COLOURS, CUE_DIM, QUADRANTS, cue_features, question_cues


def _named(cues: torch.Tensor) -> tuple[list[str], list[tuple]]:
    k = len(COLOURS)
    return ([c for c, v in zip(COLOURS, cues[:k].tolist(), strict=True) if v],
            [q for q, v in zip(QUADRANTS, cues[k:].tolist(), strict=True) if v])


@pytest.mark.parametrize(("question", "colour", "quadrant"), [
    ("What does the green sign say?", ["green"], []),
    ("What's written on the grey plaque in the top-right corner?", ["gray"], [(0.5, 0.0, 1.0, 0.5)]),
    ("Which text appears on the violet marker?", ["purple"], []),
    ("What does the magenta placard in the lower left say?", ["pink"], [(0.0, 0.5, 0.5, 1.0)]),
    ("What is the invoice number?", [], []),
    ("Which word comes right after 'blue sky'?", [], []),
])
def test_the_cues_name_the_colour_and_the_quadrant_the_question_names(question, colour, quadrant):
    cues = question_cues(question)
    assert cues.shape == (1, CUE_DIM) and cues.dtype == torch.float32
    assert _named(cues[0]) == (colour, quadrant)


def test_cue_features_match_the_named_colour_and_quadrant_per_candidate():
    k = len(COLOURS)
    cues = question_cues(["What does the red sign in the bottom right say?", "What is the total?"])
    boxes = torch.tensor([[0.6, 0.6, 0.7, 0.7], [0.1, 0.1, 0.2, 0.2]]).expand(2, 2, 4)
    share = torch.zeros(2, 2, k)
    share[:, 0, COLOURS.index("red")] = 0.3  # the first box is a third red, the second has no red
    share[:, 1, COLOURS.index("blue")] = 0.9
    peak = share * 2
    f = cue_features(cues, boxes, share, peak)
    assert f.shape == (2, 2, 5)
    # Named colour and quadrant: the red box in the bottom right matches both, the blue top-left one neither.
    assert f[0, 0].tolist() == pytest.approx([0.3, 0.6, 1.0, 1.0, 1.0])
    assert f[0, 1].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0, 1.0])
    # Nothing named: every match is zero, whatever the box holds.
    assert f[1].abs().sum().item() == 0.0
    # No colour map: the colour matches are zeros, the quadrant still counts.
    assert cue_features(cues, boxes, None, None)[0, 0].tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0, 1.0])


def test_the_policy_question_vector_ends_with_the_cues_and_changes_with_the_colour_alone():
    torch.manual_seed(0)
    policy = CropPolicy(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash").eval()
    q = policy.encode_questions(["What does the red sign say?", "What does the blue sign say?"])
    assert q.shape == (2, policy.question_dim)
    assert torch.equal(q[:, -CUE_DIM:], question_cues(["What does the red sign say?", "What does the blue sign say?"]))
    plain = CropPolicy(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash", cues=False)
    assert plain.encode_questions(["What does the red sign say?"]).shape == (1, plain.question_dim) \
        and plain.question_dim == policy.question_dim - CUE_DIM


def test_a_config_saved_before_cues_existed_loads_without_them(tmp_path):
    torch.manual_seed(0)
    old = CropPolicy(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash", cues=False)
    old.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["cues"]  # what an earlier cropper wrote
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = CropPolicy.from_pretrained(tmp_path)
    assert loaded.config.cues is False
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), loaded.state_dict().values(), strict=True))


def test_colour_names_in_cues_are_the_palette():
    assert COLOURS == list(PALETTE) and CUE_DIM == len(PALETTE) + 4
