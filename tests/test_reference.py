"""The committed reference results are made by today's code: one seed of a committed LeNet final stage,
retrained from its search.json on 1 thread, matches every epoch of its committed rows (every metric) on a CPU
like the one that made it, and is a draw from the same distribution on another one (tests/reference_check.py
says why and what each promise checks; it also checks any other set:
`PYTHONPATH=$PWD:tests .venv/bin/python tests/reference_check.py reference/*/*`)."""
from __future__ import annotations

import math

import pytest
from helpers import ROOT
from reference_check import (START_RELATIVE, check, committed_history, distribution_problems, error_noise,
                             final_errors, prediction_interval, trial_of)

from tune_digits import provenance

LENET_FINAL = ROOT / "reference" / "lenet" / "final"


def test_a_committed_lenet_seed_is_reproduced_epoch_by_epoch():
    trial_id, seed = trial_of(LENET_FINAL, seed=0)
    assert len(committed_history(LENET_FINAL, seed, trial_id)) == 25  # all 25 epochs are compared
    verdict = check(LENET_FINAL, seed)
    assert not verdict.problems, (verdict.line() + ". Regenerate the result sets the change alters "
                                  "(reference/README.md) and say why.")


def test_bit_for_bit_is_promised_only_on_the_cpu_that_made_the_set():
    here = provenance.hardware()
    assert provenance.same_hardware(dict(here), here)
    assert provenance.same_hardware({k: v for k, v in here.items() if k != "model"}, here)  # not recorded
    assert not provenance.same_hardware(None, here) and not provenance.same_hardware({}, here)
    assert not provenance.same_hardware({**here, "vendor": "GenuineIntel" if here["vendor"] != "GenuineIntel"
                                         else "AuthenticAMD"}, here)
    assert not provenance.same_hardware({**here, "isa": [*here["isa"], "amx_bf16"]}, here)
    assert not provenance.same_hardware({**here, "isa_settings": {"ATEN_CPU_CAPABILITY": "default"}}, here)


def test_another_cpu_must_give_a_run_from_the_committed_distribution():
    trial_id, seed = trial_of(LENET_FINAL, seed=0)
    want, finals = committed_history(LENET_FINAL, seed, trial_id), final_errors(LENET_FINAL, trial_id)
    assert len(finals) == 20  # the configuration's 20 seeds, over its 4 trials of 5
    assert distribution_problems(want, want, finals) == []
    late = [dict(row) for row in want]
    for row in late[3:]:
        row["train_loss"] *= 1.5  # diverged from epoch 4 on: fine, that is what another CPU does
    assert distribution_problems(late, want, finals) == []
    started_elsewhere = [{**want[0], "train_loss": want[0]["train_loss"] * (1 + 2 * START_RELATIVE["fp32"])},
                         *want[1:]]
    assert "epoch 1 train_loss" in distribution_problems(started_elsewhere, want, finals)[0]
    worse = [*want[:-1], {**want[-1], "test_error": max(finals) + 3.0}]
    assert "outside" in distribution_problems(worse, want, finals)[0]
    nan = [*want[:-1], {**want[-1], "test_error": math.nan}]
    assert "NaN" in distribution_problems(nan, want, finals)[0]
    assert distribution_problems(nan, want, [*finals, math.nan]) == []  # some committed seed diverged too
    assert "epochs" in distribution_problems(want[:-1], want, finals)[0]


def test_the_prediction_interval_is_the_t_distributions():
    from scipy import stats

    values = [2.1, 2.7, 1.9, 2.4, 3.0, 2.2]
    n, mean, sd = len(values), sum(values) / len(values), stats.tstd(values)
    assert prediction_interval(values, 0.95) == pytest.approx(
        stats.t.interval(0.95, n - 1, loc=mean, scale=sd * math.sqrt(1 + 1 / n)))
    assert prediction_interval([2.0]) == (-math.inf, math.inf)
    assert prediction_interval([2.6, 2.6]) == (2.6, 2.6)  # no spread seen...
    low, high = prediction_interval([2.6, 2.6], floor=error_noise([2.6, 2.6], 1000))  # ...but an error rate has some
    assert error_noise([2.6, 2.6], 1000) == pytest.approx(100 * math.sqrt(0.026 * 0.974 / 1000))
    assert low < 2.0 and 3.2 < high


def test_train_once_with_threads_1_matches_a_one_cpu_trial():
    """`tune-digits train --set threads=1` in a process that starts on every core draws its pairs on 1 thread
    too, as a 1-CPU trial does: before, the draw used all cores and a shifted LeNet differed from its
    committed rows (reference/best/final seed 11: epoch-2 loss 1.6314 instead of 1.6290)."""
    import torch

    from tune_digits.train import TrainConfig, train_once

    config = TrainConfig.from_flat({"network": "lenet", "pairs": 1000, "epochs": 1, "shift": 1.5, "seed": 11,
                                    "threads": 1})
    runs = []
    for start_threads in (2, 1):  # the process's thread count before train_once
        torch.set_num_threads(start_threads)
        runs.append(train_once(config, device="cpu"))
    first, second = ({k: v for k, v in r.items() if k != "time_s"} for r in runs)
    assert first == second
