"""`--search race` on a real small Ray (2 CPUs, linear net): rounds handed out as the race decides, the
configurations far behind eliminated, survivors taken to every seed; stopped half-way and resumed, it hands out
no run twice and decides what the race decides on its rows. The decision itself: test_racing.py."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers import make_plan, run_interrupted
from tune_digits.report import best_configuration
from tune_digits.report.analysis import analyse
from tune_digits.report.load import fmt_value, load_experiment
from tune_digits.report.racing import Race
from tune_digits.report.ranking import ranking_table
from tune_digits.tuning import describe_plan, run_search
from tune_digits.tuning.racer import configurations

pytestmark = pytest.mark.usefixtures("ray_2cpus")
# Two learning rates that train (≈ 15 % validation error after 6 epochs on 200 pairs) and four that hardly move
# the initial weights (≈ 40 %): the race should drop the four and take the two to every seed.
GRID = {"nodes": 16, "layers": 1, "dropout": False, "lr": [0.02, 0.01, 1.0e-4, 5.0e-5, 2.0e-5, 1.0e-5]}
GOOD, SEEDS = {0, 1}, 4


def _plan(tmp_path, group: int):
    return make_plan(tmp_path, "linear", GRID, pairs=200, reps=SEEDS, epochs=6, search="race", settings={"first": 2},
                     seeds_per_trial=group)


@pytest.mark.slow
@pytest.mark.parametrize("group", [1, 2], ids=["a-seed-per-trial", "first-round-grouped"])
def test_a_raced_search_drops_the_far_behind_resumes_to_the_same_decisions_and_reports_them(tmp_path, group):
    plan = _plan(tmp_path, group)
    dry = describe_plan(plan)
    assert "race: 2 seed(s) per configuration" in dry and "runs: at least 12 (every" in dry and "at most 24" in dry
    exp = plan.experiment_dir
    first = run_interrupted(plan, finished=5, timeout=240)
    assert first.interrupted and not json.loads((exp / "search.json").read_text())["race"]["finished"]

    said = []
    second = run_search(_plan(tmp_path, group), progress=False, echo=said.append)
    meta = json.loads((exp / "search.json").read_text())
    race = meta["race"]
    assert second.resumed and not second.interrupted and race["finished"]
    assert (second.trials, second.finished, second.failed) == (len(meta["trials"]),) * 2 + (0,)
    seeds_of = [trial["config"].get("seeds", [trial["config"].get("seed")]) for trial in meta["trials"].values()]
    # grouped: each configuration's first round (seeds 0 and 1) is one trial, every later seed a trial of its own
    first_rounds = [seeds for seeds in seeds_of if seeds == [0, 1]]
    assert len(first_rounds) == (6 if group > 1 else 0) and all(len(seeds) == 1 for seeds in seeds_of
                                                                 if seeds not in first_rounds)
    assert sum(map(len, seeds_of)) == race["runs_handed_out"]

    rows = pd.read_csv(exp / "epochs.csv")
    last = rows[rows["epoch"] == 6]
    assert not last.duplicated(["lr", "seed"]).any()  # no run handed out twice across the interruption
    assert len(last) == race["runs_handed_out"]
    dropped = {e["config"] for e in race["eliminations"]}
    assert dropped and dropped.isdisjoint(GOOD) and race["alive"] == 6 - len(dropped)
    assert all(e["p_value"] < 0.05 and e["against"] in GOOD and e["mean"] > e["best_mean"]
               for e in race["eliminations"])
    per_config = last.groupby("lr")["seed"].count()
    lrs = [c["lr"] for c in configurations(plan.grid)]
    assert all(per_config[lrs[c]] == SEEDS for c in GOOD)  # the survivors reached every seed
    assert race["winner"] in GOOD and any(line.startswith("race: ") and "winner" in line for line in said)

    # What the race decides on these rows, replayed without Ray: the same eliminations.
    replay = Race(6, SEEDS, first=2)
    table = {(lrs.index(r.lr), int(r.seed)): r.val_error for r in last.itertuples()}
    while (run := replay.next_run()) is not None:
        replay.record(*run, table[run])
    assert [{**e.as_dict(), "values": configurations(plan.grid)[e.config]} for e in replay.eliminations] \
        == race["eliminations"] and replay.winner() == race["winner"]

    # The report: Table I says who was dropped when, the final stage takes the race's winner.
    table = ranking_table(analyse(load_experiment(exp, "linear"))).data.set_index("lr")
    for e in race["eliminations"]:
        assert table.loc[fmt_value(e["values"]["lr"]), "race"] == f"out in round {e['round']} (p = {e['p_value']:.2g})"
    survivors = table[table["race"].isin(["survivor", "winner"])]
    assert len(survivors) == race["alive"] and survivors["n"].eq(SEEDS).all()
    assert table.loc[fmt_value(race["winner_config"]["lr"]), "race"] == "winner"
    assert best_configuration(exp, "linear") == {"lr": race["winner_config"]["lr"]}

