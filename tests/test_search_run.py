"""`tune-digits search` on a real (small) Ray: the tidy tables, fractional-GPU packing, the CPU fallback,
resuming (finished, interrupted and errored trials; restored callbacks), and a registered searcher at work.
Tiny grids on a few dozen pairs; see STYLE.md habit 11. Planning and the CLI's bad input: test_search_plan.py."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import threading

import pytest
from click.testing import CliRunner

from helpers import (FAULT_SEED, LENET_TWO, LINEAR_TWO, ROOT, check_complete, local_ray_session, make_plan,
                     run_interrupted, snapshot, statuses)
from tune_digits.cli import main
from tune_digits.results import FORMAT_VERSION, ROW_HEAD
from tune_digits.tuning import SearchError, run_search
from tune_digits.tuning.racer import configurations


def untimed(rows: list[dict]) -> list[dict]:
    """Rows without the columns that say when and where they ran: what a seeded rerun reproduces."""
    return [{k: v for k, v in r.items() if k not in ("time_s", "wall_time", "node")} for r in rows]


# ---------------------------------------------------------------------------------------------------
# A local Ray without GPUs: 2 CPUs, the fault hook armed for seed FAULT_SEED (budget 0 unless a test
# allows some), and a short sleep after each epoch so a search lasts long enough to be interrupted.


@pytest.fixture(scope="class")
def local_ray(ray_tmpdir, faults):
    with local_ray_session(2, 0, faults.env(delay=0.2)):
        yield


@pytest.mark.usefixtures("local_ray")
class TestLocalRay:
    @pytest.fixture(autouse=True)
    def _no_faults(self, faults):
        faults.allow(0)
        yield
        faults.allow(0)

    @pytest.mark.slow
    def test_tiny_grid_end_to_end(self, tmp_path, trial_rows):
        plan = make_plan(tmp_path, "lenet", LENET_TWO)
        outcome = run_search(plan, progress=False, echo=lambda _: None)
        exp = plan.experiment_dir
        assert (outcome.trials, outcome.finished, outcome.failed) == (4, 4, 0)
        assert not outcome.interrupted and not outcome.resumed and outcome.experiment_dir == exp

        meta = json.loads((exp / "search.json").read_text())
        assert meta["space"] == meta["network"] == "lenet" and meta["format_version"] == FORMAT_VERSION
        assert meta["name"] == "t" and meta["num_trials"] == 4 and "arch" not in meta
        assert meta["axes"] == ["kernel_size"] and meta["seeds"] == [0, 1] and meta["finished"]
        assert meta["fixed"]["pairs"] == 20 and meta["fixed"]["epochs"] == 2 and meta["fixed"]["network"] == "lenet"
        assert set(statuses(exp).values()) == {"TERMINATED"} and len(meta["trials"]) == 4
        assert meta["machine"]["ray_cpus"] == 2 and meta["machine"]["ray_nodes"] == 1
        # Tune's own loggers stay off (the tidy tables are ours), and only for the search's duration.
        assert not list((exp / "ray").glob("*/progress.csv")) and not list((exp / "ray").glob("*/result.json"))
        assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
        assert meta["versions"]["torch"] and meta["versions"]["numpy"] and meta["command"] is not None
        # Provenance names no folder of this machine; the code is the checkout's commit, dirty or not.
        text = (exp / "search.json").read_text()
        assert str(tmp_path) not in text and str(ROOT) not in text and meta["ray_path"] == "ray"
        assert (meta["space_file"], meta["space_origin"]) == ("tune_digits/search_spaces/lenet.yaml", "shipped")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert meta["code"]["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
        assert meta["code"]["git_dirty"] in ((True, False) if head.returncode == 0 else (None,))

        rows = trial_rows(exp)
        check_complete(rows, trials=4, epochs=2)
        assert set(rows) == set(meta["trials"])
        header = next(csv.reader((exp / "epochs.csv").open()))
        assert tuple(header[:len(ROW_HEAD)]) == ROW_HEAD
        assert {"network", "pairs", "epochs", "kernel_size", "batch_norm", "lr"} <= set(header)
        assert "threads" not in header
        # One trial per (configuration, seed).
        assert sorted((r[0]["kernel_size"], r[0]["seed"]) for r in rows.values()) == [(3, 0), (3, 1), (5, 0), (5, 1)]
        for trial_rows_ in rows.values():
            for r in trial_rows_:
                assert all(0 <= r[m] <= 100 for m in ("train_error", "test_digit_error", "test_error"))
                assert r["val_error"] == "" and r["train_loss"] > 0 and r["node"]
            assert trial_rows_[0]["wall_time"] <= trial_rows_[1]["wall_time"]

        with (exp / "epochs.csv").open(newline="") as f:
            everything = list(csv.DictReader(f))
        assert len(everything) == 4 * 2  # combinations × seeds × epochs
        assert [(r["trial_id"], r["epoch"]) for r in everything] == sorted(
            (t, str(r["epoch"])) for t, rs in rows.items() for r in rs)

        from tune_digits.report import top_configurations

        assert "kernel_size" in top_configurations(exp, "lenet")

    @pytest.mark.slow
    def test_grouped_trials_write_what_one_seed_per_trial_writes(self, tmp_path, trial_rows):
        """--seeds-per-trial 2: half the Ray trials, each seed's rows identical to its own trial's."""
        def by_run(exp):
            rows = [r for rs in trial_rows(exp).values() for r in rs]
            return {(r["kernel_size"], r["seed"], r["epoch"]): untimed([r])[0] | {"trial_id": None} for r in rows}

        single = make_plan(tmp_path, "lenet", LENET_TWO, name="single")
        grouped = make_plan(tmp_path, "lenet", LENET_TWO, name="grouped", seeds_per_trial=2)
        run_search(single, progress=False, echo=lambda _: None)
        outcome = run_search(grouped, progress=False, echo=lambda _: None)
        assert (outcome.trials, outcome.finished, outcome.failed) == (2, 2, 0)
        rows = trial_rows(grouped.experiment_dir)
        assert len(rows) == 2 and all(len(r) == 2 * 2 for r in rows.values())  # 2 seeds × 2 epochs each
        assert by_run(grouped.experiment_dir) == by_run(single.experiment_dir)
        meta = json.loads((grouped.experiment_dir / "search.json").read_text())
        assert meta["seeds_per_trial"] == 2 and meta["num_trials"] == 2
        assert all(e["config"]["seeds"] == [0, 1] for e in meta["trials"].values())

        from tune_digits.report import top_configurations

        assert " 2 " in top_configurations(grouped.experiment_dir, "lenet")  # n = 2 seeds per configuration

    @pytest.mark.slow
    def test_vectorized_grouped_trial_resumes_after_a_crash(self, tmp_path, faults, trial_rows):
        """A vectorized trial holding FAULT_SEED crashes in epoch 2 and is retried from its epoch-1 checkpoint:
        every seed ends with each epoch once, with the numbers of a run that never crashed."""
        def runs(exp):
            out = {}
            for r in (r for rs in trial_rows(exp).values() for r in rs):
                out.setdefault((r["nodes"], r["seed"]), []).append(r)
            return out

        clean = make_plan(tmp_path, reps=2, seeds_per_trial=2, vectorize=True, name="clean")
        run_search(clean, progress=False, echo=lambda _: None)
        plan = make_plan(tmp_path, reps=2, seeds_per_trial=2, vectorize=True, max_failures=1)
        faults.allow(1)
        outcome = run_search(plan, progress=False, echo=lambda _: None)
        assert faults.spent() == 1 and (outcome.finished, outcome.failed) == (2, 0)
        crashed, expected = runs(plan.experiment_dir), runs(clean.experiment_dir)
        assert sorted(crashed) == sorted(expected) and len(crashed) == 4
        for key, rows in crashed.items():
            assert [r["epoch"] for r in rows] == [1, 2], key
            assert [{**r, "trial_id": 0} for r in untimed(rows)] == \
                [{**r, "trial_id": 0} for r in untimed(expected[key])], key

    @pytest.mark.slow
    @pytest.mark.parametrize("screen", [None, "grid"], ids=["raced-by-default", "grid"])
    def test_reproduce_groups_seeds_and_resumes(self, tmp_path, monkeypatch, trial_rows, screen):
        """The protocol end to end on a tiny profile: screen (2 configurations × 4 seeds on 2 CPUs; the grid's
        seeds grouped in pairs, the race's first round), the screen's best to the final stage, the report; a
        rerun resumes, trains nothing."""
        import tune_digits.reproduce as reproduce

        monkeypatch.setattr(reproduce, "QUICK_STAGES", {"screen": {"pairs": 20, "reps": 4, "epochs": 1},
                                                        "final": {"pairs": 20, "reps": 2, "epochs": 2}})
        monkeypatch.setattr(reproduce, "QUICK_GRIDS", {"linear": LINEAR_TWO})
        said = []
        outcomes = reproduce.reproduce(tmp_path, spaces=("linear",), quick=True, echo=said.append, screen=screen)
        screen_meta = json.loads((tmp_path / "linear" / "screen" / "search.json").read_text())
        assert screen_meta["seeds_per_trial"] == 2
        runs = {(r["nodes"], r["seed"]) for rs in trial_rows(tmp_path / "linear" / "screen").values() for r in rs}
        if screen == "grid":
            assert [(o.trials, o.finished, o.failed) for o in outcomes] == [(4, 4, 0), (2, 2, 0)]
            assert "== linear screen: 8 runs (2 configuration(s) × 4 seed(s), 20 pairs, 1 epochs, fp32) in 4 " \
                   "trials" in said[0]
            assert runs == {(n, s) for n in (16, 32) for s in range(4)} and screen_meta["metric"] == "test_error"
        else:  # 2 trials of the first round's 2 seeds, then one trial per seed to each survivor
            race = screen_meta["race"]
            assert screen_meta["search"] == "race" and screen_meta["metric"] == "val_error" and race["finished"]
            assert "== linear screen (raced): at most 8 runs (2 configuration(s) × 4 seed(s), 20 pairs, 1 epochs, " \
                   "fp32) in at most 6 trials" in said[0]
            assert outcomes[0].trials == outcomes[0].finished == 2 + race["runs_handed_out"] - 4
            assert len(runs) == race["runs_handed_out"] and {(n, s) for n in (16, 32) for s in (0, 1)} <= runs
            nodes = [c["nodes"] for c in configurations(screen_meta["grid"])]
            assert runs >= {(nodes[race["winner"]], s) for s in range(4)}  # the winner ran every seed
        assert (tmp_path / "report").is_dir()
        final = json.loads((tmp_path / "linear" / "final" / "search.json").read_text())
        assert final["fixed"]["pairs"] == 20 and len(final["trials"]) == 2
        from tune_digits.report import best_configuration

        assert final["grid"] == {k: [v] for k, v in best_configuration(tmp_path / "linear" / "screen", "linear").items()}

        before = snapshot(tmp_path / "linear" / "screen" / "trials")
        again = reproduce.reproduce(tmp_path, spaces=("linear",), quick=True, echo=said.append)  # as it started
        assert all(o.resumed and not o.interrupted for o in again)
        assert snapshot(tmp_path / "linear" / "screen" / "trials") == before

    def test_a_registered_searcher_runs_the_search(self, tmp_path, trial_rows):
        """One registered function is a new --search: here Tune's random generator, capped at one trial at a
        time, draws 3 configurations of one seed."""
        from ray.tune.search import BasicVariantGenerator

        from tune_digits.tuning import SEARCHERS, register_searcher

        @register_searcher("one_at_a_time")
        def one_at_a_time(plan):
            """NUM_SAMPLES draws, one trial at a time"""
            return BasicVariantGenerator(max_concurrent=1)

        try:
            plan = make_plan(tmp_path, reps=1, epochs=1, search="one_at_a_time", num_samples=3)
            outcome = run_search(plan, progress=False, echo=lambda _: None)
        finally:
            SEARCHERS.pop("one_at_a_time")
        assert (outcome.trials, outcome.finished, outcome.failed, outcome.interrupted) == (3, 3, 0, False)
        rows = trial_rows(plan.experiment_dir)
        check_complete(rows, trials=3, epochs=1)
        assert {r[0]["nodes"] for r in rows.values()} <= {16, 32}
        assert json.loads((plan.experiment_dir / "search.json").read_text())["search"] == "one_at_a_time"

    def test_require_gpu_without_one_is_a_clear_error(self, tmp_path):
        plan = make_plan(tmp_path, gpus_per_trial=0.25)
        with pytest.raises(SearchError, match="--require-gpu, but this machine has no GPU"):
            run_search(plan, progress=False, require_gpu=True, echo=lambda _: None)
        assert not plan.experiment_dir.exists()
        # --restart of a search that is then refused leaves the earlier results where they were.
        plan.experiment_dir.mkdir(parents=True)
        (plan.experiment_dir / "search.json").write_text('{"trials": {}}')
        with pytest.raises(SearchError, match="--require-gpu"):
            run_search(plan, progress=False, require_gpu=True, restart=True, echo=lambda _: None)
        assert (plan.experiment_dir / "search.json").read_text() == '{"trials": {}}'
        assert not (plan.experiment_dir.parent / ".archive").exists()

    def test_trials_that_wait_for_nodes_still_to_join_need_shared_storage(self, tmp_path):
        # A cluster's head that cannot run a trial (here: no GPU, --require-gpu) will run them on nodes that join.
        plan = make_plan(tmp_path, gpus_per_trial=0.25)
        with pytest.raises(SearchError, match="the trials will run on nodes still to join: pass --storage"):
            run_search(plan, address="auto", progress=False, require_gpu=True, echo=lambda _: None)
        assert not plan.experiment_dir.exists()

    def test_a_search_resumes_from_its_copy_on_the_storage(self, tmp_path, trial_rows):
        # A Ray job runs in a fresh copy of the working dir: the next job finds the tables on the storage only.
        shared = tmp_path / "shared"
        one = {"nodes": 16, "layers": 1, "dropout": False}  # one trial of one epoch
        first = make_plan(tmp_path / "job1", overrides=one, storage=str(shared), reps=1, epochs=1)
        assert run_search(first, progress=False, echo=lambda _: None).finished == 1
        copy = shared / "linear" / "t"
        assert (copy / "ray").is_dir() and trial_rows(copy) == trial_rows(first.experiment_dir)
        again = make_plan(tmp_path / "job2", overrides=one, storage=str(shared), reps=1, epochs=1)
        said = []
        outcome = run_search(again, progress=False, echo=said.append)
        assert (outcome.resumed, outcome.finished) == (True, 1) and any("resuming" in s for s in said)
        assert trial_rows(again.experiment_dir) == trial_rows(first.experiment_dir)  # nothing rerun
        # --restart moves the storage's copy aside too, so the new trials are not mixed with the old.
        outcome = run_search(again, restart=True, progress=False, echo=lambda _: None)
        assert not outcome.resumed and any("on the storage moved to" in n for n in outcome.notes)
        assert len(list((shared / "linear" / ".archive").iterdir())) == 1
        assert set(trial_rows(copy)) == set(trial_rows(again.experiment_dir)) != set(trial_rows(first.experiment_dir))

    def test_gpu_asked_none_present_falls_back_to_cpu(self, tmp_path, hang_guard):
        hang_guard(180)  # asking Ray for a GPU no node has would wait forever
        args = ["search", "linear", "--pairs", "20", "--reps", "1", "--epochs", "1", "--set", "nodes=[16, 32]",
                "--set", "layers=1", "--set", "dropout=false", "--output", str(tmp_path), "--gpus-per-trial", "0.25"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "note: no GPU available to Ray: running on CPU instead" in result.stderr
        assert "2/2 trials finished, 0 failed" in result.stdout
        meta = json.loads((tmp_path / "linear" / "default" / "search.json").read_text())
        assert meta["resources"] == {"cpus_per_trial": 1.0, "gpus_per_trial": 0.0}

        result = CliRunner().invoke(main, [*args, "--require-gpu", "--name", "insist"])
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1].startswith("error: --gpus-per-trial 0.25 asked with "
                                                                "--require-gpu")
        assert "Traceback" not in result.output
        assert not (tmp_path / "linear" / "insist").exists()

    @pytest.mark.slow
    def test_interrupted_search_resumes_without_rerunning_finished_trials(self, tmp_path, trial_rows):
        plan = make_plan(tmp_path, max_concurrent=1)  # 4 trials, one at a time
        exp = plan.experiment_dir

        first = run_interrupted(plan, finished=1, timeout=120)
        assert first.interrupted and 1 <= first.finished < 4
        before = trial_rows(exp)
        done = [t for t, s in statuses(exp).items() if s == "TERMINATED"]
        kept = {t: ((exp / "trials" / f"{t}.csv").stat().st_mtime_ns, (exp / "trials" / f"{t}.csv").read_bytes())
                for t in done}

        # A trial killed in mid-save leaves a half-written file: the rerun removes it before any trial starts.
        [states] = (exp / "ray").glob("states-*")
        (states / "0123456789abcdef-0002.pt.4242.tmp").write_bytes(b"half")
        said = []
        # --log on a rerun cannot reach Tune's restored experiment: said, not silently dropped.
        again = make_plan(tmp_path, max_concurrent=1, log=("tensorboard",))
        second = run_search(again, progress=False, echo=said.append)
        assert second.resumed and any(line.startswith("resuming ") for line in said)
        assert not list(states.glob("*.tmp")) and "removed 1 half-written checkpoint file(s)" in " ".join(said)
        assert any(line.startswith("note: --log tensorboard is not applied") and "started with (none)" in line
                   for line in said), said
        assert json.loads((exp / "search.json").read_text())["log"] == []
        assert (second.finished, second.failed, second.interrupted) == (4, 0, False)
        assert set(statuses(exp).values()) == {"TERMINATED"}
        # Finished trials were not rerun: their files are untouched.
        for t, (mtime, data) in kept.items():
            path = exp / "trials" / f"{t}.csv"
            assert (path.stat().st_mtime_ns, path.read_bytes()) == (mtime, data), t
        after = trial_rows(exp)
        check_complete(after, trials=4, epochs=2)
        # A trial stopped mid-way continued from its checkpoint, or from scratch when Tune had not yet saved
        # the checkpoint of the epoch it reported last: either way its epochs hold the same numbers.
        for t, rows in before.items():
            assert untimed(after[t][:len(rows)]) == untimed(rows), t
        assert len(list(csv.DictReader((exp / "epochs.csv").open()))) == 8

    @pytest.mark.slow
    def test_sparse_checkpoints_resume_from_the_last_one_saved(self, tmp_path, faults, trial_rows):
        """--checkpoint-every 2 with 3 epochs: only epochs 2 and 3 (the last) are checkpointed. A trial that
        crashes in epoch 2 has no checkpoint yet, restarts from scratch and re-reports epoch 1, counted once."""
        import torch

        plan = make_plan(tmp_path, reps=2, epochs=3, checkpoint_every=2, max_failures=1)
        faults.allow(1)
        outcome = run_search(plan, progress=False, echo=lambda _: None)
        assert faults.spent() == 1 and (outcome.finished, outcome.failed) == (4, 0)
        check_complete(trial_rows(plan.experiment_dir), trials=4, epochs=3)
        saved = sorted(plan.experiment_dir.glob("ray/states-*/*.pt"))
        # One checkpoint left per run (the older one is removed once the newer one is whole): the last epoch's,
        # with the reports of its three epochs; Tune holds none of its own.
        assert len(saved) == 4 and {p.name.rsplit("-", 1)[1] for p in saved} == {"0003.pt"}
        payloads = [torch.load(p, weights_only=False) for p in saved]
        assert {p["state"]["epoch"] for p in payloads} == {3}
        assert all([r["epoch"] for r in p["reports"]] == [1, 2, 3] for p in payloads)
        assert not list(plan.experiment_dir.glob("ray/*/checkpoint_*"))

    @pytest.mark.slow
    def test_trials_continue_from_their_own_checkpoints_when_tunes_state_is_lost(self, tmp_path, trial_rows):
        """A driver killed before Tune first saved its state leaves trials Tune does not know: the rerun starts
        them again under new ids, each continues from its run's checkpoint (here the last epoch's: nothing to
        train), and takes over the old trial's rows, so each (configuration, seed, epoch) keeps one row."""
        plan = make_plan(tmp_path)
        run_search(plan, progress=False, echo=lambda _: None)
        exp = plan.experiment_dir
        before = {(rs[0]["nodes"], rs[0]["seed"]): untimed(rs) for rs in trial_rows(exp).values()}
        for state in (exp / "ray").glob("*state-*.json"):
            state.unlink()
        said = []
        again = run_search(make_plan(tmp_path), progress=False, echo=said.append)
        assert (again.finished, again.failed, again.interrupted) == (4, 0, False)
        assert any("Ray's saved state is missing" in line for line in said)
        after = trial_rows(exp)
        check_complete(after, trials=4, epochs=2)
        assert not set(after) & {r[0]["trial_id"] for r in before.values()}  # new trial ids, old rows moved
        assert {(rs[0]["nodes"], rs[0]["seed"]): [{**r, "trial_id": 0} for r in untimed(rs)]
                for rs in after.values()} == {k: [{**r, "trial_id": 0} for r in v] for k, v in before.items()}
        assert set(statuses(exp)) == set(after)

    def test_results_without_a_ray_folder_are_never_overwritten(self, tmp_path):
        """A result set committed to git has search.json and epochs.csv but no ray/ folder: a rerun under
        the same name refuses instead of replacing the results."""
        plan = make_plan(tmp_path, reps=1, epochs=1)
        run_search(plan, progress=False, echo=lambda _: None)
        exp = plan.experiment_dir
        shutil.rmtree(exp / "ray")
        shutil.rmtree(exp / "trials")
        before = snapshot(exp)
        with pytest.raises(SearchError, match="holds results but no Ray experiment to resume"):
            run_search(make_plan(tmp_path, reps=1, epochs=1), progress=False, echo=lambda _: None)
        assert snapshot(exp) == before

    def test_an_experiment_whose_ray_state_cannot_be_restored_is_refused(self, tmp_path):
        """Tune's pickle of an experiment started by an earlier tune-digits names functions that have moved:
        a rerun says so in one line instead of a traceback, and touches nothing."""
        plan = make_plan(tmp_path, reps=1, epochs=1, overrides={**LINEAR_TWO, "nodes": [16]})
        run_search(plan, progress=False, echo=lambda _: None)
        (plan.experiment_dir / "ray" / "tuner.pkl").write_bytes(b"\x80\x04ctune_digits.search\n_atomic_write\n.")
        before = snapshot(plan.experiment_dir / "trials")
        with pytest.raises(SearchError, match="cannot resume, Ray's saved state names code this version no longer"):
            run_search(plan, progress=False, echo=lambda _: None)
        assert snapshot(plan.experiment_dir / "trials") == before

    def test_errored_trials_resume_and_restart_archives(self, tmp_path, faults, trial_rows):
        plan = make_plan(tmp_path, max_failures=0)  # seeds 0 and FAULT_SEED: two of four trials fail
        exp = plan.experiment_dir
        faults.allow(2)
        first = run_search(plan, progress=False, echo=lambda _: None)
        assert faults.spent() == 2
        assert (first.finished, first.failed, first.interrupted) == (2, 2, False)
        meta = json.loads((exp / "search.json").read_text())
        errored = {t for t, e in meta["trials"].items() if e["status"] == "ERROR"}
        assert {meta["trials"][t]["config"]["seed"] for t in errored} == {FAULT_SEED}
        assert all("injected fault" in meta["trials"][t]["error"] for t in errored)
        before = trial_rows(exp)
        assert all(len(before[t]) == 1 for t in errored)  # epoch 1 reported, then a crash in epoch 2
        kept = {t: (exp / "trials" / f"{t}.csv").stat().st_mtime_ns for t in before if t not in errored}

        # Another search under the same name is refused, not mixed in.
        with pytest.raises(SearchError, match="holds a different search"):
            run_search(make_plan(tmp_path, epochs=3), progress=False, echo=lambda _: None)

        second = run_search(make_plan(tmp_path, max_failures=0), progress=False, echo=lambda _: None)
        assert second.resumed and (second.finished, second.failed) == (4, 0)
        after = trial_rows(exp)
        check_complete(after, trials=4, epochs=2)
        assert {t: (exp / "trials" / f"{t}.csv").stat().st_mtime_ns for t in kept} == kept
        for t in errored:  # resumed (from its epoch-1 checkpoint when Tune had saved it) to the same numbers
            assert untimed(after[t][:1]) == untimed(before[t])
        old = snapshot(exp)

        # --restart starts afresh and keeps the earlier results, moved aside.
        third = run_search(make_plan(tmp_path, overrides={**LINEAR_TWO, "nodes": [16]}, reps=1, epochs=1),
                           restart=True, progress=False, echo=lambda _: None)
        archives = list((exp.parent / ".archive").iterdir())
        assert len(archives) == 1 and archives[0].name.startswith("t-")
        assert {k: v[1] for k, v in snapshot(archives[0]).items() if not k.startswith("ray/")} == \
            {k: v[1] for k, v in old.items() if not k.startswith("ray/")}
        assert any("earlier results moved to" in n for n in third.notes)
        assert not third.resumed and third.finished == 1
        fresh = trial_rows(exp)
        check_complete(fresh, trials=1, epochs=1)
        assert not set(fresh) & set(after)  # new trials, not the archived ones


# ---------------------------------------------------------------------------------------------------
# Fractional GPUs: one fake GPU, 0.25 GPU per trial → four trials share it at once, never more.


HELD = 4  # trials that one fake GPU holds at 0.25 each


@pytest.fixture(scope="class")
def fake_gpu_ray(ray_tmpdir, faults):
    """A Ray with 4 logical CPUs and 1 fake GPU; the trials it runs reach the pause hook (Faults.hold), so a test
    can make them wait after epoch 1 until HELD of them are there: that they overlap is then a fact of the
    schedule, not of how fast this machine starts worker processes."""
    faults.allow(0)
    # Trials ask for 0.5 CPU each, so only the GPU share limits them.
    with local_ray_session(4, 1, faults.env()):
        yield faults


class TestFractionalGpu:
    @pytest.mark.slow
    def test_quarter_gpu_trials_run_four_at_a_time(self, fake_gpu_ray, tmp_path, trial_rows, overlap):
        # One configuration × 5 seeds: five trials, more than one GPU holds at 0.25 each.
        plan = make_plan(tmp_path, overrides={**LINEAR_TWO, "nodes": [16]}, reps=5, cpus_per_trial=0.5,
                         gpus_per_trial=0.25)
        said, held = [], []
        fake_gpu_ray.hold(HELD)
        releaser = threading.Thread(target=lambda: held.append(fake_gpu_ray.release_when_held()), daemon=True)
        releaser.start()
        try:
            outcome = run_search(plan, progress=False, echo=said.append)
        finally:
            releaser.join(5)
            fake_gpu_ray.hold(0)
        assert said == [] and outcome.finished == 5  # a GPU was there: no fallback
        assert held == [HELD]  # four trials were on the GPU at once
        rows = trial_rows(plan.experiment_dir)
        check_complete(rows, trials=5, epochs=2)
        # From the trials' own timestamps: the four held ones overlap, and the fifth ran only after one of them
        # had ended (the GPU was full): never all five.
        assert overlap(rows) == HELD
