"""A final's variants (report/variants.py): an ablation of a study's winner, each arm another final of the space,
set beside the final named `final` seed by seed. Synthetic result sets with known per-seed values, checked
against scipy's paired t-test and statsmodels' power; and the final that stands for its space stays the one
named `final` when a variant ran later."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from report_fixtures import write_experiment
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from tune_digits import results
from tune_digits.report import analyse, build_tables, load_results
from tune_digits.report.analysis import by_space
from tune_digits.report.inference import seeds_needed
from tune_digits.report.stats import paired
from tune_digits.report.variants import find_variants

FINAL = [1.0, 1.5, 1.2, 0.9, 1.4, 1.1]  # test_error of the final at its last epoch, seeds 0..5
NO_EMA = [1.6, 1.9, 1.5, 1.5, 1.8, 1.7]  # +0.5 on average, tight: resolved
WIDE = [1.2, 1.4, 1.5, 0.8]  # seeds 0..3 only: +0.075, noisy: open


def _values(per_seed: list[float]):
    def at(seed: int, epoch: int) -> dict[str, float]:
        test = per_seed[seed] + (3 - epoch)  # the last epoch (3) holds the listed value
        return {"train_loss": 0.1, "train_error": 0.0, "test_digit_error": test, "test_error": test}
    return at


def _started(path, when: str) -> None:
    meta = json.loads((path / results.SEARCH_JSON).read_text())
    meta["started"] = when
    results.write_meta(path, meta)


@pytest.fixture
def ablation(tmp_path):
    """lenet/final (ema 0.99, width 2) and three later finals of lenet: ema 0, width 1 + ema 0 on 4 seeds, and
    one with two configurations (not an arm); a screen of lenet (never a variant)."""
    base = {"ema": 0.99, "width": 2, "val_fraction": 0.0}
    write_experiment(tmp_path, "lenet", "final", [({}, _values(FINAL))], [], seeds=tuple(range(6)), fixed=base)
    no_ema = write_experiment(tmp_path, "lenet", "ablate_no_ema", [({}, _values(NO_EMA))], [],
                              seeds=tuple(range(6)), stage="final", fixed={**base, "ema": 0.0})
    both = write_experiment(tmp_path, "lenet", "ablate_two", [({}, _values(WIDE))], [], seeds=tuple(range(4)),
                            stage="final", fixed={**base, "ema": 0.0, "width": 1, "tta": True})
    two = write_experiment(tmp_path, "lenet", "bigger", [({"width": 3}, _values(FINAL)),
                                                          ({"width": 4}, _values(FINAL))], ["width"],
                           seeds=tuple(range(6)), stage="final", fixed=base)
    write_experiment(tmp_path, "lenet", "screen", [({"width": 1}, _values(FINAL))], ["width"], fixed=base)
    for path in (no_ema, both, two):
        _started(path, "2026-11-27T09:00:00Z")  # later than the final: it still stands for lenet
    return [analyse(e) for e in load_results(tmp_path).experiments]


def test_the_final_named_final_stands_for_its_space_and_later_finals_are_its_variants(ablation) -> None:
    assert by_space(ablation)["lenet"].exp.name == "final"
    found = {v.analysis.exp.name: v for v in find_variants(ablation)}
    assert set(found) == {"ablate_no_ema", "ablate_two"}  # `bigger` ranks two configurations; a screen is none
    assert found["ablate_no_ema"].changes == {"ema": ("0.99", "0")}
    assert found["ablate_two"].changes == {"ema": ("0.99", "0"), "width": ("2", "1"), "tta": ("default", "True")}
    assert found["ablate_no_ema"].question == "lenet/final ema: 0 vs 0.99"
    assert (found["ablate_two"].candidate, found["ablate_two"].reference) == ("ablate_two", "final")


def test_each_variant_is_paired_with_the_final_on_the_seeds_both_ran(ablation) -> None:
    tables, _ = build_tables(ablation)
    table = next(t for t in tables if t.name == "ablation_lenet_final")
    data = table.data.set_index("variant")
    one, two = data.loc["ablate_no_ema"], data.loc["ablate_two"]
    test = stats.ttest_rel(NO_EMA, FINAL)
    assert one["diff"] == pytest.approx(np.mean(np.subtract(NO_EMA, FINAL))) and one["p"] == pytest.approx(test.pvalue)
    ci = test.confidence_interval()
    assert (one["ci_low"], one["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert two["n_candidate"] == 4 and two["seeds"] == "0–3"
    assert two["reference_mean"] == pytest.approx(np.mean(FINAL[:4]))  # the final on the variant's seeds only
    assert two["p"] == pytest.approx(stats.ttest_rel(WIDE, FINAL[:4]).pvalue)
    assert data["p_holm"].to_numpy() == pytest.approx(multipletests(data["p"].to_numpy(), method="holm")[1])
    assert one["verdict_short"] == "resolved: 0.99 better" and two["verdict_short"].startswith("open")
    d = np.subtract(WIDE, FINAL[:4])
    dz = abs(d.mean()) / d.std(ddof=1)
    assert two["seeds_needed"] == math.ceil(TTestPower().solve_power(dz, alpha=0.05, power=0.8))
    findings = next(t for t in tables if t.name == "findings").data
    rows = findings[findings["family"] == "ablation: lenet/final"]
    assert list(rows["test"]) == ["paired t", "paired t"] and rows["shown"].all()
    assert set(rows["question"]) == {"lenet/final ema: 0 vs 0.99",
                                     "lenet/final ema, width, tta: 0, 1, True vs 0.99, 2, default"}


def test_paired_statistics_against_scipy_and_statsmodels() -> None:
    a, b = np.array([2.0, 3.0, 2.5, np.nan]), np.array([1.0, 2.5, 2.5, 9.0])
    diff, lo, hi, p = paired(a, b)
    ref = stats.ttest_rel(a[:3], b[:3])
    assert diff == pytest.approx(0.5) and p == pytest.approx(ref.pvalue)
    assert (lo, hi) == pytest.approx(tuple(ref.confidence_interval()))
    assert all(math.isnan(x) for x in paired(np.ones(3), np.zeros(3))[1:])  # every pair 1 apart: t undefined
    assert seeds_needed(0.5, paired=True) == math.ceil(TTestPower().solve_power(0.5, alpha=0.05, power=0.8))
    assert seeds_needed(0.5, paired=True) < seeds_needed(0.5)  # a pair removes the seed's own noise
    assert seeds_needed(0.001, paired=True) == pytest.approx(seeds_needed(0.001) / 2, rel=1e-3)
