"""Planning a search, without Ray: trial counts, seed grouping, the fingerprint, bad values, the registries
of searchers and schedulers, and the CLI's dry run and one-line errors. See STYLE.md habit 11."""
from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from helpers import LENET_TWO, make_plan, snapshot
from tune_digits.cli import main, search as search_command
from tune_digits.results import ROW_HEAD
from tune_digits.tuning import (
    SCHEDULERS, SEARCHERS, Algorithm, RunOptions, SearchError, Sizes, auto_seeds_per_trial, describe_plan,
    plan_search, register_scheduler, register_searcher,
)
from tune_digits.spaces import apply_overrides, load_space


# ---------------------------------------------------------------------------------------------------
# Planning (no Ray)


def test_plan_counts_trials_and_describes_itself(tmp_path):
    plan = make_plan(tmp_path, "lenet", LENET_TWO)
    assert (plan.combinations, plan.num_trials, plan.seeds) == (2, 4, [0, 1])
    assert plan.experiment_dir == tmp_path.resolve() / "lenet" / "t"
    text = describe_plan(plan)
    assert "grid  kernel_size: [3, 5]" in text and "2 configuration(s) × 2 seed(s) = 4" in text
    # The fingerprint ignores resources but not what the trials are.
    assert make_plan(tmp_path, "lenet", LENET_TWO, cpus_per_trial=2).fingerprint() == plan.fingerprint()
    assert make_plan(tmp_path, "lenet", LENET_TWO, epochs=3).fingerprint() != plan.fingerprint()


def test_plan_groups_seeds_into_trials(tmp_path):
    plan = make_plan(tmp_path, "lenet", LENET_TWO, reps=3, seeds_per_trial=2)
    assert plan.seed_groups == [[0, 1], [2]]
    assert (plan.num_runs, plan.num_trials) == (6, 4)
    assert "= 6 runs in 4 trials of up to 2 seeds" in describe_plan(plan)
    assert make_plan(tmp_path, "lenet", LENET_TWO, reps=3).fingerprint() != plan.fingerprint()
    vectorized = make_plan(tmp_path, "lenet", LENET_TWO, reps=3, seeds_per_trial=9, vectorize=True)
    assert vectorized.seed_groups == [[0, 1, 2]] and "(vectorized)" in describe_plan(vectorized)


@pytest.mark.parametrize("configs, seeds, slots, expected", [
    (16, 3, 2, 3),  # LeNet's screen on 2 CPUs: 16 trials of 3 seeds
    (1, 20, 2, 5),  # a final stage: 4 trials of 5 seeds, two per CPU
    (1, 3, 2, 1),  # AlexNet's screen: grouping would idle a CPU
    (16, 3, 64, 1),  # a cluster with more slots than runs
])
def test_auto_grouping_keeps_every_slot_busy(tmp_path, configs, seeds, slots, expected):
    plan = make_plan(tmp_path, "linear", {"nodes": list(range(1, configs + 1)), "layers": 1, "dropout": False},
                     reps=seeds)
    assert auto_seeds_per_trial(plan, slots) == expected
    # An experiment that started with another grouping keeps it, so that it resumes.
    plan.experiment_dir.mkdir(parents=True)
    (plan.experiment_dir / "search.json").write_text('{"seeds_per_trial": 2, "trials": {}}')
    assert auto_seeds_per_trial(plan, slots) == 2


@pytest.mark.parametrize("kw, words", [
    ({"seeds_per_trial": 0}, "--seeds-per-trial must be at least 1"),
    ({"vectorize": True}, "--vectorize trains the seeds of a trial as one model"),
    ({"search": "random", "num_samples": 2, "reps": 3, "seeds_per_trial": 2}, "--seeds-per-trial must be 1 or all 3"),
    ({"pairs": 0}, "--pairs must be at least 2"),
    ({"reps": 0}, "--reps must be at least 1"),
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"cpus_per_trial": 0}, "--cpus-per-trial must be positive"),
    ({"gpus_per_trial": -1}, "--gpus-per-trial must be a fraction"),
    ({"gpus_per_trial": 1.5}, "--gpus-per-trial must be a fraction"),
    ({"max_concurrent": 0}, "--max-concurrent must be at least 1"),
    ({"stage": "warmup"}, "unknown stage"),
])
def test_plan_rejects_bad_values(tmp_path, kw, words):
    with pytest.raises(SearchError, match=words):
        make_plan(tmp_path, **kw)


@pytest.mark.parametrize("space, groups, fingerprint", [
    ("lenet", {}, "3a716b1370fb2849"),
    ("linear", {"sizes": Sizes(reps=3), "options": RunOptions(seeds_per_trial=2, vectorize=True)}, "7843d03c01712345"),
    # Issue 13 changed what a sampled search runs (all seeds per trial, chosen on a validation split).
    ("resnet", {"algorithm": Algorithm(search="random", num_samples=3, scheduler="asha")}, "7d657df17e423819"),
])
def test_fingerprints_are_those_of_earlier_versions(tmp_path, space, groups, fingerprint):
    """An experiment started by an earlier tune-digits resumes: the screens' fingerprints as it wrote them
    (a plain grid's unchanged since the first version)."""
    assert plan_search(load_space(space), stage="screen", output=tmp_path, **groups).fingerprint() == fingerprint


def test_final_stage_takes_the_best_in_the_results_option_names(tmp_path):
    """The report names options as today's results do (`side_loss_weight`); a space may still use the old name."""
    space = apply_overrides(load_space("lenet"), {"side_loss_weight": [0.1, 0.3]})
    best = {**space.best, "side_loss_weight": 0.3}
    plan = plan_search(space, stage="final", best=best, output=tmp_path)
    assert plan.grid["side_loss_weight"] == [0.3] and plan.num_trials == 20
    with pytest.raises(SearchError, match="needs the best value of side_loss_weight"):
        plan_search(space, stage="final", best=space.best, output=tmp_path)


# ---------------------------------------------------------------------------------------------------
# The registries of searchers and schedulers


def test_cli_choices_and_help_come_from_the_registries():
    params = {p.name: p for p in search_command.params}
    assert list(params["searcher"].type.choices) == list(SEARCHERS) == ["grid", "random", "optuna", "hyperopt", "race"]
    assert list(params["scheduler"].type.choices) == list(SCHEDULERS) == ["fifo", "asha", "hyperband", "median", "pbt"]
    boxed = CliRunner().invoke(main, ["search", "--help"]).stdout
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", boxed).split())  # the help's panels are boxes
    for spec in [*SEARCHERS.values(), *SCHEDULERS.values()]:
        assert f"{spec.name}: {spec.description}" in text


@pytest.fixture
def registered():
    """Registers entries for one test and removes them after it (`registered(table, name)` to clean up)."""
    added = []
    yield lambda table, name: added.append((table, name))
    for table, name in added:
        table.pop(name, None)


def test_a_registered_searcher_and_scheduler_are_usable_in_a_plan(tmp_path, registered):
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    from tune_digits.tuning.algorithms import param_space, tune_config

    made = {}

    @register_searcher("draws", needs_metric=True)
    def draws(plan):
        """NUM_SAMPLES draws from a test's generator"""
        return made.setdefault("searcher", BasicVariantGenerator())

    @register_scheduler("patient", stops_early=True)
    def patient(plan):
        """a test's scheduler"""
        return made.setdefault("scheduler", FIFOScheduler())

    registered(SEARCHERS, "draws")
    registered(SCHEDULERS, "patient")
    plan = make_plan(tmp_path, search="draws", num_samples=3, scheduler="patient")
    assert plan.combinations == 3  # it samples: NUM_SAMPLES configurations
    assert "draws/patient choose on it" in describe_plan(plan)
    config = tune_config(plan)
    assert config.search_alg is made["searcher"] and config.scheduler is made["scheduler"]
    assert (config.metric, config.mode, config.num_samples) == ("val_error", "min", 3)
    space = param_space(plan)
    # Configurations are sampled, not crossed; the seeds are never sampled: all in each trial.
    assert space["nodes"].categories == [16, 32] and space["seeds"] == [0, 1] and "seed" not in space
    with pytest.raises(SearchError, match="--search draws --scheduler fifo sees one number per configuration"):
        make_plan(tmp_path, search="draws", num_samples=3, seeds_per_trial=2, reps=3)


def test_grid_crosses_its_lists_and_unknown_names_list_the_registry(tmp_path):
    from tune_digits.tuning.algorithms import param_space, tune_config

    plan = make_plan(tmp_path)
    assert param_space(plan)["nodes"] == {"grid_search": [16, 32]}
    config = tune_config(plan)
    assert config.search_alg is None and config.scheduler is None and config.metric is None
    with pytest.raises(SearchError, match="unknown search 'bayes'; use one of grid, random, optuna, hyperopt"):
        Algorithm(search="bayes")
    with pytest.raises(SearchError, match="unknown scheduler 'bohb'; use one of fifo, asha, hyperband, median, pbt"):
        Algorithm(scheduler="bohb")


# ---------------------------------------------------------------------------------------------------
# What stays light, and the callbacks' pickle


def test_cli_and_planning_import_neither_torch_nor_ray():
    """`--help` and a dry run's planning stay fast: Ray comes only with a run, torch only with a space."""
    code = ("import sys, tune_digits.cli, tune_digits.tuning, tune_digits.tuning.algorithms; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_callbacks_pickle_as_their_experiment_folder(tmp_path):
    """Tune pickles the callbacks with the experiment and restores those copies: they carry only the folder
    and find the running search's session through it (also after the folder moved)."""
    from tune_digits.tuning.live import Session, running, session_for
    from tune_digits.tuning.progress import Progress
    from tune_digits.tuning.writer import ResultWriter

    plan = make_plan(tmp_path)
    session = Session(plan, {"trials": {}})
    for callback in (ResultWriter(str(plan.experiment_dir)), Progress(str(plan.experiment_dir))):
        callback.epochs_done = callback.last_epoch = {"x": 1}
        restored = pickle.loads(pickle.dumps(callback))
        assert vars(restored).get("last_epoch", {}) == vars(restored).get("epochs_done", {}) == {}
        with pytest.raises(RuntimeError, match="no running search"):
            restored.session
        with running(session):
            assert restored.session is session
            assert session_for("/elsewhere/lenet/t") is session  # the one live search
    with running(session), running(Session(make_plan(tmp_path, name="u"), {})):
        with pytest.raises(RuntimeError, match="no running search for /elsewhere"):
            session_for("/elsewhere/lenet/t")


# What Ray 2.60 writes to a trial's error file when its node dies under it (from a run of test_scaleout.py).
NODE_LOSS = """Failure # {n} (occurred at 2026-12-04_01-16-02)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: e09ac30779449b4cc976103d01000000
\tip: 192.0.2.2
The actor died because its node has died. Node Id: 10c750fca01b0ff50968e7a692717f8c176ad69973e908ec32b48014
\tthe actor's node was terminated unexpectedly: health check failed due to missing too many heartbeats
"""
CODE_FAULT = """Failure # {n} (occurred at 2026-12-04_01-17-00)
ray::ImplicitFunc.train() (pid=10412, ip=192.0.2.2, actor_id=e09ac30779449b4cc976103d01000000)
RuntimeError: injected fault (seed 1, epoch 2)
"""


def test_a_trial_lost_with_its_node_keeps_its_retries(tmp_path):
    """Tune counts every failure against --max-failures, and one lost node can count twice (each call in flight
    fails): the writer hands a node loss back when the trial is retried; a failure of the trial's code stays
    counted. Each is judged by the newest failure in the error file."""
    from types import SimpleNamespace

    from tune_digits.tuning.live import Session, running
    from tune_digits.tuning.writer import ResultWriter, lost_with_node

    plan = make_plan(tmp_path)
    plan.experiment_dir.mkdir(parents=True)
    errors = tmp_path / "error.txt"
    trial = SimpleNamespace(trial_id="t1", error_file=str(errors), config={"seed": 0},
                            run_metadata=SimpleNamespace(num_failures=0))
    writer = ResultWriter(str(plan.experiment_dir))
    session = Session(plan, {"trials": {}})
    counts = []
    with running(session):
        for n, text in enumerate([NODE_LOSS, NODE_LOSS, CODE_FAULT, NODE_LOSS], start=1):
            with errors.open("a") as f:
                f.write(text.format(n=n))
            trial.run_metadata.num_failures += 1  # Tune's count, before it calls back
            writer.on_trial_recover(0, [], trial)
            counts.append(trial.run_metadata.num_failures)
    assert counts == [0, 0, 1, 1]
    entry = json.loads((plan.experiment_dir / "search.json").read_text())["trials"]["t1"]
    assert entry["node_losses"] == 3 and entry["status"] == "PENDING"
    assert entry["error"].startswith("retrying after: the actor's node was terminated unexpectedly")
    assert not lost_with_node(CODE_FAULT) and lost_with_node(NODE_LOSS)
    # A worker killed alone (out of memory, say) is the trial's own failure: its node lives on.
    assert not lost_with_node("The actor died unexpectedly before finishing this task.\n\tclass_name: "
                              "ImplicitFunc\nWorker exit type: SYSTEM_ERROR Worker exit detail: killed by OOM")


def test_reproduce_only_takes_the_papers_networks():
    result = CliRunner().invoke(main, ["reproduce", "--only", "vgg"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --only vgg: not one of the paper's networks (linear, lenet, resnet, alexnet)"]


# ---------------------------------------------------------------------------------------------------
# The CLI and bad input: one `error:` line, exit 1, no traceback, nothing in the output folder touched.


@pytest.fixture
def existing_results(tmp_path):
    """An output folder that already holds an experiment, lenet/default (what a bad command must not touch)."""
    exp = tmp_path / "out" / "lenet" / "default"
    (exp / "trials").mkdir(parents=True)
    (exp / "search.json").write_text(json.dumps({"arch": "lenet", "name": "default", "trials": {}}))
    (exp / "trials" / "x_00000.csv").write_text(",".join(ROW_HEAD) + "\n")
    (exp / "epochs.csv").write_text(",".join(ROW_HEAD) + "\n")
    return tmp_path / "out"


BAD = [
    (["vgg"], "unknown search space 'vgg'"),
    (["{bad_yaml}"], "not valid YAML"),
    (["{tmp}/missing.yaml"], "no such search-space file"),
    (["lenet", "--set", "kernel_size"], "expected key=value, got 'kernel_size'"),
    (["lenet", "--set", "kernel_size=[3, 5"], "cannot read the value of 'kernel_size=[3, 5'"),
    (["lenet", "--set", "kernel_size=[4]"], "grid.kernel_size: kernel_size must be one of [3, 5], got 4"),
    (["lenet", "--set", "seed=3"], "--set seed: use --reps"),
    (["lenet", "--set", "lr=fast"], "lr must be a number, got 'fast'"),
    (["lenet", "--pairs", "0"], "--pairs must be at least 2"),
    (["lenet", "--reps", "0"], "--reps must be at least 1"),
    (["lenet", "--gpus-per-trial", "-1"], "--gpus-per-trial must be a fraction in (0, 1] or a whole number, got -1"),
    (["lenet", "--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
    (["lenet", "--vectorize"], "--vectorize trains the seeds of a trial as one model"),
    (["lenet", "--seeds-per-trial", "0"], "--seeds-per-trial must be at least 1"),
    (["lenet", "--search", "race", "--race", "first=1"], "--race first=1: the first test needs at least 2 seeds"),
    (["lenet", "--search", "race", "--race", "alpha=2"], "--race alpha=2: a significance level is between 0 and 1"),
    (["lenet", "--search", "race", "--race", "budget=0"], "--race budget=0: a budget is at least 1 run"),
    (["lenet", "--search", "race", "--race", "first=abc"], "--race first=abc: expected a whole number"),
    (["lenet", "--search", "race", "--race", "first=2.5"], "--race first=2.5: expected a whole number"),
    (["lenet", "--search", "race", "--race", "alpha=x"], "--race alpha=x: expected a number"),
    (["lenet", "--search", "race", "--race", "rounds=3"], "has no setting rounds; its settings: none (--search race's"),
    (["lenet", "--search", "race", "--scheduler", "asha"], "--search race compares runs that ran every epoch"),
    (["lenet", "--search", "race", "--reps", "3", "--seeds-per-trial", "3"], "--seeds-per-trial 2 at most"),
    (["lenet", "--search", "race", "--reps", "3", "--seeds-per-trial", "2", "--vectorize"], "without --vectorize"),
    (["lenet", "--search", "race", "--set", "lr={{uniform: [0.01, 0.1]}}"], "a distribution axis cannot be raced"),
]


@pytest.mark.parametrize("args, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_cli_bad_input_is_one_error_line(tmp_path, existing_results, args, words):
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("network: lenet\ngrid: {kernel_size: [3, 5}\n")
    args = [a.format(bad_yaml=bad_yaml, tmp=tmp_path) for a in args]
    before = snapshot(existing_results)
    result = CliRunner().invoke(main, ["search", *args, "--output", str(existing_results)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and words in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert snapshot(existing_results) == before


def test_cli_output_that_cannot_be_a_folder_is_one_error_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(main, ["search", "lenet", "--output", str(tmp_path / "file" / "out")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr.startswith("error: cannot write the results under ") and "Traceback" not in result.output


def test_cli_reads_exponent_floats_as_numbers(existing_results):
    """On the command line `1e-3` is a number, though PyYAML (YAML 1.1) alone reads it as text."""
    result = CliRunner().invoke(main, ["search", "lenet", "--set", "lr=1e-3", "--set", "weight_decay=[1e-4, 5e-4]",
                                       "--dry-run", "--output", str(existing_results)])
    assert result.exit_code == 0, result.output
    assert "fixed lr: 0.001" in result.output and "grid  weight_decay: [0.0001, 0.0005]" in result.output


def test_cli_dry_run_runs_nothing(existing_results):
    before = snapshot(existing_results)
    result = CliRunner().invoke(main, ["search", "resnet", "--reps", "2", "--set", "blocks=[1, 2]", "--dry-run",
                                       "--output", str(existing_results)])
    assert result.exit_code == 0, result.output
    assert "trials: 120 configuration(s) × 2 seed(s) = 240" in result.stdout
    assert snapshot(existing_results) == before
    assert not (existing_results / "resnet").exists()


def test_cli_spaces_lists_grid_sizes():
    result = CliRunner().invoke(main, ["spaces"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    for name, size in {"linear": 40, "lenet": 16, "resnet": 300, "alexnet": 1}.items():
        assert f" {size} " in lines[name]
    assert "screen 350×3 → 48" in lines["lenet"] and lines["lenet"].endswith("shipped")
    assert "final 1000×20 → 20" in lines["lenet"]


def test_a_race_plans_one_trial_per_configuration_and_seed(tmp_path):
    """A race's trials are (configuration, seed) runs it hands out itself: Tune gets no grid, a trial per run
    at most, and --dry-run says the rounds and the fewest and most runs."""
    from tune_digits.tuning.algorithms import param_space, tune_config

    plan = make_plan(tmp_path, "lenet", LENET_TWO, reps=5, search="race", settings={"first": 3, "budget": 9})
    assert (plan.combinations, plan.num_runs, plan.options.seeds_per_trial) == (2, 10, 1)
    assert param_space(plan) == plan.trial_base()  # no axis, no seed: the searcher gives both
    config = tune_config(plan)
    assert config.num_samples == 10 and config.metric == "val_error" and config.mode == "min"
    dry = describe_plan(plan)
    assert "race: 3 seed(s) per configuration" in dry and "up to 5, ranked on val_error" in dry
    assert "runs: at least 6 (every configuration's first seeds), at most 9 (budget 9)" in dry
