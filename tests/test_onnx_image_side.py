"""The policy's image half served by ONNX Runtime: same maps as PyTorch, only once warm, never stale, safe fallback;
and the rest of the query's two-core schedule (split view, RoI helper, one torch thread) changes no result."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import cropper.policy_heads as policy_heads
from cropper.onnx_image_side import WARM_AFTER
from tests.test_inference_backbone import _randomize_norms
from tests.test_policy import _one_thread, make_image, sign_image, tiny_policy  # noqa: F401  (autouse fixture)

QUESTION = "What is written on the green sign?"


def _inputs(policy, seed=3):
    x = policy.preprocess(make_image(seed))[None]
    return x, policy.encode_questions([QUESTION])


def _torch_maps(policy, x, q):
    with torch.enable_grad():  # grad mode: always the eager PyTorch modules
        fmap, fine = policy._image_maps(x, q)
    return fmap.detach(), None if fine is None else fine.detach()


def test_the_graph_serves_once_warm_with_the_maps_of_pytorch():
    policy = tiny_policy(seed=1, fine_dim=8).eval()
    _randomize_norms(policy.backbone)
    x, q = _inputs(policy)
    side = policy._onnx_image_side
    with torch.no_grad():
        for _ in range(WARM_AFTER - 1):
            policy._image_maps(x, q)
            assert not side.serving  # cold: PyTorch serves, nothing exported yet
        fmap, fine = policy._image_maps(x, q)
    assert side.serving
    want_fmap, want_fine = _torch_maps(policy, x, q)
    assert torch.allclose(fmap, want_fmap, rtol=1e-4, atol=1e-4 * want_fmap.abs().max().item())
    assert fine is not None and torch.allclose(fine, want_fine, rtol=1e-4, atol=1e-4 * want_fine.abs().max().item())
    # A batch (another size of the dynamic batch axis) is served by the same graph, on torch's threads.
    xb, qb = torch.cat([x, _inputs(policy, seed=4)[0]]), q.expand(2, -1).contiguous()
    with torch.no_grad():
        batch_fmap, _ = policy._image_maps(xb, qb)
    assert torch.allclose(batch_fmap, _torch_maps(policy, xb, qb)[0], rtol=1e-4, atol=1e-4 * want_fmap.abs().max().item())


def test_a_weight_change_retires_the_graph():
    policy = tiny_policy(seed=2).eval()
    x, q = _inputs(policy)
    with torch.no_grad():
        for _ in range(WARM_AFTER):
            policy._image_maps(x, q)
    assert policy._onnx_image_side.serving
    with torch.no_grad():
        policy.neck.smooth[0].weight.mul_(-1.5)  # an in-place update, as an optimizer step makes
        fmap, _ = policy._image_maps(x, q)
    assert not policy._onnx_image_side.serving
    assert torch.allclose(fmap, _torch_maps(policy, x, q)[0], atol=1e-5)


def test_no_graph_when_turned_off_or_when_the_export_fails(monkeypatch):
    monkeypatch.setenv("CROPPER_ONNX", "0")
    policy = tiny_policy(seed=3).eval()
    x, q = _inputs(policy)
    with torch.no_grad():
        for _ in range(WARM_AFTER + 1):
            policy._image_maps(x, q)
    assert not policy._onnx_image_side.serving

    monkeypatch.delenv("CROPPER_ONNX")
    calls = []

    def broken_export(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("an op the exporter does not know")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    policy = tiny_policy(seed=3).eval()
    with torch.no_grad():
        for _ in range(WARM_AFTER + 3):
            fmap, _ = policy._image_maps(x, q)
    assert calls == [1]  # tried once for these weights, not on every call after
    assert not policy._onnx_image_side.serving
    assert torch.allclose(fmap, _torch_maps(policy, x, q)[0], atol=1e-5)


def test_decisions_match_pytorch_and_torch_threads_are_restored(monkeypatch):
    policy = tiny_policy(seed=4).eval()
    image = sign_image("green")
    torch.set_num_threads(2)  # the fixture restores the caller's setting afterwards
    decisions = [policy.decide(image, QUESTION) for _ in range(WARM_AFTER + 1)]
    assert torch.get_num_threads() == 2  # propose runs on one torch thread and gives the setting back
    assert policy._onnx_image_side.serving
    monkeypatch.setenv("CROPPER_ONNX", "0")
    eager = tiny_policy(seed=4).eval().decide(image, QUESTION)
    served = decisions[-1]
    assert served.names == eager.names
    assert np.allclose(served.scores, eager.scores, atol=1e-4) and abs(served.gate - eager.gate) < 1e-5


def test_a_weight_change_between_decisions_retires_the_graph(monkeypatch):
    """`decide` takes the weights' key on the finder's thread while it makes the view: a change made
    between two decisions must still retire the graph, and the next decision is PyTorch's."""
    policy = tiny_policy(seed=5).eval()
    image = sign_image("green")
    for _ in range(WARM_AFTER):
        policy.decide(image, QUESTION)
    assert policy._onnx_image_side.serving
    with torch.no_grad():
        policy.fusion.mix[0].weight.mul_(-2.0)
    changed = policy.decide(image, QUESTION)
    assert not policy._onnx_image_side.serving
    monkeypatch.setenv("CROPPER_ONNX", "0")
    eager = policy.decide(image, QUESTION)
    assert changed.names == eager.names and changed.scores == eager.scores and changed.gate == eager.gate


def test_a_policy_can_be_copied_and_pickled_after_serving():
    policy = tiny_policy(seed=5).eval()
    image = make_image(1)
    for _ in range(WARM_AFTER):
        policy.decide(image, QUESTION)
    twin = copy.deepcopy(policy)
    thawed = pickle.loads(pickle.dumps(policy))
    assert not twin._onnx_image_side.serving  # a copy starts cold and exports its own weights
    want = policy.decide(image, QUESTION)
    for other in (twin, thawed):
        got = other.decide(image, QUESTION)
        assert got.names == want.names and np.allclose(got.scores, want.scores, atol=1e-4)


@pytest.mark.parametrize("size", [(3124, 2293), (4096, 3072), (2560, 3840), (977, 3333)])
@pytest.mark.parametrize("side", [96, 97])
def test_the_view_averaged_in_two_bands_is_the_whole_supersampled_view(size, side):
    rng = np.random.default_rng(size[0])
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    policy = tiny_policy(image_size=side)
    whole = np.asarray(image.resize((3 * side, 3 * side), Image.Resampling.NEAREST).reduce(3))
    assert np.array_equal(policy.view(image), whole)


def test_a_lazily_opened_file_gives_the_view_of_the_loaded_image(tmp_path):
    path = tmp_path / "scene.png"
    sign_image("red", size=(1600, 1200)).save(path)
    policy = tiny_policy(image_size=96)
    got = policy.view(Image.open(path))  # decoded on first use, on this thread
    with Image.open(path) as loaded:
        loaded.load()
        assert np.array_equal(got, policy.view(loaded))


def test_the_roi_helper_changes_no_score(monkeypatch):
    policy = tiny_policy(seed=6, fine_dim=8).eval()
    image = sign_image("green")
    with torch.no_grad():
        prepared = policy.prepare(image)
        inputs = policy.collate([prepared])
        q = policy.encode_questions([QUESTION])
        beside = policy(question_emb=q, **inputs)
        monkeypatch.setattr(policy_heads, "_beside", lambda fmap: False)
        alone = policy(question_emb=q, **inputs)
    assert torch.equal(beside.crop_logits, alone.crop_logits) and torch.equal(beside.gate_logit, alone.gate_logit)


def test_preprocess_is_the_normalized_view():
    policy = tiny_policy()
    view = policy.view(make_image(2))
    want = (torch.from_numpy(view).permute(2, 0, 1).float() / 255 - policy.mean[0]) / policy.std[0]
    assert torch.allclose(policy.preprocess(view), want, atol=1e-6)


def test_queries_from_several_threads_get_the_answers_of_one_thread():
    from concurrent.futures import ThreadPoolExecutor

    policy = tiny_policy(seed=7).eval()
    images = [sign_image(c) for c in ("green", "red", "blue")] + [make_image(s, size=(1200, 900)) for s in range(3)]
    questions = [QUESTION, "What does the red tag say?", "What is written on the blue sign?"] * 2
    want = [policy.decide(i, q) for i, q in zip(images, questions, strict=True)]  # warms the graph too
    assert policy._onnx_image_side.serving
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(policy.decide, images * 2, questions * 2))
    for w, g in zip(want * 2, got, strict=True):
        assert g.names == w.names and np.allclose(g.scores, w.scores, atol=1e-5) and g.gate == pytest.approx(w.gate)


def test_a_view_made_on_the_finders_own_thread_does_not_wait_on_itself():
    from cropper.policy import _finder_pool

    policy = tiny_policy(image_size=96)
    image = sign_image("green")
    got = _finder_pool().submit(policy.view, image).result(timeout=30)
    assert np.array_equal(got, policy.view(image))


def test_propose_stops_at_the_gate_before_scoring_any_crop(monkeypatch):
    policy = tiny_policy(seed=8).eval()
    image, question = sign_image("green"), QUESTION
    decision = policy.decide(image, question)
    scored = []
    real_forward = type(policy.heads).forward

    def counting_forward(self, *args, **kwargs):
        scored.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(policy.heads), "forward", counting_forward)
    # Just above the gate: nothing to crop, and no candidate was scored to find that out.
    assert policy.propose(image, question, threshold=decision.gate + 1e-6) == [] and scored == []
    # Just at it: the full decision, the same crops as selecting from `decide`'s ranking.
    from cropper.crop_selection import select_crops

    got = policy.propose(image, question, threshold=decision.gate)
    want = select_crops(decision, policy.config.k, policy.config.nms_iou, policy.config.mass, policy.config.max_area)
    assert scored and got == want and got


def test_the_gate_alone_is_the_gate_of_the_full_heads():
    policy = tiny_policy(seed=9, fine_dim=8).eval()
    with torch.no_grad():
        inputs = policy.collate([policy.prepare(sign_image("red"))])
        q = policy.encode_questions(["What does the red tag say?"])
        fmap, fine = policy._image_maps(inputs["images"], q)
        full = policy.heads(fmap, q, inputs["boxes"], inputs["proposed"], fine, inputs["colours"])[0]
        assert torch.equal(policy.heads.gate_logit(fmap, q, fine), full)
