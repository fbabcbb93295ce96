"""Statistics over repetitions: mean ± sample std, Welch's comparison of two sets of repetitions, and the paired
comparison of two sets run on the same seeds."""
from __future__ import annotations

import math

import numpy as np


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (n − 1) of the non-NaN values; NaN where undefined."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def whole_mean_std(values: np.ndarray) -> tuple[float, float]:
    """`mean_std`, but NaN when some repetitions lack the value (a screen's training error exists at its final
    epoch only): a mean over the repetitions that happen to have it would pass for one over all of them."""
    has = ~np.isnan(values)
    return mean_std(values) if has.all() or not has.any() else (math.nan, math.nan)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """mean(a) − mean(b), its 95 % Welch confidence interval, and the Welch t-test p-value."""
    from scipy import stats  # ~0.3 s to import: only when a difference is computed

    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:  # no spread at all: the t statistic is undefined
        return diff, math.nan, math.nan, math.nan
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    se = math.sqrt(va + vb)
    half = float(stats.t.ppf(0.975, df) * se)
    # Welch's two-sided p from the same t and df (what ttest_ind(equal_var=False) returns), without its
    # warning about near-constant samples: 3 seeds often tie exactly on 350 test pairs.
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return diff, diff - half, diff + half, p


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """mean(a − b) over the pairs where both have a value, its 95 % paired-t confidence interval, and the paired
    t-test's two-sided p (what scipy's ttest_rel returns); NaN bounds with fewer than 2 pairs or no spread."""
    from scipy import stats

    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if d.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else 0.0
    if se == 0:  # one pair, or every pair differs by the same amount: t is undefined
        return diff, math.nan, math.nan, math.nan
    half = float(stats.t.ppf(0.975, d.size - 1) * se)
    return diff, diff - half, diff + half, float(2 * stats.t.sf(abs(diff) / se, d.size - 1))


def grouped_mean_std(groups, metric: str):
    """Per group of a pandas groupby, mean and sample std of `metric` over all its members: NaN where a member
    lacks the value (a screen measures the training error at its final epoch only), never a mean over some."""
    values = groups[metric]
    whole = values.count() == groups.size()
    return values.mean().where(whole), values.std(ddof=1).where(whole)
