"""Crop-box math shared by the CPU and GPU paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpuwise.data.image import geometry
from cpuwise.data.transform import sample_rng
from cpuwise.errors import ConfigError


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 3000), w=st.integers(1, 3000), seed=st.integers(0, 2**31), lo=st.floats(0.01, 1.0))
def test_box_inside_image_and_deterministic(h: int, w: int, seed: int, lo: float) -> None:
    box = geometry.random_resized_crop_box(sample_rng(seed, 0, 0), h, w, (lo, 1.0))
    assert box == geometry.random_resized_crop_box(sample_rng(seed, 0, 0), h, w, (lo, 1.0))
    assert 0 <= box.top and box.top + box.height <= h and box.height >= 1
    assert 0 <= box.left and box.left + box.width <= w and box.width >= 1


def test_boxes_follow_scale_and_ratio_on_normal_images() -> None:
    areas, ratios = [], []
    for i in range(400):
        b = geometry.random_resized_crop_box(sample_rng(1, 0, i), 375, 500, (0.08, 1.0), (3 / 4, 4 / 3))
        areas.append(b.height * b.width / (375 * 500))
        ratios.append(b.width / b.height)
    assert min(areas) >= 0.07 and max(areas) <= 1.0
    # rounding to whole pixels moves the ratio a little; the central fallback is 4:3
    assert min(ratios) >= 0.74 and max(ratios) <= 1.34
    assert np.std(areas) > 0.1  # actually random


def test_fallback_is_central_crop() -> None:
    # a 1-pixel-tall strip cannot host any sampled box with ratio <= 4/3: torchvision falls back
    b = geometry.random_resized_crop_box(sample_rng(0, 0, 0), 10, 1000, (0.5, 1.0))
    assert b == geometry.Box(0, (1000 - int(round(10 * 4 / 3))) // 2, 10, int(round(10 * 4 / 3)))


def test_reduction_factor_is_largest_that_keeps_output_resolution() -> None:
    for h, w in [(100, 100), (448, 448), (447, 900), (3000, 4000), (900, 1800)]:
        f = geometry.reduction_factor(geometry.Box(0, 0, h, w), 224, 224)
        assert h / f >= 224 or f == 1
        assert w / f >= 224 or f == 1
        if 2 * f in geometry.REDUCTIONS:
            assert h / (2 * f) < 224 or w / (2 * f) < 224
    assert geometry.reduction_factor(geometry.Box(0, 0, 3000, 4000), 224, 224) == 8
    assert geometry.reduction_factor(geometry.Box(0, 0, 500, 1000), 224, 224) == 2


def test_scale_box_stays_inside() -> None:
    b = geometry.scale_box(geometry.Box(10, 20, 300, 401), 0.25, 0.25, 100, 125)
    assert b == geometry.Box(2, 5, 76, 100)  # rows round(2.5)=2 .. round(77.5)=78
    tiny = geometry.scale_box(geometry.Box(99, 99, 1, 1), 0.125, 0.125, 13, 13)
    assert tiny.height >= 1 and tiny.top + tiny.height <= 13


def test_center_box_matches_resize_then_center_crop() -> None:
    b = geometry.center_crop_box(375, 500, 224, 224, 0.875)
    side = 0.875 * 375
    assert b.height == b.width == int(round(side))
    assert abs(b.top - (375 - side) / 2) <= 1 and abs(b.left - (500 - side) / 2) <= 1


def test_bad_arguments_say_what_was_expected() -> None:
    with pytest.raises(ConfigError, match="scale"):
        geometry.check_range("scale", (0.5, 0.1))
    with pytest.raises(ConfigError, match="size"):
        geometry.output_size(0)
    with pytest.raises(ConfigError, match="fraction"):
        geometry.center_crop_box(10, 10, 5, 5, 1.5)
    assert math.isclose(geometry.check_range("ratio", (3 / 4, 4 / 3))[1], 4 / 3)
