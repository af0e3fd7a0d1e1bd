"""The policy's image-specific candidates: signs and text zones found in the small square view."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from backends.reader.colours import PALETTE, name_codes, name_pixels
from cropper.geometry import Box
from cropper.proposals import colour_shares, find_proposals


def cluttered_view(signs: dict[str, tuple[int, int]], side: int = 320, seed: int = 0) -> np.ndarray:
    """A noisy olive-grey view with a small 16x7 sign of each colour at its (x, y), white strokes inside."""
    rng = np.random.default_rng(seed)
    base = np.clip(rng.normal((110, 118, 96), 12, (side, side, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    for colour, (x, y) in signs.items():
        draw.rectangle([x, y, x + 16, y + 7], fill=PALETTE[colour])
        for i in range(3):  # the letters: too small to read, enough to make the sign uneven inside
            draw.line([x + 3 + 4 * i, y + 2, x + 3 + 4 * i, y + 5], fill=(250, 250, 250))
    return np.asarray(image)


def test_every_small_sign_is_inside_some_proposal():
    signs = {"red": (30, 40), "green": (200, 60), "blue": (120, 200), "yellow": (260, 280), "purple": (50, 250)}
    view = cluttered_view(signs)
    boxes = [Box(*b) for b in find_proposals(view)]
    for colour, (x, y) in signs.items():
        sign = Box(x / 320, y / 320, (x + 17) / 320, (y + 8) / 320)
        holding = [b for b in boxes if b.coverage(sign) >= 0.9]
        assert holding, f"no proposal holds the {colour} sign"
        assert min(b.area for b in holding) < 0.05  # the sign and its surroundings, not a quadrant (0.25)


def test_text_lines_on_a_page_become_zones_and_a_blank_page_has_none():
    page = Image.new("RGB", (320, 320), (250, 250, 248))
    draw = ImageDraw.Draw(page)
    for row in range(4):  # four short "lines" of dark specks 12 px apart, like unreadable 2-px text
        for col in range(30):
            draw.point((40 + 3 * col, 50 + 12 * row), fill=(30, 30, 30))
    boxes = [Box(*b) for b in find_proposals(np.asarray(page))]
    for row in range(4):
        line = Box(40 / 320, (50 + 12 * row) / 320, 128 / 320, (51 + 12 * row) / 320)
        assert any(b.coverage(line) >= 0.9 and b.area < 0.05 for b in boxes), f"line {row} is in no zone"
    assert find_proposals(np.full((320, 320, 3), 250, np.uint8)) == []


def test_proposals_are_capped_and_reject_bad_views():
    view = cluttered_view({c: (10 + 30 * i, 10 + 30 * i) for i, c in enumerate(["red", "green", "blue", "orange"])})
    assert len(find_proposals(view, max_proposals=2)) == 2
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        find_proposals(view.astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        find_proposals(view[..., 0])


def test_name_codes_agree_with_the_readers_colour_names():
    rng = np.random.default_rng(1)
    view = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    names = list(PALETTE)
    codes = name_codes(view)
    assert codes.shape == (40, 50)
    assert all(names[c] == n for c, n in zip(codes.ravel(), name_pixels(view).ravel(), strict=True))


def test_colour_shares_count_each_block():
    view = np.zeros((8, 8, 3), np.uint8)
    view[:, :] = PALETTE["white"]
    view[0:2, 0:4] = PALETTE["red"]  # half of the top-left 4x4 block
    shares = colour_shares(view, cell=4)
    names = list(PALETTE)
    assert shares.shape == (len(PALETTE), 2, 2)
    assert np.allclose(shares.sum(0), 1.0)
    assert shares[names.index("red"), 0, 0] == pytest.approx(0.5)
    assert shares[names.index("white"), 1, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("side", [320, 600])
def test_component_stats_match_opencvs_default_labelling(side):
    """The finder's faster labelling gives OpenCV's default table: same parts, same order, same stats.

    600 px takes the 32-bit path (too many possible parts for 16-bit labels)."""
    import cv2

    from cropper.proposals import _component_stats

    rng = np.random.default_rng(side)
    for density in (0.05, 0.5, 0.9):
        mask = (rng.random((side, side)) < density).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, 2), np.uint8)) if density > 0.5 else mask
        want = cv2.connectedComponentsWithStats(mask, connectivity=8)[2]
        got = _component_stats(mask)
        assert got.shape == want.shape and len(want) > 1
        assert np.array_equal(got, want)


@pytest.mark.parametrize("peel", [(1, 3), (2, 2)])
def test_components_found_in_a_masks_bounding_box_equal_those_of_the_whole_view(peel):
    """The finder filters and labels only a mask's bounding box (plus a margin): the table must be the
    one the whole view gives, in the same order, wherever the mask lies: a corner, an edge, odd offsets."""
    import cv2

    from cropper.proposals import _closed_components, _component_stats

    rng = np.random.default_rng(7)
    side = 96
    placements = [(0, 0), (0, 61), (61, 0), (33, 47), (70, 70), (5, 88), (1, 1)]
    for y0, x0 in placements:
        for density in (0.1, 0.5):
            mask = np.zeros((side, side), np.uint8)
            h, w = min(26, side - y0), min(26, side - x0)
            mask[y0 : y0 + h, x0 : x0 + w] = rng.random((h, w)) < density
            full = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
            full = cv2.morphologyEx(full, cv2.MORPH_OPEN, np.ones(peel, np.uint8))
            want = _component_stats(full)[1:]
            got = _closed_components(mask, peel)
            assert np.array_equal(got, want), (y0, x0, density)
    assert _closed_components(np.zeros((side, side), np.uint8), peel).shape == (0, 5)


def test_name_codes_of_a_strided_or_non_uint8_array_equal_those_of_a_contiguous_copy():
    rng = np.random.default_rng(3)
    view = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for arr in (view[3:20, 5:31], view.transpose(1, 0, 2), view.astype(np.int64)):
        assert np.array_equal(name_codes(arr), name_codes(np.ascontiguousarray(arr, dtype=np.uint8)))
    assert name_codes(view[:0]).shape == (0, 40)
