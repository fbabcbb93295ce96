"""A race's decision (tune_digits/report/racing.py): its tests against scipy and scikit-posthocs on known data,
its hand-out order, and committed screens replayed through it without training."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
from scipy import stats

from tune_digits.report.racing import Race, configurations, conover_against, friedman, race_round
from tune_digits.results import EPOCHS_CSV, read_meta, SEARCH_JSON

from helpers import ROOT

# Conover (1999), Example 5.8.1: 12 homeowners (blocks) rank 4 lawn grasses (treatments); here as errors.
CONOVER_LAWNS = np.array([[4, 3, 2, 1], [4, 2, 3, 1], [3, 1.5, 1.5, 4], [3, 1, 2, 4], [4, 2, 1, 3], [2, 2, 2, 4],
                          [1, 3, 2, 4], [2, 4, 1, 3], [3.5, 1, 2, 3.5], [4, 1, 3, 2], [4, 2, 3, 1], [3.5, 1, 2, 3.5]])


def test_friedman_is_scipys_with_ties() -> None:
    rng = np.random.default_rng(0)
    for values in (CONOVER_LAWNS, rng.normal(size=(3, 7)), np.round(rng.normal(size=(5, 20)), 1)):
        ours = friedman(values)
        statistic, p = stats.friedmanchisquare(*values.T)
        assert ours.statistic == pytest.approx(statistic) and ours.p_value == pytest.approx(p)
    assert friedman(CONOVER_LAWNS).statistic == pytest.approx(8.097, abs=1e-3)  # the book's T1, ties corrected


def test_conover_against_the_best_is_scikit_posthocs() -> None:
    rng = np.random.default_rng(1)
    for values in (CONOVER_LAWNS, rng.normal(size=(2, 300)) + np.linspace(0, 3, 300), rng.normal(size=(4, 6))):
        test = friedman(values)
        best = int(np.argmin(test.rank_sums))
        _, p = conover_against(test, best)
        reference = scikit_posthocs.posthoc_conover_friedman(values, p_adjust=None).to_numpy()[best]
        others = np.arange(values.shape[1]) != best
        np.testing.assert_allclose(p[others], reference[others], rtol=1e-9)
        assert math.isnan(p[best])


def test_a_round_drops_only_what_is_worse_after_holm() -> None:
    # 2 seeds, 40 configurations: 10 good ones (error ≈ 2), 30 far behind (≈ 20); seed 1 harder for everyone.
    rng = np.random.default_rng(2)
    means = np.r_[np.full(10, 2.0), np.full(30, 20.0)]
    values = means + rng.normal(scale=0.3, size=(2, 40)) + np.array([[0.0], [1.5]])
    dropped = race_round(values, list(range(100, 140)), round_=2, alpha=0.05)
    assert {e.config for e in dropped} <= set(range(110, 140)) and len(dropped) >= 5
    assert all(e.p_value < 0.05 and e.round == 2 and e.mean > e.best_mean for e in dropped)
    best = dropped[0].against
    assert 100 <= best < 110 and all(e.against == best for e in dropped)
    # the same table without the far-behind ones: Friedman finds nothing, nothing is dropped
    assert race_round(values[:, :10], list(range(10)), round_=2, alpha=0.05) == []
    assert race_round(values[:1], list(range(40)), round_=1, alpha=0.05) == []  # one seed: no test


def _drive(race: Race, table: np.ndarray) -> list[tuple[int, int]]:
    """Run a race to its end on a (configurations × seeds) table, results returned at once."""
    order = []
    while (run := race.next_run()) is not None:
        order.append(run)
        race.record(*run, table[run])
    assert race.finished
    return order


def test_a_race_hands_out_rounds_and_ends_with_survivors_at_max_seeds() -> None:
    rng = np.random.default_rng(3)
    table = np.r_[np.full(5, 2.0), np.full(25, 15.0)][:, None] + rng.normal(scale=0.5, size=(30, 6))
    race = Race(configs=30, max_seeds=6, first=2)
    order = _drive(race, table)
    assert order[:60] == [(c, s) for s in (0, 1) for c in range(30)]  # breadth first: round 1 is seeds 0 and 1
    assert {e.config for e in race.eliminations} == set(range(5, 30))  # the far-behind ones, and only them
    assert min(e.round for e in race.eliminations) == 2 and race.alive == [0, 1, 2, 3, 4]
    assert all(race.handed[c] == 6 for c in race.alive)  # survivors reach max_seeds
    assert len(order) == race.runs == len(race.results)
    # a dropped configuration got at most the one seed handed out ahead of its round
    assert all(race.handed[e.config] <= e.round + 1 for e in race.eliminations)
    assert race.winner() in race.alive
    assert race.winner() == min(race.alive, key=lambda c: table[c].mean())


def test_a_pending_round_hands_the_leaders_one_seed_ahead() -> None:
    race = Race(configs=4, max_seeds=4, first=2)
    runs = [race.next_run() for _ in range(8)]  # round 1's eight runs out, none back
    assert race.next_run() is None  # nothing known yet: no leader
    for (c, s), value in zip(runs[:7], [5.0, 1.0, 3.0, 4.0, 5.0, 1.0, 3.0]):
        race.record(c, s, value)
    assert race.next_run() == (1, 2)  # (3, 1) still pending: the leader's next seed
    assert race.next_run() == (2, 2)
    assert race.level == 2 and not race.tested  # the round's test waits for its last result


def test_a_race_rebuilt_from_its_results_decides_the_same() -> None:
    rng = np.random.default_rng(4)
    table = np.linspace(1, 12, 20)[:, None] + rng.normal(scale=1.0, size=(20, 5))
    whole = Race(configs=20, max_seeds=5, first=2)
    order = _drive(whole, table)
    rebuilt = Race(configs=20, max_seeds=5, first=2)
    for run in order[:47]:  # a crash after 47 results: the rows say what ran
        rebuilt.record(*run, table[run])
    _drive(rebuilt, table)
    assert rebuilt.eliminations == whole.eliminations and rebuilt.winner() == whole.winner()


def test_a_budget_stops_the_race_after_its_runs() -> None:
    table = np.arange(40, dtype=float).reshape(10, 4)
    race = Race(configs=10, max_seeds=4, first=2, budget=25)
    assert len(_drive(race, table)) == 25 and race.winner() == 0


# ---------------------------------------------------------------------------------------------------
# Committed screens replayed: the race's decisions on the rows a full screen wrote, without training.

SCREENS = ["linear", "lenet", "resnet", "alexnet", "levers", "best", "weight_sharing"]


def _screen_table(name: str) -> tuple[np.ndarray, str]:
    """(configurations × seeds) final-epoch errors of reference/<name>/screen, and the metric it ranks on."""
    folder = ROOT / "reference" / name / "screen"
    rows = pd.read_csv(folder / EPOCHS_CSV)
    meta = read_meta(folder / SEARCH_JSON)
    metric = "val_error" if rows["val_error"].notna().any() else "test_error"
    last = rows[rows["epoch"] == rows["epoch"].max()]
    table = last.pivot_table(index=meta["axes"] or "epoch", columns="seed", values=metric)
    assert table.shape[1] == len(meta["seeds"]) and not table.isna().any().any()
    return table.to_numpy(), metric


@pytest.mark.parametrize("name", SCREENS)
def test_racing_a_committed_screen_keeps_its_winner_and_saves_runs(name: str) -> None:
    table, _ = _screen_table(name)
    k, seeds = table.shape
    if k < 3 or seeds < 2:
        pytest.skip(f"reference/{name}/screen has {k} configuration(s) × {seeds} seed(s): nothing to race")
    race = Race(configs=k, max_seeds=seeds, first=2)
    runs = len(_drive(race, table))
    full_best = int(np.argmin(table.mean(axis=1)))
    winner = race.winner()
    # the full screen's winner survives, or the race's is not significantly worse on all the screen's seeds
    if winner != full_best:
        whole = friedman(table.T)
        _, p = conover_against(whole, int(np.argmin(whole.rank_sums)))
        assert not p[winner] < 0.05, (name, winner, full_best)
    assert full_best in race.alive or not race_round(table[[full_best, winner]].T, [full_best, winner], seeds, 0.05)
    assert runs <= k * seeds


def test_racing_resnets_screen_saves_most_of_its_runs() -> None:
    """The screen the race is for: 300 configurations × 3 seeds (reference/resnet/screen). Measured: 739 runs,
    161 of the 900 saved (139 configurations dropped after 2 seeds), the same winner."""
    table, _ = _screen_table("resnet")
    race = Race(configs=300, max_seeds=3, first=2)
    runs = len(_drive(race, table))
    top5 = set(np.argsort(table.mean(axis=1))[:5])
    assert top5 <= set(race.alive)  # the full screen's five leaders all survive
    assert runs <= 0.85 * 900 and race.winner() == int(np.argmin(table.mean(axis=1)))


def test_a_first_round_goes_out_grouped_and_later_seeds_one_by_one() -> None:
    race = Race(configs=3, max_seeds=4, first=2)
    assert [race.next_runs(group=2) for _ in range(3)] == [(0, [0, 1]), (1, [0, 1]), (2, [0, 1])]
    assert race.next_runs(group=2) is None  # nothing known: no leader to hand a seed ahead
    for c, value in enumerate([1.0, 2.0, 3.0]):
        race.record(c, 0, value)
        race.record(c, 1, value)
    assert race.next_runs(group=2) == (0, [2])  # round 2 onwards: one seed each, as the test decides
    assert Race(configs=2, max_seeds=4, first=4).next_runs(group=3) == (0, [0, 1, 2])  # at most `group`
    budgeted = Race(configs=2, max_seeds=3, first=2, budget=3)
    assert [budgeted.next_runs(group=2) for _ in range(3)] == [(0, [0, 1]), (1, [0]), None]  # within the budget


RACED = sorted(str(p.parent.relative_to(ROOT / "reference")) for p in (ROOT / "reference").rglob(SEARCH_JSON)
               if "race" in read_meta(p))


def test_the_raced_sets_are_found():
    assert {"reproduce-race/resnet/screen", "regularisers/screen", "distortions/screen_50ep"} <= set(RACED)


@pytest.mark.parametrize("name", RACED)
def test_the_committed_raced_screens_decisions_are_the_races_on_their_rows(name: str) -> None:
    """Every raced set in reference/ (`tune-digits reproduce`'s screens, the studies' races on validation): its
    rows, fed to the race's decision code today, give the eliminations and the winner its search.json recorded."""
    folder = ROOT / "reference" / name
    meta = read_meta(folder / SEARCH_JSON)
    rows = pd.read_csv(folder / EPOCHS_CSV)
    last = rows[rows["epoch"] == rows["epoch"].max()]
    axes, seeds, recorded = meta["axes"], meta["seeds"], meta["race"]
    configs = configurations({a: meta["grid"][a] for a in axes})
    index = {tuple(str(c[a]) for a in axes): i for i, c in enumerate(configs)}
    table = {(index[tuple(str(v) for v in r[axes])], seeds.index(int(r["seed"]))): float(r[meta["metric"]])
             for _, r in last.iterrows()}
    race = Race(len(configs), len(seeds), first=recorded["first"], alpha=recorded["alpha"], budget=recorded["budget"])
    while (run := race.next_run()) is not None:
        race.record(*run, table[run])
    assert race.summary(configs, {k: recorded[k] for k in ("first", "alpha", "budget")})["eliminations"] \
        == recorded["eliminations"]
    assert race.winner() == recorded["winner"] and len(race.alive) == recorded["alive"]
    assert race.runs <= recorded["runs_handed_out"] == len(last)  # the search's extra runs: seeds handed out ahead
