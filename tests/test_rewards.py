"""The policy rewards: plain functions with hand-computed values."""

from __future__ import annotations

import pytest

from training.rewards import CostWeights, CropCompletion, answer_reward, crop_cost_reward, total_reward

W = CostWeights(alpha_use=0.05, lam=0.3, alpha_miss=0.1)


def test_right_answer_with_a_small_crop_beats_the_same_answer_with_a_big_crop():
    small = CropCompletion("B7-4421", crop_tokens=100, full_tokens=10000, n_crops=1)
    big = CropCompletion("B7-4421", crop_tokens=5000, full_tokens=10000, n_crops=1)
    rewards = total_reward([small, big], [["B7-4421"]] * 2, [True, True], weights=W)
    assert rewards == pytest.approx([1 - 0.05 - 0.3 * 0.01, 1 - 0.05 - 0.3 * 0.5])


def test_needed_but_no_crop_is_penalised_and_unneeded_no_crop_is_free():
    none = CropCompletion("unknown", crop_tokens=0, full_tokens=10000, n_crops=0)
    assert crop_cost_reward([none, none], [True, False], weights=W) == pytest.approx([-0.1, 0.0])


def test_answer_reward_uses_the_shared_scorer():
    got = answer_reward([CropCompletion("b7 4421", 0, 1, 0), CropCompletion("nope", 0, 1, 0)], [["B7-4421"], ["x"]])
    assert got == [1.0, 0.0]


def test_lengths_must_match():
    with pytest.raises(ValueError):
        total_reward([CropCompletion("a", 0, 1, 0)], [["a"], ["b"]], [True])
