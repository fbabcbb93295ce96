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
