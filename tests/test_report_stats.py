"""The report's statistics: Welch's comparison against textbook formulas, and its undefined cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from report_fixtures import hand_welch

from tune_digits.report import mean_std, welch


def test_welch_matches_hand_computation() -> None:
    a, b = [4.0, 5.0, 6.0], [3.0, 3.5, 4.0]
    diff, lo, hi, p = welch(np.array(a), np.array(b))
    assert (diff, lo, hi, p) == pytest.approx(hand_welch(a, b))
    # t = 1.5 / sqrt(1.25/3) = 2.3238, df = 2.9412 → two-sided p (checked by hand with a t table: 0.05 < p < 0.1)
    assert p == pytest.approx(0.1047, abs=5e-4)
    assert diff == 1.5 and lo < 0 < hi


def test_welch_is_quiet_when_one_side_ties_exactly(recwarn) -> None:
    """3 seeds with the same error on 350 pairs (seen in ResNet's screen): a p-value, and no warning."""
    tied, other = np.array([100 * 10 / 350] * 3), np.array([3.0, 3.4, 2.6])
    assert welch(tied, other)[3] == pytest.approx(hand_welch(list(tied), list(other))[3])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_welch_undefined_cases_are_nan() -> None:
    assert math.isnan(welch(np.array([1.0]), np.array([2.0, 3.0]))[3])
    assert math.isnan(welch(np.array([1.0, 1.0]), np.array([2.0, 2.0]))[3])  # no spread


def test_mean_std_ignores_nan_and_is_nan_where_undefined() -> None:
    assert mean_std(np.array([1.0, np.nan, 3.0])) == pytest.approx((2.0, math.sqrt(2)))
    mean, std = mean_std(np.array([4.0]))
    assert mean == 4.0 and math.isnan(std)
    assert all(math.isnan(x) for x in mean_std(np.array([np.nan])))
