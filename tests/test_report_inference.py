"""The report's inference core against scipy and statsmodels on known data, and the findings and ties it makes of
a small synthetic screen (report_fixtures.RESNET: known means and stds)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from report_fixtures import RESNET, hand_welch, outputs, write_experiment  # noqa: F401 (outputs: a fixture)
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from tune_digits.report import analyse, load_results, welch
from tune_digits.report.findings import findings_table, support
from tune_digits.report.inference import cohen_d, holm, mean_ci, seeds_needed, verdict
from tune_digits.report.ranking import ranking_table


def test_holm_matches_statsmodels_and_the_hand_rule_and_skips_untested() -> None:
    p = [0.01, 0.04, 0.03, math.nan]
    # By hand: sorted 0.01·3 = 0.03, 0.03·2 = 0.06, then max(0.06, 0.04·1) = 0.06 (monotone).
    assert holm(p)[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert holm(p)[:3] == pytest.approx(multipletests(p[:3], method="holm")[1])
    assert math.isnan(holm(p)[3]) and holm([]).size == 0 and np.isnan(holm([math.nan])).all()


def test_seeds_needed_matches_statsmodels_and_the_textbook() -> None:
    # Cohen's classic table: d = 0.5 needs 64 per group, d = 0.8 needs 26 (α = 0.05 two-sided, power 0.8).
    assert seeds_needed(0.5) == 64 and seeds_needed(0.8) == 26
    assert seeds_needed(1.3) == math.ceil(TTestIndPower().solve_power(1.3, alpha=0.05, power=0.8))
    assert math.isnan(seeds_needed(0.0)) and math.isnan(seeds_needed(math.nan))


def test_cohen_d_mean_ci_and_welch_against_scipy() -> None:
    a, b = np.array([4.0, 5.0, 6.0]), np.array([3.0, 3.5, 4.0])
    assert cohen_d(a, b) == pytest.approx(1.5 / math.sqrt((1.0 + 0.25) / 2))
    assert math.isnan(cohen_d(a[:1], b)) and math.isnan(cohen_d(np.ones(3), np.ones(3)))
    mean, lo, hi = mean_ci(a)
    assert (lo, hi) == pytest.approx(stats.t.interval(0.95, 2, loc=5.0, scale=stats.sem(a)))
    assert mean == 5.0 and math.isnan(mean_ci(a[:1])[1])
    assert welch(a, b)[3] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_verdicts_say_resolved_or_how_many_seeds() -> None:
    resolved = verdict("bn=True", "bn=False", 1.234, 0.01, 3, 5)
    assert resolved.text == "resolved: bn=True is better by 1.23 points" and resolved.short == "resolved: True better"
    unresolved = verdict("bn=True", "bn=False", 0.4, 0.3, 3, 40)
    assert not unresolved.resolved
    assert unresolved.text == "not resolved with 3 seeds: an effect this size needs ≈ 40 seeds per arm at power 0.8"
    assert verdict("a", "b", 0.0, math.nan, 1, math.nan).text.startswith("not tested with 1 seed(s)")
    assert support("x", "x", "y", True) == "supported" and support("y", "x", "y", True) == "contradicted"
    assert support(None, "x", "y", False) == "consistent: no difference resolved"
    assert support("z", "x", "y", False) == ""


def test_findings_of_a_screen_match_the_libraries(outputs) -> None:
    analyses = [analyse(e) for e in load_results(outputs).experiments]
    t = findings_table(analyses)
    rows = t.data.set_index("option")
    # Final epoch (offset 1): config 0 = 3, 3.5, 4; config 1 (channels=8) = 4, 5, 6; config 2 (bn False) = 5, 6, 7.
    best, ch8, nobn = [3.0, 3.5, 4.0], [4.0, 5.0, 6.0], [5.0, 6.0, 7.0]
    p = [hand_welch(nobn, best)[3], hand_welch(ch8, best)[3]]
    assert rows.loc["batch_norm", ["diff", "ci_low", "ci_high", "p"]].tolist() == pytest.approx(hand_welch(nobn, best))
    assert [rows.loc["batch_norm", "p_holm"], rows.loc["channels", "p_holm"]] == pytest.approx(
        multipletests(p, method="holm")[1])
    d = cohen_d(np.array(ch8), np.array(best))
    assert rows.loc["channels", "seeds_needed"] == math.ceil(TTestIndPower().solve_power(d, alpha=0.05, power=0.8))
    assert rows.loc["batch_norm", "better"] == "batch_norm=True"
    # The paper chose batch norm: our (unresolved or resolved) answer is set beside it.
    assert rows.loc["batch_norm", "paper_support"] in ("supported", "not resolved (our means agree)")
    assert (t.data["family"] == "options: resnet/screen").all()


def test_table1_ties_are_the_configurations_not_worse_after_holm(tmp_path) -> None:
    # Two clearly worse configurations (many seeds, tiny spread) and one within noise of the best.
    seeds = tuple(range(8))
    configs = [({"channels": 16}, lambda s, e: _m(2.0 + 0.1 * (s % 2))),
               ({"channels": 8}, lambda s, e: _m(1.9 + 0.35 * (s % 2))),
               ({"channels": 4}, lambda s, e: _m(6.0 + 0.1 * (s % 2))),
               ({"channels": 2}, lambda s, e: _m(9.0 + 0.1 * (s % 2)))]
    write_experiment(tmp_path, "resnet", "screen", configs, ["channels"], seeds=seeds)
    a = analyse(load_results(tmp_path).experiments[0])
    data = ranking_table(a).data.set_index("channels")
    raw = data.loc[["8", "4", "2"], "p_vs_best"].to_numpy()
    assert data.loc[["8", "4", "2"], "p_holm"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1])
    assert data["tied_with_best"].to_dict() == {"16": True, "8": True, "4": False, "2": False}


def _m(test: float) -> dict[str, float]:
    return {"train_loss": 0.1, "train_error": 0.0, "test_digit_error": test, "test_error": test}


def test_findings_ask_networks_and_studies(tmp_path) -> None:
    for space, base in (("lenet", 3.0), ("resnet", 2.0), ("best", 1.5)):
        write_experiment(tmp_path, space, "final", [({}, lambda s, e, b=base: _m(b + 0.2 * s))], [],
                         seeds=tuple(range(5)))
    data = findings_table([analyse(e) for e in load_results(tmp_path).experiments]).data
    net = data[data["kind"] == "network"].iloc[0]
    assert (net["candidate"], net["reference"], net["better"]) == ("lenet", "resnet", "resnet")
    assert net["resolved"] and net["paper_support"] == "supported"  # the paper: ResNet better than LeNet
    study = data[data["kind"] == "study"].iloc[0]
    assert (study["candidate"], study["reference"]) == ("best", "resnet") and study["paper_claim"] == ""
    assert isinstance(data, pd.DataFrame) and set(data["family"]) == {"networks", "studies"}
