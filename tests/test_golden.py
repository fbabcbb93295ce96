"""Per-epoch metrics of tests/golden/capture.py's cases, rerun through the public API: a change that alters
any number (every metric, every epoch, every seed; NaN == NaN; wall-clock time aside) fails here.

"Alters" means by more than 2 parts in a million. The captured run and this one may be on CPUs with different
vector widths, whose float32 kernels sum in a different order: one loss of 90 values differs in its 7th
digit between an Intel (AVX512) and an AMD EPYC host. Any real change moves an error rate by a whole
misclassified pair (≥ 2.5 points here) and a loss by far more than that.

When a change is *meant* to alter the numbers, regenerate deliberately and say why in the commit:
    .venv/bin/python tests/golden/capture.py
"""
from __future__ import annotations

import json

import pytest
from golden.capture import BASE, CASES, HERE, run  # the case table and its runner, not a copy of them
from train_helpers import metric_differences

EXPECTED = json.loads((HERE / "train.json").read_text())
RELATIVE = 2e-6  # float32 summation order across CPUs (module docstring); not a licence for real changes
REGENERATE = ("if the change is meant to alter the numbers, regenerate with "
              "`.venv/bin/python tests/golden/capture.py` and say why in the commit")


def test_every_case_has_golden_numbers():
    assert set(CASES) == set(EXPECTED), REGENERATE


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_match_the_golden_run(name):
    flat, seeds, engine = CASES[name]
    expected = EXPECTED[name]
    assert (expected["config"], expected["seeds"], expected["engine"]) == ({**BASE, **flat}, seeds, engine), \
        f"case {name} changed since train.json was captured; {REGENERATE}"
    for seed, got, want in zip(seeds, run(flat, seeds, engine), expected["metrics"], strict=True):
        differences = metric_differences(got, want, rel=RELATIVE)
        assert not differences, f"{name}, seed {seed}: {'; '.join(differences[:5])}. {REGENERATE}"
