"""Selection and aggregation: each repetition's epochs in both views, configurations ranked, partial runs."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from report_fixtures import RESNET, metrics, outputs, write_experiment  # noqa: F401 (outputs: a fixture)

from tune_digits.report import analyse, best_table, load_results, run_report


def test_ranking_means_stds_and_best(outputs: Path) -> None:
    a = analyse(load_results(outputs).experiments[0])
    c = a.configs
    assert list(c["config"]) == ["batch_norm=True, channels=16", "batch_norm=True, channels=8",
                                 "batch_norm=False, channels=16", "batch_norm=False, channels=8"]
    assert list(c["rank"]) == [1, 2, 3, 4] and list(c["best"]) == [True, False, False, False]
    # honest view = final epoch (no validation split): base + scale + 1
    assert list(c["test_error_mean"]) == pytest.approx([3.5, 5.0, 6.0, 9.0])
    assert list(c["test_error_std"]) == pytest.approx([0.5, 1.0, 1.0, 2.0])
    assert list(c["epoch_mean"]) == [3, 3, 3, 3]
    # the paper's view: epoch 2 of every repetition
    assert list(c["best_epoch_test_error_mean"]) == pytest.approx([2.5, 4.0, 5.0, 8.0])
    assert list(c["best_epoch_epoch_mean"]) == [2, 2, 2, 2]
    assert list(c["n"]) == [3, 3, 3, 3] and set(c["status"]) == {"complete"}
    assert a.honest == "final_epoch" and a.rank_by == "test_error"


def test_validation_split_selects_the_honest_epoch(tmp_path: Path) -> None:
    # val_error lowest at epoch 1 → the honest epoch is 1 (test = base + scale·seed + 2), ranked on val_error
    root = tmp_path / "out"
    write_experiment(root, "lenet", "screen", [({"aux_loss": True}, metrics(2.0, 1.0)),
                                              ({"aux_loss": False}, metrics(1.0, 1.0))], ["aux_loss"],
                     val=lambda seed, epoch: float(epoch))
    a = analyse(load_results(root).experiments[0])
    assert a.honest == "val_epoch" and a.rank_by == "val_error"
    assert list(a.configs["epoch_mean"]) == [1, 1]
    assert list(a.configs["test_error_mean"]) == pytest.approx([4.0, 5.0])
    assert list(a.configs["best_epoch_epoch_mean"]) == [2, 2]
    t = best_table([a])
    assert list(t.data["view"]) == ["best_epoch", "val_epoch"]


def test_validation_ties_are_broken_by_val_digit_error(tmp_path: Path) -> None:
    # Both configurations have the same val_error (a 200-pair split ties often); the one with the lower
    # val_digit_error ranks first although its label sorts last.
    configs = [({"aux_loss": False}, metrics(2.0, 1.0)), ({"aux_loss": True}, metrics(2.0, 1.0))]
    for folder, first, expected in (("out", 3.0, ["aux_loss=False", "aux_loss=True"]),
                                    ("swapped", 4.0, ["aux_loss=True", "aux_loss=False"])):
        write_experiment(tmp_path / folder, "lenet", "screen", configs, ["aux_loss"], val=lambda seed, epoch: 2.0,
                         val_digit=lambda i, seed, epoch, first=first: first if i == 0 else 7.0 - first)
        a = analyse(load_results(tmp_path / folder).experiments[0])
        assert a.rank_by == "val_error"
        assert list(a.configs["config"]) == expected


def test_partial_runs_flagged_not_mixed(tmp_path: Path) -> None:
    root = tmp_path / "out"
    # config 0: seed 2 stopped at epoch 1 (excluded); config 3: every seed stopped at epoch 2 (reported, flagged)
    short = {(0, 2): 1, (3, 0): 2, (3, 1): 2, (3, 2): 2}
    write_experiment(root, "resnet", "screen", RESNET, ["batch_norm", "channels"], short=short)
    a = analyse(load_results(root).experiments[0])
    c = a.configs.set_index("config")
    first = c.loc["batch_norm=True, channels=16"]
    assert first["n"] == 2 and first["test_error_mean"] == pytest.approx(3.25)  # seeds 0, 1 only
    assert first["status"] == "2/3 seeds complete; 1 partial (1 of 3 epochs, RUNNING, excluded)"
    last = c.loc["batch_norm=False, channels=8"]
    assert last["partial"] and last["status"].startswith("PARTIAL: 0/3 seeds complete; 3 partial (2 of 3")
    assert last["epoch_mean"] == 2 and last["test_error_mean"] == pytest.approx(8.0)  # its last epoch: 2
    assert a.configs.iloc[-1]["config"] == "batch_norm=False, channels=8"  # ranked after complete ones
    out = io.StringIO()
    run_report(root, out=out, figure="none")
    assert "PARTIAL: 0/3 seeds complete" in out.getvalue()


def test_configurations_without_results_are_counted(outputs: Path) -> None:
    meta_path = outputs / "resnet" / "screen" / "search.json"
    meta = json.loads(meta_path.read_text())
    meta["trials"]["pending"] = {"status": "PENDING", "config": {"batch_norm": True, "channels": 4}}
    meta_path.write_text(json.dumps(meta))
    out = io.StringIO()
    run_report(outputs, out=out, figure="none")
    assert "4 of 5 configurations have results (1 without any epoch yet)" in out.getvalue()


def test_paper_view_selects_the_first_epoch_of_lowest_test_digit_error(tmp_path: Path) -> None:
    # As the authors' code: digit error lowest (and tied) at epochs 1 and 3, comparison error lowest at epoch 2.
    # The paper's view reads epoch 1 — the first lowest digit error — not the comparison error's minimum.
    def at(seed: int, epoch: int) -> dict[str, float]:
        return {"train_loss": 1.0, "train_error": 1.0, "test_digit_error": {1: 3.0, 2: 4.0, 3: 3.0}[epoch],
                "test_error": {1: 2.0 + seed, 2: 1.0, 3: 3.0}[epoch]}
    write_experiment(tmp_path / "out", "resnet", "final", [({"channels": 16}, at)], ["channels"])
    a = analyse(load_results(tmp_path / "out").experiments[0])
    c = a.configs.iloc[0]
    assert c["best_epoch_epoch_mean"] == 1 and c["best_epoch_test_error_mean"] == pytest.approx(3.0)
    assert c["best_epoch_test_digit_error_mean"] == pytest.approx(3.0)


def test_paper_view_without_digit_outputs_uses_the_comparison_error(tmp_path: Path) -> None:
    # A strategy without digit logits (e.g. two_channel without them) has no digit error: lowest comparison error.
    def at(seed: int, epoch: int) -> dict[str, float]:
        return {"train_loss": 1.0, "train_error": 1.0, "test_digit_error": math.nan,
                "test_error": {1: 2.0, 2: 1.0, 3: 3.0}[epoch]}
    write_experiment(tmp_path / "out", "resnet", "final", [({"channels": 16}, at)], ["channels"])
    a = analyse(load_results(tmp_path / "out").experiments[0])
    assert a.configs.iloc[0]["best_epoch_epoch_mean"] == 2
