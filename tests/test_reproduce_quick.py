"""The quick profile (`tune-digits reproduce --quick`, `make demo`) chooses well whatever its seed: every configuration
of its grids was within QUICK_MARGIN points of the best of the committed 3-seed screen, the screen's choice logic
on the committed quick results (reference/quick/, made by `make demo`) picks one of them, and those results' finals
are near the paper's Table II. No training: the choice is replayed on committed rows."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from helpers import ROOT

from tune_digits import paper
from tune_digits.report import analyse, best_configuration, best_table
from tune_digits.report.load import fmt_value, load_experiment
from tune_digits.reproduce import QUICK_GRIDS, QUICK_MARGIN, QUICK_STAGES, protocol_space

QUICK = ROOT / "reference" / "quick"
# How near the paper's Table II (test-selected view, points) the demo's finals are to be: the bounds.
BOUNDS = {"linear": 2.0, "lenet": 1.0, "resnet": 1.0, "alexnet": 2.0}


@pytest.mark.parametrize("net", sorted(QUICK_GRIDS))
def test_every_quick_configuration_was_near_the_best_of_the_full_screen(net: str) -> None:
    a = analyse(load_experiment(ROOT / "reference" / net / "screen", net))
    inside = pd.Series(True, index=a.configs.index)
    for axis, values in QUICK_GRIDS[net].items():
        inside &= a.configs[axis].isin([fmt_value(v) for v in values])
    quick = a.configs[inside]
    assert len(quick) == math.prod(len(v) for v in QUICK_GRIDS[net].values())  # the grid is a corner of the screen
    worst = quick["test_error_mean"].max() - a.configs.iloc[0]["test_error_mean"]
    assert worst <= QUICK_MARGIN, quick[["config", "test_error_mean"]]
    assert QUICK_STAGES["final"]["epochs"] == paper.EPOCHS  # AlexNet needs them (12 % after 10)
    space = protocol_space(net, quick=True)  # holds the paper's choice: what a final without a screen trains
    assert all(space.best[axis] in space.grid[axis] for axis in space.best)


@pytest.mark.parametrize("net", paper.TABLE_II)
def test_the_quick_screen_picks_inside_its_grid_and_the_finals_are_near_the_paper(net: str) -> None:
    best = best_configuration(QUICK / net / "screen", net)
    for axis, values in QUICK_GRIDS.get(net, {}).items():
        assert best[axis] in values, (axis, best)
    final = analyse(load_experiment(QUICK / net / "final", net))
    row = best_table([final]).data.set_index("view").loc["best_epoch"]
    assert row["n"] == QUICK_STAGES["final"]["reps"] and row["epochs"] == QUICK_STAGES["final"]["epochs"]
    assert abs(row["test_error_mean"] - paper.TABLE_II[net]["test_error"][0]) <= BOUNDS[net], row["test_error_mean"]
    assert final.configs.iloc[0][list(QUICK_GRIDS.get(net, {}))].to_dict() == {
        k: fmt_value(v) for k, v in best.items()}  # the final trained what the screen chose
