"""A raced search killed for real: `tune-digits search --search race` runs as its own process, is killed with
SIGKILL mid-way through its first round, killed again in a later round, and then rerun with Tune's saved
state deleted, so that the race is rebuilt from the rows alone. It ends with the rows and the decisions of
the same race never interrupted (on a Ray of its own, meanwhile): one row per (configuration, seed, epoch),
the same eliminations, the same winner, no run handed out twice.

Trials run one at a time (--max-concurrent 1): the uninterrupted race then never hands out a seed ahead of
its round. The interrupted one may: a run its killed driver had started is continued by the rerun while the
race goes on, and while it is pending the leaders get their next seed (the race never waits). Such a seed
counts in its own round, so the decisions are the same; the rows may hold those extra runs, at most one seed
beyond the round in which their configuration was dropped."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import Driver, runs, statuses

EPOCHS = 6
# Two learning rates that train and four that hardly move the initial weights (tests/test_race_search.py):
# the race drops the four once it has seeds enough, and takes the two to every seed.
RACE = ["--search", "race", "--race", "first=2", "--reps", "4", "--pairs", "200", "--epochs", str(EPOCHS),
        "--set", "nodes=16", "--set", "lr=[0.02, 0.01, 1.0e-4, 5.0e-5, 2.0e-5, 1.0e-5]"]


def finished(exp: Path) -> int:
    try:
        return list(statuses(exp).values()).count("TERMINATED")
    except (OSError, ValueError, KeyError):
        return 0  # search.json not written yet, or being replaced


def race_level(exp: Path) -> int:
    try:
        return json.loads((exp / "search.json").read_text()).get("race", {}).get("round", 0)
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_a_raced_search_killed_twice_and_rebuilt_from_its_rows_ends_as_the_uninterrupted_race(
        tmp_path, ray_tmpdir, hang_guard):
    hang_guard(540)
    reference = Driver(tmp_path, "reference", "reference", args=RACE)
    # 1. Killed in round 1 (12 runs: 6 configurations × 2 seeds), after 5 of them.
    first = Driver(tmp_path, "k", "run1", args=RACE)
    first.wait_for("5 runs", lambda: finished(first.exp) >= 5)
    first.kill()
    # 2. Killed again after round 2's test, in round 3 (the seeds after the first round go to survivors).
    second = Driver(tmp_path, "k", "run2", args=RACE)
    second.wait_for("a run of round 3", lambda: race_level(second.exp) >= 3 and finished(second.exp) >= 14)
    second.kill()
    assert not json.loads((second.exp / "search.json").read_text())["race"]["finished"]
    # 3. Tune's saved state lost too: the race rebuilds itself from the rows, unfinished runs start again
    #    under new trial ids and continue from their own checkpoints.
    for state in (second.exp / "ray").glob("*state-*.json"):
        state.unlink()
    third = Driver(tmp_path, "k", "run3", args=RACE)
    assert third.finish(300) == 0, third.err.read_text()[-3000:]
    assert "Ray's saved state is missing" in third.out.read_text() + third.err.read_text()

    assert reference.finish(300) == 0, reference.err.read_text()[-3000:]
    resumed, uninterrupted = runs(third.exp, "lr"), runs(reference.exp, "lr")
    assert {k: resumed[k] for k in uninterrupted} == uninterrupted  # every run of the race, the same numbers
    race, once = (json.loads((d.exp / "search.json").read_text())["race"] for d in (third, reference))
    assert race["finished"] and race["eliminations"] and race["eliminations"] == once["eliminations"]
    assert (race["winner"], race["alive"]) == (once["winner"], once["alive"])
    assert race["runs_handed_out"] == len(resumed) // EPOCHS < 6 * 4  # each run once; the race saved some
    dropped_in = {str(e["values"]["lr"]): e["round"] for e in race["eliminations"]}
    for lr, seed in {(lr, int(seed)) for lr, seed, _ in set(resumed) - set(uninterrupted)}:
        assert seed == dropped_in[lr], (lr, seed)  # seed index r: the one seed ahead of round r
    assert not (third.exp.parent / ".k.ray").exists()
