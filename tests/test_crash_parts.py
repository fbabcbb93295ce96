"""The parts of crash-safe searches, without Ray: the trials' checkpoint files, a row cut short by a kill,
Tune's experiment state cut short, the progress line's counts, and the mark and watchdog that stop a killed
driver's Ray (tests/test_crash_resume.py kills a real search)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time

import pytest
import torch

from helpers import make_plan
from tune_digits.results import append_rows, count_rows
from tune_digits.tuning.checkpoints import RunStore, run_key, sweep_temporaries
from tune_digits.tuning.progress import progress_line
from tune_digits.tuning.reaper import OWNER_ENV, Watchdog, marked_processes, new_token, stop_marked
from tune_digits.tuning.resume import usable_state


def local_store(tmp_path, config=None) -> RunStore:
    from pyarrow import fs

    return RunStore(fs.LocalFileSystem(), str(tmp_path / "states"), run_key(config or {"seed": 0, "lr": 0.1}))


def test_a_run_keeps_its_newest_checkpoint_and_skips_an_unreadable_one(tmp_path):
    store = local_store(tmp_path)
    assert store.load() is None
    for epoch in (1, 2, 3):
        store.save(epoch, {"state": {"epoch": epoch}, "reports": list(range(epoch))})
    assert store.epochs() == [3]  # the older files go once the newer one is whole
    assert store.load() == {"state": {"epoch": 3}, "reports": [0, 1, 2]}
    # A newer file cut short (a power loss while it was written): the one before it is used, and the cut one
    # is removed, never to be read again.
    (tmp_path / "states" / f"{store.key}-0004.pt").write_bytes(b"PK\x03\x04 cut")
    assert store.load()["state"]["epoch"] == 3 and store.epochs() == [3]
    store.save(4, {"state": {"epoch": 4}, "reports": []})
    assert store.epochs() == [4] and store.load()["state"]["epoch"] == 4
    # A half-written file has a temporary name: never read. Another run's files are its own.
    (tmp_path / "states" / f"{store.key}-0009.pt.123.tmp").write_bytes(b"half")
    other = local_store(tmp_path, {"seed": 1, "lr": 0.1})
    assert other.load() is None and store.epochs() == [4]
    # The CPUs a trial got are not part of what it trains.
    assert run_key({"seed": 0, "lr": 0.1, "threads": 2}) == store.key


def test_a_row_cut_short_by_a_kill_is_dropped_before_the_next_one(tmp_path):
    (tmp_path / "trials").mkdir()
    row = {"trial_id": "a", "seed": 0, "epoch": 1, "test_error": 5.0}
    append_rows(tmp_path, "a", [row], None)
    path = tmp_path / "trials" / "a.csv"
    path.write_bytes(path.read_bytes() + b"a,0,2,4.")  # the driver died while appending epoch 2
    append_rows(tmp_path, "a", [{**row, "epoch": 2, "test_error": 4.0}], None)
    assert path.read_text().splitlines() == ["trial_id,seed,epoch,test_error", "a,0,1,5.0", "a,0,2,4.0"]
    assert count_rows(tmp_path) == {"a": 2}


def test_an_experiment_state_cut_short_is_set_aside(tmp_path):
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    # Tune's grid searcher writes a pickle under a .json name.
    (tmp_path / "basic-variant-state-2026-01-01_00-00-00.json").write_bytes(pickle.dumps({"_iterators": []}))
    cut = tmp_path / "experiment_state-2026-01-02_00-00-00.json"
    cut.write_text('{"trial_data": [')
    assert usable_state(str(tmp_path))
    assert not cut.exists() and cut.with_name(cut.name + ".incomplete").exists()
    # The searcher's state of the newest session cut short: that whole session is set aside.
    (tmp_path / "experiment_state-2026-01-03_00-00-00.json").write_text('{"trial_data": []}')
    (tmp_path / "basic-variant-state-2026-01-03_00-00-00.json").write_text('{"cut')
    assert usable_state(str(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*-2026-01-03_00-00-00.json.incomplete")) == [
        "basic-variant-state-2026-01-03_00-00-00.json.incomplete", "experiment_state-2026-01-03_00-00-00.json.incomplete"]
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("")
    assert not usable_state(str(tmp_path))  # nothing whole is left: the search starts its trials again
    assert usable_state("s3://bucket/path")  # remote storage: Tune's to read


def test_the_progress_line_counts_only_finished_trials_and_resumed_epochs(tmp_path):
    plan = make_plan(tmp_path)  # 4 trials × 2 epochs
    line = progress_line(plan, ["TERMINATED", "RUNNING", "PENDING", "ERROR"], 1, 5, 60.0, final=True)
    assert "2/4 trials done (1 running, 1 failed) · epochs 5/8 (62 %)" in line and "interrupted" in line
    # 4 epochs were there before this run; 1 more took 60 s: 3 to go take about 3 min.
    assert progress_line(plan, ["TERMINATED"] * 2 + ["PENDING"] * 2, 0, 5, 60.0, baseline=4).endswith("ETA 3m00s")
    assert "interrupted" not in progress_line(plan, ["TERMINATED"] * 4, 0, 8, 9.0, final=True)


def test_a_races_progress_line_shows_its_round_survivors_and_worst_case(tmp_path):
    plan = make_plan(tmp_path, reps=4, search="race")  # 2 configurations × up to 4 seeds, 2 epochs each
    race = {"round": 3, "alive": 1, "configurations": 2, "runs_handed_out": 5, "survivor_seeds_to_come": 1,
            "finished": False}
    line = progress_line(plan, ["TERMINATED"] * 4 + ["RUNNING"], 1, 9, 60.0, race=race)
    # 5 handed out + the survivor's last seed = 6 runs at most (of the 8 a grid would run): 12 epochs
    assert "4/≤ 6 runs done (1 running, 0 failed) · epochs 9/≤ 12 (75 %) · race round 3: 1/2 alive" in line
    assert line.endswith("ETA 0m20s")
    done = progress_line(plan, ["TERMINATED"] * 6, 0, 12, 80.0, final=True, race={**race, "finished": True,
                                                                                    "runs_handed_out": 6})
    assert "6/6 runs done" in done and "interrupted" not in done
    assert "interrupted" in progress_line(plan, ["TERMINATED"] * 4, 0, 8, 9.0, final=True, race=race)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds processes through /proc")
def test_only_the_marked_processes_are_stopped_and_the_watchdog_stops_them_when_its_driver_dies():
    token = new_token()
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = subprocess.Popen(sleep, env={**os.environ, OWNER_ENV: token})
    other = subprocess.Popen(sleep, env={**os.environ, OWNER_ENV: new_token()})
    unmarked = subprocess.Popen(sleep)
    try:
        assert marked_processes(token) == [marked.pid]
        assert stop_marked(token) == [marked.pid] and marked.wait(60) is not None
        assert other.poll() is None and unmarked.poll() is None
        # The watchdog: when the pipe its driver holds closes (the driver died), it stops the marked ones.
        token = new_token()
        watchdog = Watchdog(token)
        again = subprocess.Popen(sleep, env={**os.environ, OWNER_ENV: token})
        assert marked_processes(token) == [again.pid]
        watchdog.close()
        assert again.wait(60) is not None and marked_processes(token) == []  # the watchdog may start slowly
        assert other.poll() is None and unmarked.poll() is None
    finally:
        for process in (marked, other, unmarked):
            process.kill()
            process.wait()


def _save_epochs(folder: str, first: int) -> None:
    from pyarrow import fs

    store = RunStore(fs.LocalFileSystem(), folder, run_key({"seed": 0, "lr": 0.1}))
    for epoch in range(first, 400, 2):
        store.save(epoch, {"state": {"epoch": epoch}, "reports": []})


def test_a_trial_behind_another_of_its_run_keeps_the_newer_checkpoint(tmp_path):
    # Two live trials of one run (a searcher drew its configuration and seed twice): the one behind saves
    # epoch 2 while the other has saved epoch 5. Epoch 5 stays, so neither has to train it again.
    ahead, behind = local_store(tmp_path), local_store(tmp_path)
    ahead.save(5, {"state": {"epoch": 5}, "reports": []})
    behind.save(2, {"state": {"epoch": 2}, "reports": []})
    assert behind.epochs() == [5, 2] and behind.load()["state"]["epoch"] == 5
    ahead.save(6, {"state": {"epoch": 6}, "reports": []})
    assert ahead.epochs() == [6]


def test_half_written_checkpoints_are_swept_and_nothing_else(tmp_path):
    from pyarrow import fs

    store = local_store(tmp_path)
    store.save(3, {"state": {"epoch": 3}, "reports": []})
    folder = tmp_path / "states"
    for name in (f"{store.key}-0004.pt.4242.tmp", "0123456789abcdef-0001.pt.77.tmp"):
        (folder / name).write_bytes(b"half")
    assert sweep_temporaries(fs.LocalFileSystem(), str(folder)) == 2
    assert sorted(p.name for p in folder.iterdir()) == [f"{store.key}-0003.pt"]
    assert sweep_temporaries(fs.LocalFileSystem(), str(tmp_path / "none-yet")) == 0


def test_two_trials_of_one_run_save_at_once_without_failing(tmp_path):
    # A random or Bayesian searcher may draw one configuration and seed twice: two live trials (processes),
    # one run. Each save drops the run's other files, so one trial may delete a file the other just listed.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    trials = [context.Process(target=_save_epochs, args=(str(tmp_path / "states"), first)) for first in (1, 2)]
    for t in trials:
        t.start()
    for t in trials:
        t.join()
    assert [t.exitcode for t in trials] == [0, 0]  # before: FileNotFoundError in most runs
