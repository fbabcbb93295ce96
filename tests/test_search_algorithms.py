"""Every registered searcher and scheduler on a real small Ray (2 CPUs, linear net, 40 pairs): repeats under
every searcher (all seeds of a configuration in one trial, one row per seed), choices on a validation split,
HyperOpt, HyperBand, median stopping and Population Based Training. Planning without Ray: test_search_plan.py."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from helpers import make_plan
from tune_digits.tuning import run_search, tracking


pytestmark = pytest.mark.usefixtures("ray_2cpus")
LINEAR = {"nodes": [16, 32, 64], "layers": [1, 2], "dropout": False}


def runs(rows: dict[str, list[dict]]) -> dict[tuple, list[int]]:
    """(trial, seed) → its epochs, in order."""
    out = {}
    for trial, trial_rows in rows.items():
        for r in trial_rows:
            out.setdefault((trial, r["seed"]), []).append(r["epoch"])
    return out


def meta_of(plan) -> dict:
    return json.loads((plan.experiment_dir / "search.json").read_text())


@pytest.mark.parametrize("searcher", ["optuna"])  # random: test_beyond.py::test_random_search_samples_distributions
def test_sampling_searchers_run_every_seed_of_each_configuration(tmp_path, trial_rows, searcher):
    """--reps 3 --num-samples 4: 4 configurations × 3 seeds = 12 runs, all finished; each trial holds the three
    seeds (the searcher sees their mean). Optuna chooses, on the validation split."""
    plan = make_plan(tmp_path, "linear", LINEAR, pairs=40, reps=3, epochs=1, search=searcher, num_samples=4)
    outcome = run_search(plan, progress=False, echo=lambda _: None)
    assert (outcome.trials, outcome.finished, outcome.failed, outcome.interrupted) == (4, 4, 0, False)
    rows = trial_rows(plan.experiment_dir)
    assert len(runs(rows)) == 12 and all(epochs == [1] for epochs in runs(rows).values())
    assert all(sorted(r["seed"] for r in trial_rows_) == [0, 1, 2] for trial_rows_ in rows.values())
    meta = meta_of(plan)
    assert all(e["config"]["seeds"] == [0, 1, 2] and "seed" not in e["config"] for e in meta["trials"].values())
    chooses = searcher == "optuna"
    expected = ("val_error", 0.2) if chooses else ("test_error", None)
    assert (meta["metric"], meta["fixed"].get("val_fraction")) == expected
    assert all((r["val_error"] != "") == chooses for rs in rows.values() for r in rs)
    assert meta["searcher_seed"] == (0 if chooses else None)  # Optuna's TPE is seeded; Tune's random draws are not


def test_hyperopt_with_median_stopping(tmp_path, trial_rows):
    """HyperOpt draws 4 configurations (its TPE seeded); the median rule may stop some after the grace epoch."""
    plan = make_plan(tmp_path, "linear", {**LINEAR, "lr": {"loguniform": [1.0e-5, 1.0e-1]}}, pairs=40, reps=2,
                     epochs=2, search="hyperopt", num_samples=4, scheduler="median",
                     settings={"grace_period": 1, "min_samples": 2})
    outcome = run_search(plan, progress=False, echo=lambda _: None)
    assert (outcome.trials, outcome.finished, outcome.failed) == (4, 4, 0)
    lrs = {e["config"]["lr"] for e in meta_of(plan)["trials"].values()}
    assert len(lrs) == 4 and all(1e-5 <= lr <= 1e-1 for lr in lrs)
    for (trial, seed), epochs in runs(trial_rows(plan.experiment_dir)).items():
        assert epochs == list(range(1, len(epochs) + 1)), (trial, seed)  # stopped or not, nothing lost


def test_hyperband_stops_poor_trials(tmp_path, trial_rows):
    """3 epochs, reduction factor 3: two brackets; the first runs 2 trials to the end, the second 3 trials for
    1 epoch and keeps the best one."""
    plan = make_plan(tmp_path, "linear", {"nodes": 32, "layers": 1, "dropout": False,
                                          "lr": [1.0e-7, 1.0e-6, 1.0e-5, 1.0e-2, 5.0e-2]},
                     pairs=40, reps=1, epochs=3, scheduler="hyperband")
    outcome = run_search(plan, progress=False, echo=lambda _: None)
    assert outcome.failed == 0 and outcome.finished == 5
    lengths = sorted(len(epochs) for epochs in runs(trial_rows(plan.experiment_dir)).values())
    assert lengths == [1, 1, 3, 3, 3]


@pytest.mark.slow
def test_population_based_training_exploits_and_mutates(tmp_path, trial_rows):
    """Synchronous PBT with all four trials at once (half a CPU each): every trial waits at epoch 1 until all
    four are there, then the bottom two continue from a top trial's checkpoint with lr mutated. That happens
    whatever the load; what is random is only which lr the mutation picks (a neighbour in the list, maybe the
    trial's own), so the exploit is read from search.json, which records each one, not from a changed lr.
    The rows say which lr each epoch trained with, and each seed still has every epoch once."""
    plan = make_plan(tmp_path, "linear", {"nodes": 32, "layers": 1, "dropout": False,
                                          "lr": [1.0e-6, 1.0e-5, 1.0e-2, 5.0e-2]},
                     pairs=40, reps=2, epochs=2, scheduler="pbt", cpus_per_trial=0.5,
                     settings={"perturbation_interval": 1, "quantile_fraction": 0.5, "synch": 1})
    outcome = run_search(plan, progress=False, echo=lambda _: None)
    assert (outcome.finished, outcome.failed) == (4, 0)
    rows = trial_rows(plan.experiment_dir)
    for key, epochs in runs(rows).items():
        assert epochs == [1, 2], key
    trials = meta_of(plan)["trials"]
    exploited = {t: e["exploits"] for t, e in trials.items() if e.get("exploits")}
    # At least the bottom half of epoch 1's perturbation; the one at the final epoch may add more (a trial then
    # trains its last epoch again from a donor's earlier state), depending on which checkpoint Tune hands over.
    assert len(exploited) >= 2, "the bottom half continues from the top half"
    for trial, exploits in exploited.items():
        for exploit in exploits:
            assert exploit["trial"] in trials and exploit["trial"] != trial  # another trial's state
            assert 1 <= exploit["epoch"] < exploit["at_epoch"] <= 2
        # (search.json's config of the trial may be a later mutation's: synchronous PBT perturbs at the final
        # epoch too, after which nothing may train; the rows say what each epoch trained with.)
        last = exploits[-1]
        assert {r["lr"] for r in rows[trial] if r["epoch"] >= last["at_epoch"]} == {last["config"]["lr"]}


# ---------------------------------------------------------------------------------------------------
# Experiment tracking (--log), each backend real and local: TensorBoard event files, an MLflow file store,
# W&B in offline mode.


def event_scalars(path: Path) -> dict[str, list[int]]:
    """A TensorBoard event file (TFRecord framing: length, its CRC, an Event proto, its CRC) → tag → steps."""
    from tensorboardX.proto import event_pb2

    data, at, out = path.read_bytes(), 0, {}
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            out.setdefault(value.tag, []).append(event.step)
    return out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy, inside MLflow's store
def test_trackers_record_each_run_tagged_with_its_configuration(tmp_path, monkeypatch):
    """--log tensorboard --log mlflow --log wandb on one configuration × 2 seeds (a grid runs one trial per
    seed): each backend holds 2 runs with every epoch, sharing the configuration's id (W&B's group)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    plan = make_plan(tmp_path, "linear", {"nodes": 16, "layers": 1, "dropout": False}, pairs=40, reps=2,
                     epochs=2, log=("tensorboard", "mlflow", "wandb"))
    outcome = run_search(plan, progress=False, echo=lambda _: None)
    assert (outcome.trials, outcome.finished, outcome.failed) == (2, 2, 0)
    exp = plan.experiment_dir

    events = sorted((exp / "ray").glob("*/events.out.tfevents.*"))
    assert len(events) == 2
    assert all(event_scalars(e)["ray/tune/test_error"] == [1, 2] for e in events)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{exp / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("linear-t").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    config_id = runs[0].data.tags["config_id"]
    assert {r.data.tags["config_id"] for r in runs} == {config_id} and config_id == tracking.config_id(
        {**plan.trial_base(), "seed": 0})
    assert sorted(r.data.tags["seeds"] for r in runs) == ["0", "1"]
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "test_error")] == [1, 2]

    offline = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 2
    deadline = time.time() + 60  # W&B's own process may still be writing the files (a loaded machine)
    while not all(config_id.encode() in f.read_bytes() and b"test_error" in f.read_bytes() for f in offline):
        assert time.time() < deadline, "W&B's offline runs lack the group or the metrics"
        time.sleep(0.5)


def test_a_configuration_id_is_shared_by_its_seeds_only():
    base = {"network": "linear", "nodes": 16, "pairs": 40, "threads": 1}
    same = {tracking.config_id({**base, "seed": s}) for s in range(3)} | {tracking.config_id({**base, "seeds": [0, 1]})}
    assert len(same) == 1 and tracking.config_id({**base, "nodes": 32, "seed": 0}) not in same
    assert tracking.run_tags({**base, "seeds": [0, 1, 2]})["seeds"] == "0,1,2"
