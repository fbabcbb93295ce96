"""The report's inference core: corrections for multiple comparisons, the seeds an effect needs, and the verdict
on one question. Pure functions over arrays of numbers (scipy and statsmodels, imported when called), so a test
can check them against the libraries on known data and a report or a search can share them."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

ALPHA = 0.05  # every test, CI and tie in the report is at this level
POWER = 0.8  # the power a "seeds needed" estimate is for


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values of one family (statsmodels' `multipletests(method="holm")`); a NaN p (no test:
    one seed, no spread) stays NaN and does not count as a member of the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        from statsmodels.stats.multitest import multipletests  # ~0.5 s to import: only when a report tests

        out[tested] = multipletests(p[tested], alpha=ALPHA, method="holm")[1]
    return out


def cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    """|mean(a) − mean(b)| over the pooled sample std; NaN when either has fewer than 2 values, or no spread."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size < 2 or b.size < 2:
        return math.nan
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    return abs(float(a.mean() - b.mean())) / math.sqrt(pooled) if pooled > 0 else math.nan


def cohen_dz(a: np.ndarray, b: np.ndarray) -> float:
    """|mean(a − b)| over the std of the differences, on the pairs where both have a value (the paired design's
    standardized effect); NaN with fewer than 2 pairs or no spread."""
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if d.size < 2 or not d.std(ddof=1) > 0:
        return math.nan
    return abs(float(d.mean())) / float(d.std(ddof=1))


def seeds_needed(effect_size: float, alpha: float = ALPHA, power: float = POWER, paired: bool = False) -> float:
    """Repetitions per arm a two-sided two-sample t-test needs to detect a standardized effect `effect_size`
    (Cohen's d) at `alpha` with `power` (statsmodels' TTestIndPower), rounded up; `paired`: the pairs a paired
    t-test needs for Cohen's dz (TTestPower on the differences). NaN when the effect is undefined or zero (no
    effect seen: no size to plan for)."""
    if effect_size is None or math.isnan(effect_size) or effect_size < 1e-6:  # below: the means' rounding noise
        return math.nan
    import statsmodels.tools.sm_exceptions  # noqa: F401 (its import adds an "always" filter: before ours)
    from statsmodels.stats.power import NormalIndPower, TTestIndPower, TTestPower

    two = {} if paired else {"ratio": 1.0}  # a two-sample test's second arm is as large as the first
    analysis = TTestPower() if paired else TTestIndPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the root finder may not converge at the extremes (handled below)
        n = float(np.asarray(analysis.solve_power(effect_size=effect_size, alpha=alpha, power=power,
                                                  alternative="two-sided", **two)).item())
        if math.isnan(n):  # a very large effect: the fewest seeds whose power is enough, counted up
            # (scipy's noncentral t gives NaN far in its tail, where the power is 1 to machine precision)
            n = next((float(k) for k in range(2, 101)
                      if not analysis.power(effect_size, k, alpha, **two) < power), math.nan)
        if math.isnan(n):  # a tiny one, thousands of seeds: there the normal approximation is the t-test
            # (n pairs with dz need what two arms of n need with d = dz·√2)
            d = effect_size * math.sqrt(2.0) if paired else effect_size
            n = float(NormalIndPower().solve_power(effect_size=d, alpha=alpha, power=power, ratio=1.0))
    return math.nan if math.isnan(n) else float(math.ceil(n))


@dataclass(frozen=True)
class Verdict:
    resolved: bool
    text: str  # the sentence a reader gets
    short: str  # the same in a few words, for a narrow terminal


def verdict(better: str, worse: str, diff: float, p_adjusted: float, n: int, needed: float,
            alpha: float = ALPHA) -> Verdict:
    """The answer to "is `better` better than `worse`?" given |Δ| = `diff` points (the lower error is `better`'s),
    the family-adjusted p, the repetitions per arm, and the seeds per arm such an effect needs. Arms named
    OPTION=VALUE are named by their value in the short form (the question names the option)."""
    if not math.isnan(p_adjusted) and p_adjusted < alpha:
        return Verdict(True, f"resolved: {better} is better by {abs(diff):.2f} points",
                       f"resolved: {better.partition('=')[2] or better} better")
    if math.isnan(p_adjusted):
        why = "one repetition per arm" if n < 2 else "no spread between repetitions"
        return Verdict(False, f"not tested with {n} seed(s): {why}", f"untested: {why}")
    if math.isnan(needed):
        return Verdict(False, f"not resolved with {n} seeds: no difference seen", "open: no difference seen")
    return Verdict(False, f"not resolved with {n} seeds: an effect this size needs ≈ {int(needed)} seeds per arm "
                          f"at power {POWER}", f"open: needs ≈{int(needed)} seeds/arm")


def mean_ci(values: np.ndarray, confidence: float = 1 - ALPHA) -> tuple[float, float, float]:
    """Mean of the non-NaN values and its t confidence interval (scipy's t.interval); NaN bounds with < 2 values."""
    from scipy import stats

    v = values[~np.isnan(values)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    if v.std() == 0:  # no spread: the interval is the point (scipy would warn and give NaN)
        return mean, mean, mean
    lo, hi = stats.t.interval(confidence, v.size - 1, loc=mean, scale=stats.sem(v))
    return mean, float(lo), float(hi)
