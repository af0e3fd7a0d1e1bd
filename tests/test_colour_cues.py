"""ColourCues: the fixed colour-name and stand-out maps a policy may see; the box filter they use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from backends.reader.colours import PALETTE, name_pixels
from cropper.policy import CropPolicy, PolicyConfig
from cropper.policy_heads import ColourCues, box_mean


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalized(image: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255
    return ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])[None]


@pytest.mark.parametrize("radius", [0, 1, 3, 7, 40])
def test_box_mean_is_the_border_clipped_window_mean(radius):
    x = torch.rand(2, 3, 23, 31, generator=torch.Generator().manual_seed(radius))
    k = 2 * radius + 1
    if k <= min(x.shape[-2:]) * 2:
        expected = F.avg_pool2d(x, k, stride=1, padding=radius, count_include_pad=False)
    else:  # a window wider than the image: every pixel sees the whole image
        expected = x.mean((-2, -1), keepdim=True).expand_as(x)
    assert torch.allclose(box_mean(x, radius), expected, atol=1e-5)


def test_named_maps_follow_the_readers_colour_names_and_a_sign_stands_out():
    names = list(PALETTE)
    # Every kind of colour: each pixel's map is the reader's name for it.
    rng = np.random.default_rng(0)
    random_image = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    cues = ColourCues(MEAN, STD, stride=1)(normalized(random_image))[0]
    assert cues.shape == (2 * len(names) + 1, 40, 50)
    expected = name_pixels(np.asarray(random_image))
    for i, name in enumerate(names):
        assert torch.equal(cues[i].bool(), torch.from_numpy(expected == name)), name
    # A small green sign on slightly noisy gray ground stands out; the ground does not.
    image = Image.new("RGB", (64, 48), (128, 128, 128))
    ImageDraw.Draw(image).rectangle((20, 20, 29, 25), fill=PALETTE["green"])
    noisy = np.asarray(image).astype(int) + rng.integers(-8, 8, (48, 64, 3))
    cues = ColourCues(MEAN, STD, stride=1)(normalized(Image.fromarray(noisy.clip(0, 255).astype(np.uint8))))[0]
    salient = cues[-1]
    assert salient[21:25, 21:29].mean() > 0.9
    assert salient[:, 45:].mean() == 0
    green = names.index("green")
    assert cues[green, 21:25, 21:29].mean() > 0.9
    assert torch.equal(cues[len(names) + green], cues[green] * salient)


def test_colour_cues_need_the_fine_map_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="fine_dim"):
        PolicyConfig(colour_cues=True, fine_dim=0)
    torch.manual_seed(0)
    policy = CropPolicy(backbone="test_efficientnet", image_size=96, dim=32, hidden=64, encoder="hash",
                        colour_cues=True).eval()
    policy.save_pretrained(tmp_path / "p")
    loaded = CropPolicy.from_pretrained(tmp_path / "p")
    assert loaded.config.colour_cues and loaded.fine.cues is not None
    x, q = torch.randn(2, 3, 96, 96), torch.randn(2, 384)
    with torch.no_grad():
        assert torch.equal(policy(x, q).crop_logits, loaded(x, q).crop_logits)
