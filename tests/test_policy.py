"""CropPolicy: shapes, gate and proposals, training signal, lossless save/load, load errors, question encoders.

A tiny timm backbone (`test_efficientnet`, random init, 82k params) and the hashing question encoder keep
every test but the MiniLM one in the milliseconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cropper.geometry import AWARES9, Box
from cropper.policy import CropPolicy, PolicyConfig, PolicyLoadError, apply_deltas, candidate_set, encode_deltas
from cropper.question_cues import CUE_DIM
from cropper.text_encoder import EMBED_DIM, HashEncoder, shared_encoder
from cropper.tokens import QwenVLModel


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors run fastest on one thread, and a busy 2-core machine makes a second one spin for seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


QUESTIONS = ["What is written on the green sign?", "What is the total?", "Read the red tag.", "Which year?"]


def tiny_config(**overrides) -> PolicyConfig:
    base = dict(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash", refine=True)
    return PolicyConfig(**{**base, **overrides})


def tiny_policy(seed: int = 0, **overrides) -> CropPolicy:
    torch.manual_seed(seed)
    return CropPolicy(tiny_config(**overrides))


def make_image(seed: int = 0, size=(640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_candidate_set_holds_awares9_and_the_grids():
    cands = candidate_set("awares9+multiscale:3,4")
    assert len(cands) == 9 + 9 + 16
    for name, box in AWARES9.items():
        assert cands[name] == box
    assert PolicyConfig().candidates.keys() == cands.keys()
    # An exact duplicate is kept once; a name clash with another box gets the part as prefix.
    merged = candidate_set("grid:2+awares9+grid:3")
    assert len(merged) == 4 + 5 + 9 and "grid:3/r0c0" in merged
    with pytest.raises(ValueError):
        candidate_set("awares9+")


def test_overriding_the_crop_set_changes_the_candidates():
    policy = CropPolicy(tiny_config(), crop_set="awares9")
    assert policy.candidate_names == list(AWARES9) and policy.candidates.shape == (9, 4)


@pytest.mark.parametrize("fusion", ["film", "xattn"])
def test_forward_shapes(fusion):
    policy = tiny_policy(fusion=fusion)
    images = torch.stack([policy.preprocess(make_image(i)) for i in range(3)])
    assert images.shape == (3, 3, 96, 96)
    out = policy(images, policy.encode_questions(QUESTIONS[:3]))
    c = len(policy.candidate_names)
    assert out.gate_logit.shape == (3,) and out.crop_logits.shape == (3, c) and out.box_deltas.shape == (3, c, 4)
    assert out.box_deltas.abs().max() <= 1.0
    no_refine = tiny_policy(refine=False)
    assert no_refine(images, no_refine.encode_questions(QUESTIONS[:3])).box_deltas is None


def test_preprocess_large_small_and_non_rgb_images():
    policy = tiny_policy()
    for img in (make_image(size=(1200, 300)), make_image(size=(50, 70)), make_image().convert("L")):
        x = policy.preprocess(img)
        assert x.shape == (3, 96, 96) and x.dtype == torch.float32 and torch.isfinite(x).all()


def _force_gate(policy: CropPolicy, bias: float) -> None:
    with torch.no_grad():
        policy.heads.gate[-1].weight.zero_()
        policy.heads.gate[-1].bias.fill_(bias)


def test_propose_empty_when_the_gate_is_low():
    policy = tiny_policy()
    _force_gate(policy, -30.0)
    assert policy.propose(make_image(), QUESTIONS[0]) == []
    assert policy.propose(make_image(), QUESTIONS[0], k=3) == []
    assert policy.propose(make_image(), QUESTIONS[0], threshold=0.0) != []  # a caller's threshold wins


def test_propose_returns_k_distinct_boxes_inside_the_image():
    policy = tiny_policy()
    _force_gate(policy, 30.0)
    with torch.no_grad():  # non-zero refinement, so the clamping path runs
        torch.nn.init.normal_(policy.heads.deltas.weight, std=1.0)
    image = make_image()
    assert len(policy.propose(image, QUESTIONS[0])) == 1  # config.k
    boxes = policy.propose(image, QUESTIONS[0], k=3)
    assert len(boxes) == 3 and all(isinstance(b, Box) for b in boxes)
    for b in boxes:
        assert 0.0 <= b.x1 < b.x2 <= 1.0 and 0.0 <= b.y1 < b.y2 <= 1.0
    for i, a in enumerate(boxes):
        assert all(a.iou(b) <= policy.config.nms_iou for b in boxes[i + 1:])
    assert policy.propose(image, QUESTIONS[0], k=0) == []
    policy.train()
    decision = policy.decide(image, QUESTIONS[0])
    assert decision.scores == sorted(decision.scores, reverse=True) and decision.gate > 0.99
    assert policy.training  # decide() runs in eval mode and restores the mode it found


def test_budget_drops_crops_that_do_not_fit():
    policy = tiny_policy()
    _force_gate(policy, 30.0)
    image = make_image(size=(2800, 2100))
    qwen = QwenVLModel.qwen25()
    assert len(policy.propose(image, QUESTIONS[0], k=3, budget=10**9, token_model=qwen)) == 3
    assert len(policy.propose(image, QUESTIONS[0], k=3, budget=10, token_model=qwen)) == 1  # best crop stays
    assert len(policy.propose(image, QUESTIONS[0], k=3, budget=10)) == 3  # no token model: budget not applied


def test_deltas_encode_then_apply_reaches_the_target():
    boxes = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.0, 0.5, 0.5, 1.0]])
    targets = torch.tensor([[0.3, 0.2, 0.6, 0.7], [0.05, 0.55, 0.35, 0.9]])
    deltas = encode_deltas(boxes, targets, max_shift=0.25, max_scale=2.0)
    assert deltas.abs().max() <= 1.0
    assert torch.allclose(apply_deltas(boxes, deltas, 0.25, 2.0), targets, atol=1e-5)


def _batch(policy: CropPolicy):
    images = torch.stack([policy.preprocess(make_image(i)) for i in range(4)])
    q = policy.encode_questions(QUESTIONS)
    gate_target = torch.tensor([1.0, 1.0, 0.0, 1.0])
    crop_target = torch.tensor([0, 5, 3, 20])
    delta_target = torch.full((4, 4), 0.3)
    return images, q, gate_target, crop_target, delta_target


def _loss(policy, images, q, gate_target, crop_target, delta_target):
    out = policy(images, q)
    chosen = out.box_deltas[torch.arange(4), crop_target]
    return (torch.nn.functional.binary_cross_entropy_with_logits(out.gate_logit, gate_target)
            + torch.nn.functional.cross_entropy(out.crop_logits, crop_target)
            + torch.nn.functional.smooth_l1_loss(chosen, delta_target))


@pytest.mark.parametrize("fusion", ["film", "xattn"])
def test_gradients_reach_every_part_and_training_lowers_the_loss(fusion):
    policy = tiny_policy(fusion=fusion).train()
    batch = _batch(policy)
    loss = _loss(policy, *batch)
    loss.backward()
    for part in ("backbone", "neck", "fusion", "heads"):
        grads = [p.grad for p in getattr(policy, part).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), f"no gradient reaches {part}"
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in policy.parameters())
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = loss.item()
    for _ in range(12):
        opt.zero_grad()
        loss = _loss(policy, *batch)
        loss.backward()
        opt.step()
    assert _loss(policy, *batch).item() < 0.7 * first


def _trained_policy(fusion="film") -> CropPolicy:
    policy = tiny_policy(seed=1, fusion=fusion).train()
    batch = _batch(policy)
    opt = torch.optim.SGD(policy.parameters(), lr=0.05)
    for _ in range(2):  # moves the weights and the BatchNorm running statistics off their initial values
        opt.zero_grad()
        _loss(policy, *batch).backward()
        opt.step()
    return policy.eval()


@pytest.mark.parametrize("fusion", ["film", "xattn"])
def test_save_and_load_round_trip_bit_exactly(tmp_path, fusion):
    policy = _trained_policy(fusion)
    policy.save_pretrained(tmp_path / "p")
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert config["backbone"] == "test_efficientnet" and config["encoder"] == "hash"
    assert len(config["candidates"]) == len(policy.candidate_names)
    assert not any(k.startswith("encoder") for k in policy.state_dict())  # the text encoder is not saved

    loaded = CropPolicy.from_pretrained(tmp_path / "p")
    assert loaded.training is False and loaded.config == policy.config
    a, b = policy.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    images, q, *_ = _batch(policy)
    with torch.no_grad():
        out_a, out_b = policy(images, q), loaded(images, q)
    assert torch.equal(out_a.gate_logit, out_b.gate_logit) and torch.equal(out_a.crop_logits, out_b.crop_logits)
    assert torch.equal(out_a.box_deltas, out_b.box_deltas)
    image = make_image(7)
    assert policy.propose(image, QUESTIONS[0], k=2, threshold=0) == loaded.propose(image, QUESTIONS[0], k=2, threshold=0)


def test_loading_a_damaged_directory_fails_clearly(tmp_path):
    policy = tiny_policy()
    good = policy.save_pretrained(tmp_path / "good")

    def copy(name):
        d = tmp_path / name
        d.mkdir()
        for f in good.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        return d

    missing = copy("missing")
    (missing / "model.safetensors").unlink()
    with pytest.raises(PolicyLoadError, match="model.safetensors: missing"):
        CropPolicy.from_pretrained(missing)
    with pytest.raises(PolicyLoadError, match="config.json: missing"):
        CropPolicy.from_pretrained(tmp_path / "nowhere")

    tampered = copy("tampered")
    data = bytearray((tampered / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (tampered / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(PolicyLoadError, match="sha256"):
        CropPolicy.from_pretrained(tampered)

    truncated = copy("truncated")
    (truncated / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(PolicyLoadError, match="not a readable safetensors"):
        CropPolicy.from_pretrained(truncated, verify=False)

    bad_json = copy("bad_json")
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(PolicyLoadError, match="not valid JSON"):
        CropPolicy.from_pretrained(bad_json)

    mismatch = copy("mismatch")
    cfg = json.loads((mismatch / "config.json").read_text())
    cfg["dim"] = 16
    (mismatch / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PolicyLoadError, match="do not fit"):
        CropPolicy.from_pretrained(mismatch)


def test_default_without_bundled_weights_says_how_to_train(tmp_path, monkeypatch):
    import cropper.policy as policy_module

    monkeypatch.setattr(policy_module, "DEFAULT_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="cropper train"):
        CropPolicy.default()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    policy = tiny_policy().to("cuda")
    _force_gate(policy, 30.0)
    assert policy.device.type == "cuda" and len(policy.propose(make_image(), QUESTIONS[0], k=2)) == 2


def test_hash_encoder_is_deterministic_and_normalized():
    a, b = HashEncoder(), HashEncoder()
    x, y = a.encode(QUESTIONS), b.encode(QUESTIONS)
    assert x.shape == (4, EMBED_DIM) and torch.equal(x, y)
    assert torch.allclose(x.norm(dim=-1), torch.ones(4))
    assert a.encode_one(QUESTIONS[0]) is a.encode_one(QUESTIONS[0])
    small = HashEncoder(cache_size=2)
    for q in QUESTIONS:
        small.encode_one(q)
    assert len(small._cache) == 2  # least recently used questions leave first


def test_an_encoder_given_by_name_is_the_config_field():
    torch.manual_seed(0)
    policy = CropPolicy(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash")
    assert policy.config.encoder == "hash" and isinstance(policy.encoder, HashEncoder)
    assert policy.encode_questions(QUESTIONS).shape == (4, policy.question_dim) == (4, EMBED_DIM + CUE_DIM)


def test_minilm_encoder_ranks_paraphrases_and_caches():
    encoder = shared_encoder("minilm")
    assert shared_encoder("minilm") is encoder  # one instance per process
    emb = encoder.encode(["What is written on the green sign?", "What does the green sign say?",
                          "How many people are sitting on the bench?"])
    assert emb.shape == (3, EMBED_DIM) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    assert encoder.encode_one("What is the total?") is encoder.encode_one("What is the total?")
    assert not any(p.requires_grad for p in encoder.model.parameters()) and not encoder.model.training


def _decision(scores: list[float], boxes: list[list[float]]):
    from cropper.policy import Decision

    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return Decision(gate=1.0, names=[str(i) for i in order], scores=[scores[i] for i in order],
                    boxes=[Box.from_list(boxes[i]) for i in order])


def test_select_crops_adapts_the_number_of_crops_to_the_score_mass():
    from cropper.policy import select_crops

    quarters = [[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1], [.5, .5, 1, 1]]
    # Confident: one candidate holds ~98% of the softmax -> one crop is enough for mass 0.8.
    confident = _decision([6.0, 2.0, 1.0, 0.0], quarters)
    assert [list(b) for b in select_crops(confident, k=4, nms_iou=0.5, mass=0.8)] == [[0, 0, .5, .5]]
    # Unsure between three quarters (~1/3 each): three crops are needed to hold 80%, never the fourth.
    unsure = _decision([3.0, 3.0, 3.0, -3.0], quarters)
    assert len(select_crops(unsure, k=4, nms_iou=0.5, mass=0.8)) == 3
    # k caps the count; without mass exactly k crops come back.
    assert len(select_crops(unsure, k=2, nms_iou=0.5, mass=0.8)) == 2
    assert len(select_crops(confident, k=3, nms_iou=0.5, mass=None)) == 3
    # A candidate inside a chosen crop counts as held: the small box's mass is covered by the quarter.
    nested = _decision([2.0, 2.0, -5.0, -5.0], [[0, 0, .5, .5], [.1, .1, .2, .2], [.5, .5, 1, 1], [.5, 0, 1, .5]])
    assert len(select_crops(nested, k=4, nms_iou=0.5, mass=0.9)) == 1


def sign_image(colour: str = "green", at=(300, 200), size=(1600, 1200)) -> Image.Image:
    """A noisy scene with one small sign (80x30 px) of `colour`."""
    from PIL import ImageDraw

    from backends.reader.colours import PALETTE

    rng = np.random.default_rng(3)
    image = Image.fromarray(np.clip(rng.normal((110, 118, 96), 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    x, y = at
    draw.rectangle([x, y, x + 80, y + 30], fill=PALETTE[colour])
    for i in range(6):
        draw.line([x + 8 + 11 * i, y + 8, x + 8 + 11 * i, y + 22], fill=(250, 250, 250), width=2)
    return image


def test_boxes_found_in_the_image_join_the_fixed_candidates():
    policy = tiny_policy(image_size=160)
    fixed = len(policy.candidate_boxes)
    image = sign_image()
    prepared = policy.prepare(image)
    sign = Box.from_pixels(300, 200, 381, 231, 1600, 1200)
    assert prepared.fixed == fixed and prepared.boxes[:fixed] == policy.candidate_boxes
    found = prepared.boxes[fixed:]
    assert any(b.coverage(sign) >= 0.9 and b.area < 0.05 for b in found)
    decision = policy.decide(image, QUESTIONS[0])
    assert len(decision.boxes) == len(prepared.boxes)
    assert any(n.startswith("found_") for n in decision.names)
    # proposals=0: the fixed candidates only.
    assert len(tiny_policy(image_size=160, proposals=0).decide(image, QUESTIONS[0]).boxes) == fixed


def test_a_padded_batch_scores_each_image_as_it_would_alone():
    policy = tiny_policy(image_size=160).eval()
    images = [sign_image(), make_image(size=(800, 600))]
    prepared = [policy.prepare(im) for im in images]
    assert len(prepared[0].boxes) != len(prepared[1].boxes)  # so the batch really pads
    q = policy.encode_questions(QUESTIONS[:2])
    with torch.no_grad():
        batch = policy(question_emb=q, **policy.collate(prepared))
        for i, p in enumerate(prepared):
            alone = policy(question_emb=q[i : i + 1], **policy.collate([p]))
            n = len(p.boxes)
            assert torch.allclose(batch.crop_logits[i, :n], alone.crop_logits[0], atol=1e-4)
            assert torch.allclose(batch.gate_logit[i], alone.gate_logit[0], atol=1e-4)
            assert (batch.crop_logits[i, n:] <= -1e4 + 1).all()  # padding can never be chosen or sampled


def test_the_colour_map_is_the_same_from_the_view_or_from_the_tensor():
    policy = tiny_policy(image_size=160)
    inputs = policy.collate([policy.prepare(sign_image("red"))])
    assert torch.allclose(inputs["colours"], policy.colour_map(inputs["images"]))


def test_select_crops_keeps_the_total_area_within_max_area():
    from cropper.policy import select_crops

    boxes = [[0, 0, .5, .5], [.5, 0, .6, .1], [.5, .5, 1, 1], [.7, .2, .8, .3]]
    decision = _decision([4.0, 3.0, 2.0, 1.0], boxes)
    chosen = select_crops(decision, k=4, nms_iou=0.5, max_area=0.3)
    # The quarter (0.25) and the two small boxes fit; the second quarter would pass 0.3.
    assert [list(b) for b in chosen] == [[0, 0, .5, .5], [.5, 0, .6, .1], [.7, .2, .8, .3]]
    # The first crop is kept even when it alone is larger; then nothing else fits.
    assert [list(b) for b in select_crops(decision, k=4, nms_iou=0.5, max_area=0.1)] == [[0, 0, .5, .5]]


def test_a_policy_saved_in_the_old_format_is_refused_with_a_reason(tmp_path):
    good = tiny_policy().save_pretrained(tmp_path / "p")
    cfg = json.loads((good / "config.json").read_text())
    cfg["format"] = "cropper-policy/1"
    (good / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PolicyLoadError, match="older cropper.*retrain"):
        CropPolicy.from_pretrained(good)
