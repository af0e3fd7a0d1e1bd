"""SFT and GRPO of a tiny crop policy against the real offline reader, on small rendered scenes."""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image, ImageDraw

from backends.reader import PALETTE
from cropper import ZoomWrapper
from cropper.geometry import Box
from cropper.policy import CropPolicy, PolicyConfig
from training.examples import crop_distribution, make_examples
from training.grpo import NO_CROP, GRPOConfig, frozen_copy, group_advantages, log_probs, sample_choices, train_grpo
from training.rollout import BackendRollout
from training.scenes import font
from training.sft import ImageStore, SFTConfig, train_sft


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scene(quadrant: int, colour: str, text: str) -> tuple[Image.Image, Box]:
    """An 800x600 grey image with one small sign in the given quadrant (0..3)."""
    image = Image.new("RGB", (800, 600), (120, 125, 118))
    draw = ImageDraw.Draw(image)
    x = 80 + (quadrant % 2) * 400
    y = 90 + (quadrant // 2) * 300
    draw.rectangle([x, y, x + 150, y + 44], fill=PALETTE[colour])
    draw.text((x + 14, y + 10), text, font=font(22), fill=(250, 250, 250))
    return image, Box.from_pixels(x, y, x + 150, y + 44, 800, 600)


@pytest.fixture(scope="module")
def dataset():
    images, items = {}, []
    for i, (q, colour, text) in enumerate([(0, "green", "AB 12"), (1, "blue", "KX 318"), (2, "red", "TIMBER 4"),
                                           (3, "purple", "Q7-2210")]):
        image, box = scene(q, colour, text)
        images[f"img{i}"] = image
        items.append({"id": f"q{i}", "image": f"img{i}", "question": f"What is written on the {colour} sign?",
                      "answers": [text], "evidence": [list(box)], "needs_zoom": True})
    return images, items


def tiny_policy(seed=0) -> CropPolicy:
    torch.manual_seed(seed)
    return CropPolicy(PolicyConfig(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash",
                                   crop_set="awares9"))


def test_crop_distribution_prefers_the_smallest_covering_crop():
    candidates = [Box(0, 0, 1, 1), Box(0, 0, 0.5, 0.5), Box(0.5, 0.5, 1, 1)]
    target = crop_distribution([Box(0.1, 0.1, 0.2, 0.2)], candidates)
    assert target[2] == 0 and target[1] > target[0] and target.sum().item() == pytest.approx(1.0)
    assert crop_distribution([], candidates).sum() == 0


def test_group_advantages_are_zero_when_the_group_agrees():
    adv = group_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.5]]))
    assert torch.all(adv[0] == 0)
    assert adv[1, 1] > adv[1, 2] > adv[1, 0]


def test_log_probs_match_the_sampling_distribution():
    policy = tiny_policy()
    out = policy(torch.zeros(2, 3, 96, 96), torch.zeros(2, policy.question_dim))
    choices = sample_choices(out, 3, torch.Generator().manual_seed(0))
    assert choices.shape == (2, 3) and ((choices == NO_CROP) | (choices >= 0)).all()
    every = torch.arange(-1, out.crop_logits.shape[1])
    probs = torch.exp(log_probs(type(out)(out.gate_logit[:1].expand(len(every)), out.crop_logits[:1].expand(len(every), -1),
                                          None), every))
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)  # a proper distribution over all choices


def test_crop_sets_are_plackett_luce_samples_and_their_log_probs_a_distribution():
    from cropper.policy import PolicyOutput

    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]])
    out = PolicyOutput(torch.tensor([1.5]), logits, None)
    # Every ordered pair of distinct crops, plus "no crop": the probabilities sum to one.
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j] + [(NO_CROP, NO_CROP)]
    every = torch.tensor(pairs)
    many = PolicyOutput(out.gate_logit.expand(len(pairs)), logits.expand(len(pairs), -1), None)
    assert torch.exp(log_probs(many, every)).sum().item() == pytest.approx(1.0, abs=1e-5)
    # The first of two picks follows the softmax; the second never repeats it.
    sets = sample_choices(out, 4000, torch.Generator().manual_seed(0), crops=2)[0]
    cropped = sets[sets[:, 0] != NO_CROP]
    assert len(cropped) / len(sets) == pytest.approx(torch.sigmoid(torch.tensor(1.5)).item(), abs=0.03)
    assert (cropped[:, 0] != cropped[:, 1]).all() and ((sets == NO_CROP).sum(1) % 2 == 0).all()
    first = torch.bincount(cropped[:, 0], minlength=4).float() / len(cropped)
    assert torch.allclose(first, torch.softmax(logits[0], 0), atol=0.03)
    # P(second = j | first = 0) = softmax over the rest.
    after0 = cropped[cropped[:, 0] == 0][:, 1]
    rest = torch.softmax(logits[0, 1:], 0)
    assert torch.allclose(torch.bincount(after0, minlength=4)[1:].float() / len(after0), rest, atol=0.04)


def test_grpo_on_crop_sets_asks_the_target_about_the_whole_set(dataset, tmp_path):
    images, items = dataset
    policy = tiny_policy(seed=3)
    store = ImageStore(policy, images.__getitem__)
    examples = make_examples(items, store.candidates)
    rollout = BackendRollout(ZoomWrapper("reader", strategy="policy", global_side=200), None,
                             images.__getitem__, cache_path=tmp_path / "answers.jsonl")
    before = copy.deepcopy(policy.state_dict())
    log = []
    train_grpo(policy, frozen_copy(policy), examples, store, rollout,
               GRPOConfig(steps=2, batch_size=2, group_size=3, crops=2, lr=1e-3), log=log.append, progress=False)
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())
    sets = [(key, done) for key, done in rollout._cache.items() if key[1] != NO_CROP]
    assert sets and all(isinstance(key[1], tuple) and len(key[1]) == 2 and done.n_crops == 2 for key, done in sets)
    # The set's answer is cached under the set, and the file brings it back as the same key.
    again = BackendRollout(rollout.wrapper, None, images.__getitem__, tmp_path / "answers.jsonl")
    assert again._cache.keys() == rollout._cache.keys()


def test_a_grpo_update_starts_from_the_sampling_policy(dataset):
    """The update's first ratio is exactly 1: with lr 0 the KL to the reference stays ~0 and batch norm
    statistics do not move (in train mode they would normalize by the batch and drift)."""
    from training.rewards import CropCompletion

    images, items = dataset
    policy = tiny_policy(seed=4)
    store = ImageStore(policy, images.__getitem__)
    examples = make_examples(items, store.candidates)
    norms = {k: v.clone() for k, v in policy.state_dict().items() if "running" in k}
    assert norms

    def rollout(example, choice):  # a stand-in target: right only without a crop
        return CropCompletion(example.answers[0] if choice == NO_CROP else "?", 0 if choice == NO_CROP else 50,
                              1000, 0 if choice == NO_CROP else 1)

    log = []
    train_grpo(policy, frozen_copy(policy), examples, store, rollout,
               GRPOConfig(steps=2, batch_size=4, group_size=4, lr=0.0), log=log.append, progress=False)
    assert all(r["kl"] < 1e-6 for r in log)
    assert all(torch.equal(norms[k], policy.state_dict()[k]) for k in norms)


def test_sft_then_grpo_change_the_policy_and_learn(dataset, tmp_path):
    images, items = dataset
    policy = tiny_policy()
    store = ImageStore(policy, images.__getitem__)
    examples = make_examples(items, store.candidates)
    # Each image brings its own candidates (the sign found in it) after the fixed ones, and the SFT target
    # puts weight on a found one that holds the sign.
    fixed = len(policy.candidate_boxes)
    assert all(len(e.candidates) > fixed and e.crop_target[fixed:].sum() > 0 for e in examples)
    before = copy.deepcopy(policy.state_dict())
    sft_log = []
    train_sft(policy, examples, store, SFTConfig(epochs=25, batch_size=4, lr=3e-3), log=sft_log.append, progress=False)
    assert sft_log[-1]["crop_loss"] < sft_log[0]["crop_loss"]
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())

    # The reader with a 200-px global view cannot read the 22-px text; a quadrant crop can.
    rollout = BackendRollout(ZoomWrapper("reader", strategy="policy", global_side=200), None,
                             images.__getitem__, cache_path=tmp_path / "answers.jsonl")
    reference = frozen_copy(policy)
    after_sft = copy.deepcopy(policy.state_dict())
    grpo_log = []
    train_grpo(policy, reference, examples, store, rollout,
               GRPOConfig(steps=4, batch_size=4, group_size=4, lr=1e-3), log=grpo_log.append, progress=False)
    assert len(grpo_log) == 4 and all("reward" in r and "crop_cost" in r for r in grpo_log)
    assert any(not torch.equal(after_sft[k], v) for k, v in policy.state_dict().items())
    assert max(r["accuracy"] for r in grpo_log) > 0  # some sampled crops let the reader answer
    # Answers are cached: a second rollout of a seen choice asks nothing new, and the file survives.
    calls = rollout.calls
    seen = next(iter(rollout._cache))
    rollout(next(e for e in examples if e.item_id == seen[0]), seen[1])
    assert rollout.calls == calls
    again = BackendRollout(rollout.wrapper, None, images.__getitem__, tmp_path / "answers.jsonl")
    assert len(again._cache) == len(rollout._cache)
