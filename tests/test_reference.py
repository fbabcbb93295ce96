"""The committed reference results are made by today's code: one seed of a committed LeNet final stage,
retrained from its search.json on 1 thread, matches every epoch of its committed rows (every metric).

Exact but for float32 summation order: 2 parts in a million, as tests/test_golden.py allows, because the rows
may have been made on a CPU of another vector width (tests/reference_check.py says more; it also checks any
other set: `PYTHONPATH=$PWD:tests .venv/bin/python tests/reference_check.py reference/*/*`)."""
from __future__ import annotations

from conftest import ROOT
from reference_check import RELATIVE, committed_history, retrained_history, trial_of
from train_helpers import metric_differences

LENET_FINAL = ROOT / "reference" / "lenet" / "final"


def test_a_committed_lenet_seed_is_reproduced_epoch_by_epoch():
    trial_id, seed = trial_of(LENET_FINAL, seed=0)
    want = committed_history(LENET_FINAL, seed, trial_id)
    assert [row["epoch"] for row in want] == list(range(1, 26))  # all 25 epochs are compared
    differences = metric_differences(retrained_history(LENET_FINAL, seed, trial_id), want, rel=RELATIVE)
    assert not differences, ("reference/lenet/final is not what today's code makes: " + "; ".join(differences[:5])
                             + ". Regenerate the result sets the change alters (reference/README.md) and say why.")


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
