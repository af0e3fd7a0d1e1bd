"""Normalized boxes and crop sets: hand-computed values, validation, and invariants (inside 0..1, tiling)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from cropper.geometry import AWARES9, FULL, Box, covered, crop_set, grid, multiscale, union_all


def approx_box(box: Box, expected: tuple[float, float, float, float], abs_tol: float = 1e-12) -> None:
    assert tuple(box) == pytest.approx(expected, abs=abs_tol)


def random_boxes(n: int, seed: int = 0) -> list[Box]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x1, x2 = sorted((rng.random(), rng.random()))
        y1, y2 = sorted((rng.random(), rng.random()))
        out.append(Box(x1, y1, x2, y2))
    return out


def inside_unit(box: Box) -> bool:
    return 0.0 <= box.x1 <= box.x2 <= 1.0 and 0.0 <= box.y1 <= box.y2 <= 1.0


# --- construction, iteration, validation -------------------------------------------------------------


def test_iteration_yields_four_floats_in_order():
    box = Box(0.1, 0.2, 0.3, 0.4)
    values = list(box)
    assert values == [0.1, 0.2, 0.3, 0.4]
    assert all(type(v) is float for v in values)
    x1, y1, x2, y2 = box
    assert (x1, y1, x2, y2) == (0.1, 0.2, 0.3, 0.4)


def test_from_list_yields_floats_even_from_ints_and_strings():
    box = Box.from_list([0, "0.25", 1, 0.5])
    assert list(box) == [0.0, 0.25, 1.0, 0.5]
    assert all(type(v) is float for v in box)


def test_derived_properties():
    box = Box(0.2, 0.1, 0.6, 0.4)
    assert box.width == pytest.approx(0.4)
    assert box.height == pytest.approx(0.3)
    assert box.area == pytest.approx(0.12)
    assert box.center == pytest.approx((0.4, 0.25))


@pytest.mark.parametrize(
    "coords",
    [
        (0.5, 0.0, 0.4, 1.0),  # x2 < x1
        (0.0, 0.6, 1.0, 0.5),  # y2 < y1
    ],
)
def test_inverted_box_is_rejected(coords):
    with pytest.raises(ValueError, match="x2 < x1"):
        Box(*coords)


@pytest.mark.parametrize(
    "coords",
    [
        (math.nan, 0.0, 1.0, 1.0),
        (0.0, math.nan, 1.0, 1.0),
        (0.0, 0.0, math.nan, 1.0),
        (0.0, 0.0, 1.0, math.nan),
        (0.0, 0.0, math.inf, 1.0),
        (-math.inf, 0.0, 1.0, 1.0),
        ("0", 0.0, 1.0, 1.0),
        (None, 0.0, 1.0, 1.0),
    ],
)
def test_non_finite_or_non_numeric_coordinates_are_rejected(coords):
    with pytest.raises(ValueError, match="finite"):
        Box(*coords)


def test_from_list_nan_is_rejected():
    with pytest.raises(ValueError):
        Box.from_list([0.1, float("nan"), 0.5, 0.5])


def test_zero_size_box_is_allowed():
    box = Box(0.5, 0.5, 0.5, 0.5)
    assert box.area == 0.0


def test_box_is_frozen():
    box = Box(0.0, 0.0, 1.0, 1.0)
    with pytest.raises(AttributeError):
        box.x1 = 0.5  # type: ignore[misc]


def test_from_list_orders_corners():
    approx_box(Box.from_list([0.8, 0.9, 0.2, 0.1]), (0.2, 0.1, 0.8, 0.9))


def test_from_list_clamps_to_unit_square():
    assert tuple(Box.from_list([-0.5, 0.2, 1.5, 0.4])) == (0.0, 0.2, 1.0, 0.4)
    assert tuple(Box.from_list([1.5, -2.0, -0.5, 3.0])) == (0.0, 0.0, 1.0, 1.0)
    # Entirely outside: collapses onto the nearest edge, still a valid box.
    assert tuple(Box.from_list([1.2, 1.3, 1.5, 1.6])) == (1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("values", [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5], []])
def test_from_list_needs_four_numbers(values):
    with pytest.raises(ValueError, match="4 numbers"):
        Box.from_list(values)


def test_from_pixels():
    approx_box(Box.from_pixels(50, 10, 150, 60, 200, 100), (0.25, 0.1, 0.75, 0.6))
    # Out-of-image pixel boxes clamp; reversed corners are ordered.
    approx_box(Box.from_pixels(250, 60, -10, 10, 200, 100), (0.0, 0.1, 1.0, 0.6))


def test_to_list_and_describe():
    box = Box(0.5, 0.0, 1.0, 0.5)
    assert box.describe() == "[0.500, 0.000, 1.000, 0.500]"
    assert Box(1 / 3, 0.0, 2 / 3, 1.0).to_list() == [0.3333, 0.0, 0.6667, 1.0]
    assert Box(1 / 3, 0.0, 2 / 3, 1.0).to_list(None) == [1 / 3, 0.0, 2 / 3, 1.0]


# --- pixel boxes -------------------------------------------------------------------------------------


def test_to_pixels_exact():
    assert Box(0.25, 0.1, 0.75, 0.6).to_pixels(200, 100) == (50, 10, 150, 60)
    assert FULL.to_pixels(640, 480) == (0, 0, 640, 480)


def test_to_pixels_rounds_outwards():
    # 10.1 -> 10 (floor), 19.9 -> 20 (ceil): the pixel box covers the normalized one.
    assert Box(0.101, 0.101, 0.199, 0.199).to_pixels(100, 100) == (10, 10, 20, 20)


@pytest.mark.parametrize(
    "box, size, expected",
    [
        (Box(0.5, 0.5, 0.5, 0.5), (10, 10), (5, 5, 6, 6)),
        (Box(1.0, 1.0, 1.0, 1.0), (10, 10), (9, 9, 10, 10)),
        (Box(0.0, 0.0, 0.0, 0.0), (10, 10), (0, 0, 1, 1)),
        (Box(0.0, 0.0, 0.01, 0.01), (10, 10), (0, 0, 1, 1)),
        (Box(0.2, 0.2, 0.8, 0.8), (1, 1), (0, 0, 1, 1)),
    ],
)
def test_to_pixels_at_least_one_pixel(box, size, expected):
    assert box.to_pixels(*size) == expected


def test_to_pixels_covers_box_and_stays_in_image():
    rng = random.Random(1)
    for box in random_boxes(500, seed=2):
        w, h = rng.randint(1, 4000), rng.randint(1, 4000)
        left, top, right, bottom = box.to_pixels(w, h)
        assert all(isinstance(v, int) for v in (left, top, right, bottom))
        assert 0 <= left < right <= w and 0 <= top < bottom <= h
        assert right - left >= 1 and bottom - top >= 1
        assert left <= box.x1 * w and right >= box.x2 * w
        assert top <= box.y1 * h and bottom >= box.y2 * h


# --- IoU, coverage, union ----------------------------------------------------------------------------


def test_iou_hand_computed():
    a = Box(0.0, 0.0, 0.5, 0.5)
    b = Box(0.25, 0.25, 0.75, 0.75)
    # intersection 0.25 * 0.25 = 0.0625; union 0.25 + 0.25 - 0.0625 = 0.4375
    assert a.intersection(b) == pytest.approx(0.0625)
    assert a.iou(b) == pytest.approx(0.0625 / 0.4375)
    assert a.iou(b) == pytest.approx(1 / 7)
    assert b.iou(a) == pytest.approx(1 / 7)


def test_iou_special_cases():
    a = Box(0.1, 0.2, 0.4, 0.6)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(0.5, 0.5, 0.9, 0.9)) == 0.0  # disjoint
    assert Box(0.0, 0.0, 0.5, 1.0).iou(Box(0.5, 0.0, 1.0, 1.0)) == 0.0  # touching edge
    assert FULL.iou(Box(0.25, 0.25, 0.75, 0.75)) == pytest.approx(0.25)  # contained: 0.25 / 1
    # Side-by-side overlap: [0,0.6]x[0,1] vs [0.4,1]x[0,1]: inter 0.2, union 1.0
    assert Box(0.0, 0.0, 0.6, 1.0).iou(Box(0.4, 0.0, 1.0, 1.0)) == pytest.approx(0.2)
    point = Box(0.5, 0.5, 0.5, 0.5)
    assert point.iou(point) == 0.0  # zero union: no division by zero


def test_coverage_hand_computed():
    a = Box(0.0, 0.0, 0.5, 0.5)
    b = Box(0.25, 0.25, 0.75, 0.75)
    assert a.coverage(b) == pytest.approx(0.25)  # 0.0625 of b's 0.25
    assert FULL.coverage(b) == 1.0
    assert b.coverage(FULL) == pytest.approx(0.25)
    assert a.coverage(Box(0.6, 0.6, 0.9, 0.9)) == 0.0
    # target 0.2 x 0.4 = 0.08, of which [0.4,0.5] x [0.1,0.5] = 0.04 lies inside a
    assert a.coverage(Box(0.4, 0.1, 0.6, 0.5)) == pytest.approx(0.5)


def test_coverage_of_zero_area_target_uses_its_centre():
    a = Box(0.0, 0.0, 0.5, 0.5)
    assert a.coverage(Box(0.25, 0.25, 0.25, 0.25)) == 1.0
    assert a.coverage(Box(0.75, 0.75, 0.75, 0.75)) == 0.0
    assert a.coverage(Box(0.1, 0.2, 0.3, 0.2)) == 1.0  # a zero-height line inside


def test_union_hand_computed():
    a = Box(0.1, 0.2, 0.3, 0.4)
    b = Box(0.5, 0.1, 0.6, 0.3)
    assert tuple(a.union(b)) == (0.1, 0.1, 0.6, 0.4)
    assert tuple(b.union(a)) == (0.1, 0.1, 0.6, 0.4)
    assert a.union(a) == a


def test_union_all_and_covered():
    assert union_all([]) is None
    assert union_all([Box(0.2, 0.2, 0.3, 0.3)]) == Box(0.2, 0.2, 0.3, 0.3)
    quadrants = [AWARES9[k] for k in ("top_left", "top_right", "bottom_left", "bottom_right")]
    assert union_all(quadrants) == FULL
    assert union_all(iter(quadrants[:2])) == Box(0.0, 0.0, 1.0, 0.5)

    target = Box(0.4, 0.1, 0.6, 0.5)  # half inside top_left, half inside top_right
    assert not covered(quadrants, target)
    assert covered(quadrants, target, threshold=0.5)
    assert covered([AWARES9["top"]], target)
    assert not covered([], target)


# --- clamp, pad, min_size ----------------------------------------------------------------------------


def test_clamp():
    assert tuple(Box(-0.5, -0.2, 1.5, 0.5).clamp()) == (0.0, 0.0, 1.0, 0.5)
    assert tuple(Box(1.2, 1.2, 1.5, 1.5).clamp()) == (1.0, 1.0, 1.0, 1.0)
    assert tuple(Box(-2.0, -2.0, -1.0, -1.0).clamp()) == (0.0, 0.0, 0.0, 0.0)
    inside = Box(0.1, 0.2, 0.3, 0.4)
    assert inside.clamp() == inside


def test_pad_hand_computed():
    box = Box(0.4, 0.4, 0.6, 0.6)
    approx_box(box.pad(0.5), (0.3, 0.3, 0.7, 0.7))  # 0.5 * 0.2 = 0.1 each side
    approx_box(box.pad(absolute=0.05), (0.35, 0.35, 0.65, 0.65))
    approx_box(box.pad(0.5, 0.05), (0.25, 0.25, 0.75, 0.75))
    # Non-square: dx from width, dy from height.
    approx_box(Box(0.2, 0.4, 0.6, 0.5).pad(0.5), (0.0, 0.35, 0.8, 0.55))
    # At the corner: clamped.
    approx_box(Box(0.0, 0.0, 0.2, 0.2).pad(1.0), (0.0, 0.0, 0.4, 0.4))
    assert box.pad() == box
    assert FULL.pad(0.5, 0.5) == FULL


def test_min_size_hand_computed():
    approx_box(Box(0.45, 0.45, 0.55, 0.55).min_size(0.3), (0.35, 0.35, 0.65, 0.65))
    # Near the bottom-right corner: shifted inside rather than clipped.
    approx_box(Box(0.9, 0.9, 1.0, 1.0).min_size(0.4), (0.6, 0.6, 1.0, 1.0))
    # Near the origin, separate width and height.
    approx_box(Box(0.0, 0.0, 0.1, 0.1).min_size(0.4, 0.2), (0.0, 0.0, 0.4, 0.2))
    # Already big enough: unchanged.
    big = Box(0.1, 0.1, 0.9, 0.9)
    approx_box(big.min_size(0.2), (0.1, 0.1, 0.9, 0.9))
    # Requests larger than the image are capped at the image.
    approx_box(Box(0.4, 0.4, 0.5, 0.5).min_size(2.0), (0.0, 0.0, 1.0, 1.0))


def test_pad_clamp_min_size_stay_inside_unit_square():
    rng = random.Random(3)
    for box in random_boxes(2000, seed=4):
        padded = box.pad(rng.uniform(0, 2), rng.uniform(0, 0.3))
        assert inside_unit(padded)
        assert padded.coverage(box) == pytest.approx(1.0) or box.area == 0.0

        w, h = rng.uniform(0, 1.5), rng.uniform(0, 1.5)
        grown = box.min_size(w, h)
        assert inside_unit(grown)
        assert grown.width >= min(w, 1.0) - 1e-9 and grown.height >= min(h, 1.0) - 1e-9
        # Growing around the centre and shifting inside still contains the original box.
        assert grown.x1 <= box.x1 + 1e-9 and grown.x2 >= box.x2 - 1e-9
        assert grown.y1 <= box.y1 + 1e-9 and grown.y2 >= box.y2 - 1e-9

        x1, y1 = rng.uniform(-3, 3), rng.uniform(-3, 3)
        wild = Box(x1, y1, x1 + rng.uniform(0, 5), y1 + rng.uniform(0, 5))
        assert inside_unit(wild.clamp())


# --- crop sets ---------------------------------------------------------------------------------------


def test_awares9_is_exactly_the_documented_nine():
    expected = {
        "top_left": (0.0, 0.0, 0.5, 0.5),
        "top_right": (0.5, 0.0, 1.0, 0.5),
        "bottom_left": (0.0, 0.5, 0.5, 1.0),
        "bottom_right": (0.5, 0.5, 1.0, 1.0),
        "center": (0.25, 0.25, 0.75, 0.75),
        "top": (0.0, 0.0, 1.0, 0.5),
        "bottom": (0.0, 0.5, 1.0, 1.0),
        "left": (0.0, 0.0, 0.5, 1.0),
        "right": (0.5, 0.0, 1.0, 1.0),
    }
    assert len(AWARES9) == 9
    assert {name: tuple(box) for name, box in AWARES9.items()} == expected


def test_awares9_shapes():
    for name in ("top_left", "top_right", "bottom_left", "bottom_right", "center"):
        box = AWARES9[name]
        assert (box.width, box.height) == (0.5, 0.5)  # half width, half height
    assert AWARES9["center"].center == (0.5, 0.5)
    for name in ("top", "bottom", "left", "right"):
        assert AWARES9[name].area == 0.5
    # The nine boxes are all distinct.
    assert len(set(AWARES9.values())) == 9


def test_grid_3_tiles_unit_square_exactly():
    cells = grid(3)
    assert sorted(cells) == sorted(f"r{r}c{c}" for r in range(3) for c in range(3))
    for r, c in itertools.product(range(3), range(3)):
        approx_box(cells[f"r{r}c{c}"], (c / 3, r / 3, (c + 1) / 3, (r + 1) / 3))
    approx_box(cells["r1c2"], (2 / 3, 1 / 3, 1.0, 2 / 3))
    assert sum(b.area for b in cells.values()) == pytest.approx(1.0)
    for a, b in itertools.combinations(cells.values(), 2):
        assert a.intersection(b) == 0.0
    assert union_all(cells.values()) == FULL
    # Every interior sample point lies in exactly one cell.
    for i, j in itertools.product(range(30), range(30)):
        x, y = (i + 0.5) / 30, (j + 0.5) / 30
        assert sum(b.contains_point(x, y) for b in cells.values()) == 1


def test_grid_edges_shared_exactly():
    cells = grid(3)
    for r, c in itertools.product(range(3), range(2)):
        assert cells[f"r{r}c{c}"].x2 == cells[f"r{r}c{c + 1}"].x1
    for r, c in itertools.product(range(2), range(3)):
        assert cells[f"r{r}c{c}"].y2 == cells[f"r{r + 1}c{c}"].y1


def test_grid_1_and_invalid():
    assert grid(1) == {"r0c0": FULL}
    with pytest.raises(ValueError, match=">= 1"):
        grid(0)
    with pytest.raises(ValueError):
        grid(-2)


def test_grid_overlap():
    cells = grid(2, overlap=0.5)  # each side grows by 0.25 of the 0.5 cell = 0.125, then clamps
    approx_box(cells["r0c0"], (0.0, 0.0, 0.625, 0.625))
    approx_box(cells["r1c1"], (0.375, 0.375, 1.0, 1.0))
    approx_box(cells["r0c1"], (0.375, 0.0, 1.0, 0.625))
    assert all(inside_unit(b) for b in cells.values())


def test_multiscale_counts_and_names():
    cells = multiscale()
    assert len(cells) == 4 + 9 + 16
    assert sum(n.startswith("s2_") for n in cells) == 4
    assert sum(n.startswith("s3_") for n in cells) == 9
    assert sum(n.startswith("s4_") for n in cells) == 16
    assert all(inside_unit(b) for b in cells.values())
    assert len(multiscale((2, 3))) == 13
    assert len(multiscale((5,))) == 25
    one = multiscale((1, 2), overlap=0.25)
    assert len(one) == 5
    assert one["s1_r0c0"] == FULL
    # With no overlap a level is exactly the plain grid.
    assert {k.removeprefix("s3_"): v for k, v in multiscale((3,), overlap=0.0).items()} == grid(3)


def test_multiscale_overlap_grows_cells():
    cells = multiscale((2,), overlap=0.25)  # pad(0.125) of a 0.5 cell: 0.0625 each side
    approx_box(cells["s2_r0c0"], (0.0, 0.0, 0.5625, 0.5625))
    approx_box(cells["s2_r1c1"], (0.4375, 0.4375, 1.0, 1.0))


def test_crop_set_names():
    assert crop_set("awares9") == AWARES9
    assert crop_set("  AWARES9 ") == AWARES9
    assert crop_set("grid:3") == grid(3)
    assert len(crop_set("grid:2")) == 4
    assert len(crop_set("multiscale")) == 29
    assert len(crop_set("multiscale:2,3")) == 13


def test_crop_set_returns_a_copy():
    s = crop_set("awares9")
    s.pop("center")
    assert "center" in AWARES9 and len(AWARES9) == 9


@pytest.mark.parametrize("name", ["foo", "", "awares", "grids:3", "tiles:2"])
def test_crop_set_unknown_name(name):
    with pytest.raises(ValueError, match="unknown crop set"):
        crop_set(name)


@pytest.mark.parametrize("name", ["grid:x", "grid:", "grid", "grid:2.5", "grid:3x3"])
def test_crop_set_bad_grid(name):
    with pytest.raises(ValueError, match="grid:N"):
        crop_set(name)


@pytest.mark.parametrize("name", ["grid:0", "grid:-1"])
def test_crop_set_grid_size_below_one(name):
    with pytest.raises(ValueError):
        crop_set(name)


@pytest.mark.parametrize("name", ["multiscale:a,b", "multiscale:2,,3", "multiscale:2;3"])
def test_crop_set_bad_multiscale(name):
    with pytest.raises(ValueError, match="multiscale:2,3,4"):
        crop_set(name)
