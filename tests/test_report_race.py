"""A raced screen in the report (report/race_rounds.py): its rounds as a table, a figure and a section of the
HTML page, read from rows and search.json's `race` as a raced search writes them. A synthetic race, driven by
the race's own decision code on known values: no training, no Ray."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from report_fixtures import RACED_LRS as LRS, RACED_VALUES as VALUES, raced_experiment, run_cli, write_experiment
from tune_digits.report.analysis import analyse
from tune_digits.report.load import load_experiment
from tune_digits.report.race_rounds import race_rounds, race_table
from tune_digits.report.ranking import ranking_table

def test_the_rounds_say_what_the_race_decided(tmp_path):
    path, race = raced_experiment(tmp_path)
    assert race.eliminations and set(race.alive) == {0, 1}  # the far-behind six dropped, the two leaders kept
    a = analyse(load_experiment(path, "linear"))
    rounds = race_rounds(a)
    assert rounds.groupby("round")["dropped"].sum().sum() == len(race.eliminations)
    for e in race.eliminations:  # each configuration is compared up to the round that dropped it, no further
        mine = rounds[rounds["config"] == f"lr={LRS[e.config]}"]
        assert mine["round"].max() == e.round and mine["dropped"].tolist()[-1]
        assert mine.loc[mine["round"] == e.round, "mean"].iloc[0] == pytest.approx(e.mean)
    outcomes = ranking_table(a).data.set_index("config")["race"]
    assert outcomes[f"lr={LRS[race.winner()]}"] == "winner" and (outcomes == "survivor").sum() == len(race.alive) - 1
    table = race_table(a).data.set_index("round")
    assert table.loc[5, "tested"] == table.loc[5, "alive"] == 2 and table["winner_rank"].iloc[-1] == 1
    assert table.loc[2, "tested"] == 8 and (table["tested"] - table["dropped"]).tolist()[:-1] \
        == table["tested"].tolist()[1:]  # who goes on is who is compared next
    assert table["best_mean"].tolist() == pytest.approx([VALUES[:2, :r].mean(axis=1).min() for r in table.index])


def test_a_race_won_before_its_last_seed_is_not_incomplete(tmp_path):
    """One configuration far ahead: the race ends with it alone, before it ran every seed. It got all the seeds
    the race meant for it, so Table I says it won, not that it is incomplete."""
    ahead = VALUES.copy()
    ahead[1] += 20.0
    path, race = raced_experiment(tmp_path, values=ahead)
    assert race.finished and race.alive == [0] and race.handed[0] < 5
    table = ranking_table(analyse(load_experiment(path, "linear")))
    assert table.data.set_index("config").loc["lr=0.1", "race"] == "winner"
    assert not any("seeds complete" in note for note in table.short_notes), table.short_notes


def test_a_raced_screen_has_its_rounds_in_every_form_and_its_figure(tmp_path):
    raced_experiment(tmp_path)
    result = run_cli("report", "--output", str(tmp_path), "--all")
    assert result.exit_code == 0, result.output
    assert "The race — linear/screen" in result.output and "winner: lr=0.1" in result.output
    report = tmp_path / "report"
    rows = pd.read_csv(report / "race_linear_screen.csv")
    assert rows["round"].tolist() == [2, 3, 4, 5][:len(rows)] and rows["best"].iloc[-1] == "lr=0.1"
    assert (report / "race_linear_screen.png").stat().st_size > 10_000
    drawn = pd.read_csv(report / "race_linear_screen_rounds.csv")
    assert len(drawn) == len(race_rounds(analyse(load_experiment(tmp_path / "linear" / "screen", "linear"))))
    page = (report / "report.html").read_text()
    assert "<h2 id='races'>The races</h2>" in page and "alt='Race linear/screen'" in page
    assert "race_linear_screen" in page  # the rounds' table too
    meta = json.loads((tmp_path / "linear" / "screen" / "search.json").read_text())
    assert f"{meta['race']['runs_handed_out']} runs of the 40" in result.output


def test_a_grid_screen_has_no_race_section(tmp_path):
    write_experiment(tmp_path, "linear", "screen", [({"lr": lr}, lambda s, e: {"test_error": 5.0 + s})
                                                    for lr in LRS[:2]], ["lr"])
    assert run_cli("report", "--output", str(tmp_path)).exit_code == 0
    assert not list((tmp_path / "report").glob("race_*")) and "id='races'" not in \
        (tmp_path / "report" / "report.html").read_text()
