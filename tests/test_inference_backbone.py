"""The batch-norm-folded inference copy of the policy's backbone: same features, kept in step, safe fallback."""

from __future__ import annotations

import timm
import torch
from torch import nn

from cropper.inference_backbone import InferenceBackbone, fold_batchnorm
from tests.test_policy import _one_thread, make_image, tiny_policy  # noqa: F401  (autouse: torch on one thread)


def _randomize_norms(module: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine terms far from the identity, so that folding them is a real test."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.2)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


def test_folding_keeps_the_features_and_removes_every_norm():
    torch.manual_seed(0)
    backbone = timm.create_model("test_efficientnet", features_only=True, out_indices=(-2, -1)).eval()
    _randomize_norms(backbone)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = backbone(x)
        folded = fold_batchnorm(backbone)
        got = backbone(x)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert folded > 5 and norms == 0
    for w, g in zip(want, got, strict=True):
        assert torch.allclose(w, g, rtol=1e-4, atol=1e-4 * w.abs().max().item())


def test_inference_uses_the_folded_copy_and_follows_weight_changes():
    policy = tiny_policy(seed=1)
    _randomize_norms(policy.backbone)
    policy.eval()
    image, question = make_image(3), "What is written on the green sign?"
    x = policy.preprocess(image)[None]
    q = policy.encode_questions([question])

    def eager_scores():
        with torch.enable_grad():  # grad mode: the eager backbone
            return policy(x, q).crop_logits.detach()

    with torch.no_grad():
        fast = policy(x, q).crop_logits
    assert policy._inference_backbone._fast is not None  # the folded copy served
    assert torch.allclose(fast, eager_scores(), atol=1e-4)

    # An optimizer step changes the weights in place: the next inference must see the new ones.
    optimizer = torch.optim.SGD(policy.backbone.parameters(), lr=0.5)
    policy.train()
    policy(x, q).crop_logits.sum().backward()
    optimizer.step()
    policy.eval()
    with torch.no_grad():
        after = policy(x, q).crop_logits
    assert not torch.allclose(after, fast, atol=1e-3)
    assert torch.allclose(after, eager_scores(), atol=1e-4)

    # load_state_dict (copy_ in place) too.
    other = tiny_policy(seed=2)
    policy.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.allclose(policy(x, q).crop_logits, eager_scores(), atol=1e-4)


class NormFirst(nn.Module):
    """A conv and a norm declared in that order but run the other way round: folding would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_a_backbone_whose_norms_cannot_be_folded_stays_eager():
    module = NormFirst().eval()
    _randomize_norms(module)
    serve = InferenceBackbone()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        out = serve(module, x)
        assert serve._fast is None  # the check caught the wrong fold
        assert torch.equal(out, module(x))
