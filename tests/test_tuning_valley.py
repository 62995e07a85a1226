"""find_lr's suggestion: fastai's "valley" rule, which a hump before the valley cannot fool."""

from __future__ import annotations

import math

from lightkit.tuning import valley

LRS = [10 ** (-6 + i / 2) for i in range(16)]


def test_valley_ignores_a_rising_hump_before_the_valley():
    # Rising at first (the hump), then a long fall, then divergence: steepest-descent rules can
    # land on the hump; the valley rule lands halfway down the long fall.
    losses = [1.0, 1.2, 1.4, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4, 0.35, 0.33, 2.0, 5.0, math.nan, 9, 9]
    index, lr = valley(LRS, losses)
    assert 3 <= index <= 10 and losses[index] < 1.4 and lr == LRS[index]
    assert losses[index + 1] < losses[index]  # still falling there


def test_valley_stops_at_the_first_non_finite_loss_and_needs_three_points():
    index, _ = valley(LRS[:6], [1.0, 0.9, 0.8, math.inf, 0.1, 0.05])
    assert index <= 2
    assert valley(LRS[:2], [1.0, 0.5]) is None
