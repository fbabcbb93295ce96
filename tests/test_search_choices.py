"""What chooses and on which data, planned without Ray: the validation split given to adaptive searches,
--metric test_error's warning, the dry run's metric line, a space's search: block under the flags, and the
bad input of those options (each one line and a non-zero exit at plan time). Runs on Ray: test_search_algorithms.py."""
from __future__ import annotations

import copy
import importlib.util
import json

import pytest
from click.testing import CliRunner

from helpers import LINEAR_TWO, make_plan
from tune_digits.cli import main
from tune_digits.tuning import SearchError, Sizes, describe_plan, plan_search
from tune_digits.tuning.trainable import _newest
from tune_digits.spaces import SpaceError, load_space


@pytest.mark.parametrize("options, metric, val_fraction", [
    ({}, "test_error", None),  # the paper's grid: nothing chooses while it runs
    ({"search": "random", "num_samples": 2}, "test_error", None),  # blind draws, ranked afterwards like a grid
    ({"search": "optuna", "num_samples": 2}, "val_error", 0.2),
    ({"search": "hyperopt", "num_samples": 2}, "val_error", 0.2),
    ({"scheduler": "asha"}, "val_error", 0.2),
    ({"metric": "val_error"}, "val_error", 0.2),  # a grid asked to rank on validation gets a split
])
def test_choices_are_made_on_a_validation_split(tmp_path, options, metric, val_fraction):
    plan = make_plan(tmp_path, **options)
    assert plan.metric == metric and plan.fixed.get("val_fraction") == val_fraction and not plan.warnings
    line = next(x for x in describe_plan(plan).splitlines() if x.startswith("metric: "))
    assert line.startswith(f"metric: {metric}")
    assert ("validation split, 20% of each trial's training pairs" in line) == (val_fraction is not None)
    assert ("the paper's rule" in line) == (metric == "test_error")


def test_a_space_with_its_own_split_keeps_it_and_test_error_is_a_warned_choice(tmp_path):
    own = make_plan(tmp_path, "linear", {**LINEAR_TWO, "val_fraction": 0.25}, scheduler="median")
    assert (own.metric, own.fixed["val_fraction"]) == ("val_error", 0.25)
    on_test = make_plan(tmp_path, search="optuna", num_samples=2, metric="test_error")
    assert on_test.metric == "test_error" and "val_fraction" not in on_test.fixed
    assert "choosing on the test set" in on_test.warnings[0]
    result = CliRunner().invoke(main, ["search", "linear", "--search", "optuna", "--num-samples", "2", "--metric",
                                       "test_error", "--dry-run", "--output", str(tmp_path)])
    assert result.exit_code == 0 and "warning: choosing on the test set" in result.stderr
    assert "metric: test_error, minimised (test split)" in result.stdout


def test_the_final_stage_says_how_the_screen_ranked_its_winner(tmp_path):
    space = load_space("linear")
    best = dict(space.best)
    for fixed, words in (({"val_fraction": 0.2}, "ranked on val_error (its validation split)"),
                         ({}, "ranked on test_error: the paper's rule")):
        screen = tmp_path / "linear" / "screen"
        screen.mkdir(parents=True, exist_ok=True)
        (screen / "search.json").write_text(json.dumps({"format_version": 2, "fixed": fixed, "grid": {}, "trials": {}}))
        plan = plan_search(space, stage="final", best=best, output=tmp_path)
        assert any(words in note for note in plan.notes)


def test_a_search_block_sets_the_defaults_and_flags_override_it(tmp_path):
    path = tmp_path / "swept.yaml"
    path.write_text("network: linear\nfixed: {layers: 1, dropout: false}\ngrid:\n  nodes: [16, 32]\n"
                    "  lr: {loguniform: [1.0e-3, 1.0e-1]}\nsearch:\n  method: optuna\n  samples: 5\n"
                    "  scheduler: {name: asha, grace_period: 2}\n")
    space = load_space(str(path))
    plan = plan_search(space, output=tmp_path)
    alg = plan.algorithm
    assert (alg.search, alg.num_samples, alg.scheduler, alg.settings) == ("optuna", 5, "asha", {"grace_period": 2})
    assert plan.metric == "val_error"
    from tune_digits.tuning.algorithms import tune_config

    assert min(t for t, _ in tune_config(plan).scheduler._brackets[0]._rungs) == 2  # the first rung: grace period
    from tune_digits.tuning import Algorithm

    flags = plan_search(space, output=tmp_path, algorithm=Algorithm(search="random", num_samples=3, scheduler="median"))
    alg = flags.algorithm
    assert (alg.search, alg.num_samples, alg.scheduler, alg.settings) == ("random", 3, "median", {})
    from tune_digits.spaces import apply_overrides

    assert apply_overrides(space, {"lr": 0.01}).search == space.search  # --set keeps the block


def test_a_search_block_races_with_its_settings_and_race_flags_override_them(tmp_path):
    from tune_digits.tuning import Algorithm

    path = tmp_path / "raced.yaml"
    path.write_text("network: linear\ngrid: {nodes: [16, 32, 64]}\n"
                    "search:\n  method: race\n  race: {first: 3, alpha: 0.1, budget: 20}\n")
    space = load_space(str(path))
    plan = plan_search(space, output=tmp_path, sizes=Sizes(reps=5))
    assert plan.algorithm.search == "race" and plan.metric == "val_error"
    assert plan.algorithm.settings == {"first": 3, "alpha": 0.1, "budget": 20}
    assert "race: 3 seed(s) per configuration" in describe_plan(plan) and "(alpha 0.1)" in describe_plan(plan)
    flags = plan_search(space, output=tmp_path, sizes=Sizes(reps=5), algorithm=Algorithm(settings={"first": 2}))
    assert flags.algorithm.settings == {"first": 2, "alpha": 0.1, "budget": 20}
    grid = plan_search(space, output=tmp_path, algorithm=Algorithm(search="grid"))
    assert grid.algorithm.settings == {}  # --search grid: the block's race settings do not apply


@pytest.mark.parametrize("block, words", [
    ("{method: annealing, samples: 2}", "unknown search 'annealing'"),
    ("{samples: two}", "search.samples: must be a positive integer"),
    ("{metric: accuracy}", "unknown metric 'accuracy'"),
    ("{scheduler: {name: asha, patience: 3}}", "scheduler asha has no setting patience"),
    ("{scheduler: {grace_period: 3}}", "search.scheduler.name: missing"),
    ("{budget: 3}", "search.budget: unknown key"),
    ("{method: race, race: {first: 1}}", "first=1: the first test needs at least 2 seeds"),
    ("{method: race, race: {rounds: 3}}", "no setting rounds.*race's: first, alpha, budget"),
    ("{method: race, race: {alpha: high}}", "search.race.alpha: must be a number"),
    ("{method: race, race: 2}", "search.race: must be a mapping"),
])
def test_a_bad_search_block_is_one_line_naming_the_file(tmp_path, block, words):
    path = tmp_path / "bad.yaml"
    path.write_text(f"network: linear\ngrid: {{nodes: [16, 32]}}\nsearch: {block}\n")
    with pytest.raises((SearchError, SpaceError), match=words):
        plan_search(load_space(str(path)), output=tmp_path)


def test_adopting_a_snapshot_takes_this_configs_lr_and_weight_decay():
    """PBT's exploit: another trial's optimiser state, this trial's mutated values; the cosine schedule goes on
    from where it was, scaled; the same values change nothing."""
    import torch

    from tune_digits.train import InTurn, TrainConfig

    def engine(lr, wd):
        config = TrainConfig(network="linear", lr=lr, weight_decay=wd, epochs=4, lr_schedule="cosine")
        return InTurn([config], torch.device("cpu"))

    donor = engine(0.1, 0.0)
    donor.end_epoch()  # one epoch of the cosine schedule: lr = 0.1 · (1 + cos(π/4)) / 2
    state = donor.state_dict()
    taker = engine(0.05, 1.0e-3)
    taker.load_state_dict(copy.deepcopy(state))  # as from a checkpoint file: its own copy
    group = taker.optimizers[0].param_groups[0]
    assert group["lr"] == pytest.approx(donor.optimizers[0].param_groups[0]["lr"] / 2)
    assert group["weight_decay"] == 1.0e-3 and taker.schedulers[0].base_lrs == [0.05]
    taker.end_epoch()
    assert group["lr"] == pytest.approx(0.05 * (1 + torch.cos(torch.tensor(torch.pi / 2)).item()) / 2)
    same = engine(0.1, 0.0)
    same.load_state_dict(copy.deepcopy(state))
    assert same.optimizers[0].param_groups[0]["lr"] == donor.optimizers[0].param_groups[0]["lr"]


# ---------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit 1, caught by the dry run


def _missing(monkeypatch, package: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))


@pytest.mark.parametrize("args, words, missing", [
    (["--pairs", "100000"], "--pairs must be at most 30,000: MNIST's train split has 60,000 digits", None),
    (["--pairs", "6000"], "6,000 test pairs need 12,000 digits but MNIST's test split has 10,000", None),
    (["--set", "test_pairs=5001"], "5,001 test pairs need 10,002 digits", None),
    (["--search", "random"], "--search random draws configurations: say how many with --num-samples N", None),
    (["--search", "optuna"], "--search optuna draws configurations", None),
    (["--log", "neptune"], "unknown --log 'neptune'; use one of tensorboard, mlflow, wandb", None),
    (["--log", "mlflow"], "--log mlflow needs mlflow: pip install -c constraints.txt 'tune-digits[tracking]'",
     "mlflow"),
    (["--search", "hyperopt", "--num-samples", "2"], "needs hyperopt: pip install -c constraints.txt "
                                                     "'tune-digits[hyperopt]'", "hyperopt"),
    (["--scheduler", "pbt"], "--scheduler pbt mutates lr or weight_decay, and neither is a grid axis", None),
])
def test_bad_input_is_one_line_at_plan_time(tmp_path, monkeypatch, args, words, missing):
    if missing:
        _missing(monkeypatch, missing)
    result = CliRunner().invoke(main, ["search", "linear", *args, "--dry-run", "--output", str(tmp_path)])
    assert result.exit_code == 1 and words in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_test_pairs_within_the_test_split_allow_more_train_pairs(tmp_path):
    result = CliRunner().invoke(main, ["search", "linear", "--pairs", "20000", "--set", "test_pairs=5000",
                                       "--dry-run", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_an_exploit_continues_from_the_handed_state_even_when_the_trials_own_is_later():
    """Under load a PBT trial may save its own epoch 2 before Tune pauses it at epoch 1's perturbation; the
    exploit's checkpoint (another run's, epoch 1) must still win, or the exploit is silently dropped and the
    trial's earlier rows are rewritten under the mutated lr."""
    own = {"state": {"epoch": 2}, "run": "a", "trial": "t1", "reports": []}
    donor = {"state": {"epoch": 1}, "run": "b", "trial": "t2", "reports": []}
    assert _newest(own, donor, "a", "t1") == (donor, True)
    # The mutation made this trial the donor's run again (a list's value shifted onto the donor's own): still
    # an exploit, from another trial, not a restore of this one.
    assert _newest(own, {**donor, "run": "a"}, "a", "t1") == ({**donor, "run": "a"}, True)
    assert _newest(own, {**donor, "run": "a", "trial": "t1"}, "a", "t1") == (own, False)  # a plain restore
    assert _newest(None, donor, "a", "t1") == (donor, True) and _newest(own, None, "a", "t1") == (own, False)
    old = {"state": {"epoch": 1}, "run": "a", "reports": []}  # saved before checkpoints named their trial
    assert _newest(own, old, "a", "t1") == (own, False)


def test_a_single_configuration_is_not_raced_it_runs_every_seed(tmp_path):
    """A space whose search: block races still runs its final stage's 20 seeds: one configuration has nothing
    to race (a race would stop after its first seeds)."""
    path = tmp_path / "raced.yaml"
    path.write_text("network: linear\ngrid: {nodes: [16, 32]}\nbest: {nodes: 32}\n"
                    "stages: {screen: {pairs: 20, seeds: 3}, final: {pairs: 40, seeds: 20}}\n"
                    "search: {method: race, race: {first: 2}}\n")
    space = load_space(str(path))
    assert plan_search(space, stage="screen", output=tmp_path).algorithm.search == "race"
    final = plan_search(space, stage="final", output=tmp_path)
    assert (final.algorithm.search, final.num_runs, final.num_trials) == ("grid", 20, 20)
    assert any("nothing to race" in note for note in final.notes) and "race:" not in describe_plan(final)
