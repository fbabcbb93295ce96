"""A race's decision (F-race, irace's default): which configurations get more seeds, which are dropped.

Every configuration starts with `first` seeds; after each round (every surviving configuration has one more
seed) a test drops those already significantly worse than the best, and the survivors get the next seed, up
to `max_seeds`. Pure functions and a state machine over numbers, no Ray, so that a searcher can drive it
with trials' results, a report can read its eliminations, and a test replays committed screens through it
without training.

The test is irace's: Friedman's test across the surviving configurations, the blocks being seeds, then
Conover's post-hoc comparison of each configuration with the best (lowest rank sum), Holm-corrected over
those comparisons. Paired by seed, because a seed fixes the pairs drawn: seed s is the same data for every
configuration, and some seeds' pairs are harder for all of them. Ranks within a seed make the test blind to
that difficulty. Conover's rather than a paired t or Wilcoxon test against the best: with the 2–3 seeds a
screen starts with, a pairwise test has 1–2 degrees of freedom (Wilcoxon's smallest two-sided p on 2 pairs is
0.5) and drops nothing, while Conover's pools the rank variance over all k configurations, (b − 1)(k − 1)
degrees of freedom: 299 for 300 configurations on 2 seeds. W. J. Conover, Practical Nonparametric Statistics
(3rd ed., 1999), §5.8; scikit-posthocs' `posthoc_conover_friedman` computes the same (checked in the tests).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .inference import holm

TEST = "Friedman, then Conover vs the best (Holm)"


def configurations(grid: dict) -> list[dict]:
    """A raced grid's configurations, indexed as the race indexes them: the lists crossed, the first axis
    varying slowest."""
    axes = list(grid)
    return [dict(zip(axes, values)) for values in itertools.product(*(grid[a] for a in axes))]


@dataclass(frozen=True)
class Friedman:
    """Friedman's test on a (seeds × configurations) table, with what Conover's post-hoc needs."""

    statistic: float  # chi-square, corrected for ties (scipy.stats.friedmanchisquare's)
    p_value: float
    rank_sums: np.ndarray  # per configuration, ranks taken within each seed (1 = lowest error)
    t_denominator: float  # sqrt of Conover's pooled rank variance of a difference of two rank sums
    df: int  # (b - 1)(k - 1), Conover's t's degrees of freedom


def friedman(values: np.ndarray) -> Friedman:
    """`values[s, c]`: the metric of configuration c on seed s (lower is better); at least 2 seeds and 2
    configurations, no missing value."""
    from scipy import stats

    b, k = values.shape
    ranks = np.apply_along_axis(stats.rankdata, 1, values)  # ties get their average rank
    sums = ranks.sum(axis=0)
    a = float((ranks ** 2).sum())
    c = b * k * (k + 1) ** 2 / 4
    spread = a - c  # zero when every seed ties every configuration
    if spread <= 1e-12:
        return Friedman(0.0, 1.0, sums, math.inf, (b - 1) * (k - 1))
    statistic = (k - 1) * (float((sums ** 2).sum()) - b * c) / spread
    p = float(stats.chi2.sf(statistic, k - 1))
    pooled = 2 * b * (a - float((sums ** 2).sum()) / b) / ((b - 1) * (k - 1))
    return Friedman(statistic, p, sums, math.sqrt(max(pooled, 0.0)), (b - 1) * (k - 1))


def conover_against(test: Friedman, ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Conover's t and two-sided p of each configuration against configuration `ref` (NaN for `ref`)."""
    from scipy import stats

    diff = np.abs(test.rank_sums - test.rank_sums[ref])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(test.t_denominator > 0, diff / test.t_denominator, 0.0)
    p = 2 * stats.t.sf(t, test.df)
    t[ref], p[ref] = np.nan, np.nan
    return t, p


@dataclass(frozen=True)
class Elimination:
    """One configuration dropped by a round's test (search.json's `race.eliminations`)."""

    round: int  # seeds per configuration when it was tested
    config: int  # its index in the search's configurations
    against: int  # the round's best
    statistic: float  # Conover's t
    p_value: float  # Holm-adjusted over the round's comparisons with the best
    mean: float  # over the round's seeds
    best_mean: float
    friedman_p: float
    test: str = TEST

    def as_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def race_round(values: np.ndarray, configs: list[int], round_: int, alpha: float) -> list[Elimination]:
    """The eliminations of one round: `values[s, j]` is configuration `configs[j]` on the round's seed s.
    Nothing is dropped unless Friedman's test finds a difference at `alpha` (irace's rule)."""
    if len(configs) < 2 or values.shape[0] < 2:
        return []
    test = friedman(values)
    if not test.p_value < alpha:
        return []
    best = int(np.argmin(test.rank_sums))
    t, p = conover_against(test, best)
    adjusted = holm(p)
    means = values.mean(axis=0)
    return [Elimination(round_, configs[j], configs[best], float(t[j]), float(adjusted[j]), float(means[j]),
                        float(means[best]), test.p_value)
            for j in range(len(configs))
            if j != best and adjusted[j] < alpha and test.rank_sums[j] > test.rank_sums[best]]


@dataclass
class Race:
    """Which (configuration, seed) runs next, given the results so far.

    Seeds are handed out in order (seed index i of the search's seeds), breadth first: the round's seed to
    every surviving configuration, then, while those runs are pending, one seed ahead to the leaders (lowest
    mean so far), so that no CPU waits for a round's slowest trial; a leader is the least likely to be dropped.
    A run's result counts in the round of its seed index: one handed out ahead waits for its round."""

    configs: int  # how many configurations (indices 0 .. configs - 1)
    max_seeds: int
    first: int = 2
    alpha: float = 0.05
    budget: int | None = None  # most runs in all; None: configs × max_seeds at most
    results: dict[tuple[int, int], float] = field(default_factory=dict)  # (config, seed index) → metric
    handed: dict[int, int] = field(default_factory=dict)  # config → seed indices handed out (0 .. n - 1)
    eliminations: list[Elimination] = field(default_factory=list)
    level: int = 0  # seeds per configuration in the round in progress
    tested: set[int] = field(default_factory=set)  # the levels whose test has run

    def __post_init__(self):
        self.first = max(1, min(self.first, self.max_seeds))
        self.level = self.level or self.first

    @property
    def alive(self) -> list[int]:
        dropped = {e.config for e in self.eliminations}
        return [c for c in range(self.configs) if c not in dropped]

    @property
    def runs(self) -> int:
        """Runs handed out so far."""
        return sum(self.handed.values())

    def next_run(self) -> tuple[int, int] | None:
        """(configuration, seed index) to run next; None while nothing can be handed out (pending results
        decide, or the race is `finished`)."""
        self._advance()
        if self.finished or self._spent():
            return None
        alive = self.alive
        due = [c for c in alive if self.handed.get(c, 0) < self.level]
        if due:
            c = min(due, key=lambda c: (self.handed.get(c, 0), c))
        else:  # the round's runs are all out: one seed ahead for the leaders
            ahead = [c for c in alive if self.handed.get(c, 0) == self.level < self.max_seeds
                     and self._complete(c) > 0]  # a leader has a result
            if not ahead:
                return None
            c = min(ahead, key=lambda c: (self._mean(c), c))
        seed = self.handed.get(c, 0)
        self.handed[c] = seed + 1
        return c, seed

    def next_runs(self, group: int = 1) -> tuple[int, list[int]] | None:
        """`next_run`, with up to `group` seeds of the configuration's first round together: those runs are due
        whatever the results, so they can share one trial (Ray's fixed cost per trial paid once)."""
        run = self.next_run()
        if run is None:
            return None
        config, seed = run
        seeds = [seed]
        while seeds[-1] + 1 < min(self.first, seed + group) and not self._spent():
            seeds.append(self.handed[config])
            self.handed[config] += 1
        return config, seeds

    def record(self, config: int, seed: int, value: float) -> None:
        """A run's result (the plan's metric at its last epoch); NaN for a run that failed, which then ranks
        last on its seed. A race rebuilt from rows learns here what was handed out."""
        self.results[(config, seed)] = value
        self.mark_handed(config, seed)
        self._advance()

    def mark_handed(self, config: int, seed: int) -> None:
        """A run that is out already (a resumed search's pending trial): never handed out again. Seeds go out
        in order, so the configuration's lower seed indices were out too."""
        self.handed[config] = max(self.handed.get(config, 0), seed + 1)

    @property
    def finished(self) -> bool:
        """No run is due or pending: every survivor has max_seeds (or the race is down to one), or the budget
        is spent and every run handed out has its result."""
        if self._spent():
            return all((c, s) in self.results for c, n in self.handed.items() for s in range(n))
        return self.level in self.tested and (self.level >= self.max_seeds or len(self.alive) <= 1)

    def winner(self) -> int:
        """The survivor with the lowest mean over the seeds every survivor has."""
        alive = self.alive
        common = min(self._complete(c) for c in alive)
        return min(alive, key=lambda c: (self._mean(c, common), c))

    def summary(self, configs: list[dict], settings: dict) -> dict:
        """search.json's `race` (report/race_rounds.py reads it): `settings`, the rounds so far, the
        eliminations and, once finished, the winner; `configs[i]`: configuration i's grid values."""
        alive = self.alive
        winner = self.winner() if self.finished else None
        return {
            **settings, "max_seeds": self.max_seeds, "configurations": self.configs, "round": self.level,
            "runs_handed_out": self.runs, "worst_case_runs": self.configs * self.max_seeds,
            "alive": len(alive), "finished": winner is not None,
            "survivor_seeds_to_come": sum(self.max_seeds - self.handed.get(c, 0) for c in alive),
            "winner": winner, "winner_config": None if winner is None else configs[winner],
            "eliminations": [{**e.as_dict(), "values": configs[e.config]} for e in self.eliminations]}

    def _spent(self) -> bool:
        return self.budget is not None and self.runs >= self.budget

    def _complete(self, config: int) -> int:
        """Its seeds with results, counted from seed index 0 to the first missing one."""
        n = 0
        while (config, n) in self.results:
            n += 1
        return n

    def _advance(self) -> None:
        """Test each round whose results are all in, then open the next one."""
        while self.level not in self.tested and all(self._complete(c) >= self.level for c in self.alive):
            alive = self.alive
            values = np.array([[self._value(c, s) for c in alive] for s in range(self.level)])
            self.eliminations += race_round(values, alive, self.level, self.alpha)
            self.tested.add(self.level)
            if self.level < self.max_seeds and len(self.alive) > 1:
                self.level += 1

    def _value(self, config: int, seed: int) -> float:
        value = self.results[(config, seed)]
        return math.inf if math.isnan(value) else value

    def _mean(self, config: int, seeds: int | None = None) -> float:
        done = [self._value(config, s) for s in range(self.max_seeds if seeds is None else seeds)
                if (config, s) in self.results]
        return float(np.mean(done)) if done else math.inf
