"""Crash-safe searches, killed for real: `tune-digits search` runs as its own process on its own local Ray, is
killed with SIGKILL at several moments (during the first trial; mid-way, just after a checkpoint was written),
one trial's worker process is killed too, one run is stopped with SIGINT, and each time the same command is
run again. In the end every (configuration, seed, epoch) has exactly one row, with the metrics of a run that
was never interrupted, and no process of any killed driver's Ray is left.

Every moment is detected from files the search writes (rows, the pause hook's marker), never from a sleep.
Trials run one at a time (--max-concurrent 1), so which trials are still to run at each moment is known."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from helpers import DRIVER_EPOCHS as EPOCHS, DRIVER_TRIALS as TRIALS, Driver, rows_in, runs
from tune_digits.tuning import PAUSE_ENV


def last_progress(driver: Driver) -> str:
    return [line for line in driver.err.read_text().splitlines() if line.startswith("[linear/")][-1]


@pytest.mark.slow
def test_killed_driver_and_worker_resume_to_the_uninterrupted_numbers(tmp_path, ray_tmpdir, hang_guard):
    hang_guard(540)
    total = TRIALS * EPOCHS
    marker = tmp_path / "pause"
    said, start = [], time.monotonic()
    # The same search, never interrupted, on a Ray of its own, meanwhile.
    reference = Driver(tmp_path, "reference", "reference")

    def rerun(run: str, env: dict | None = None) -> Driver:
        said.append(f"{time.monotonic() - start:5.1f} s: {run} starts with {rows_in(tmp_path / 'linear' / 'k')} rows")
        return Driver(tmp_path, "k", run, env)

    # 1. Killed during the first trial, once its first epoch's row is written.
    first = rerun("run1")
    first.wait_for("a first row", lambda: first.rows() >= 1)
    first.kill()
    # 2. Paused just after writing an epoch-3 checkpoint: that trial's worker is killed (Tune retries the
    #    trial), then, when the next trial pauses there, the driver: mid-way, one trial done, the second under way.
    second = rerun("run2", {PAUSE_ENV: f"epoch=3,times=2,marker={marker}"})
    for slot in (0, 1):
        pause = marker / f"pause-{slot}"
        second.wait_for(f"pause {slot}", lambda: pause.exists() and pause.read_text().strip())
        if slot == 0:
            os.kill(int(pause.read_text()), signal.SIGKILL)
    second.kill()
    # 3. Ctrl-C (SIGINT) while the first trial to reach its last epoch waits after that epoch's checkpoint
    #    (the trial run 2 was killed in has one more to go): status 130, nothing lost.
    third = rerun("run3", {PAUSE_ENV: f"epoch={EPOCHS},times=1,marker={marker}-int"})
    third.wait_for("the last pause", lambda: (marker.parent / "pause-int" / "pause-0").exists())
    third.process.send_signal(signal.SIGINT)  # the paused trial is never released: it cannot end meanwhile
    assert third.finish() == 130, third.err.read_text()[-3000:]
    assert "interrupted: rerun the same command to resume" in third.out.read_text()
    line = last_progress(third)
    done = int(line.split("] ")[1].split("/")[0])
    assert done < TRIALS and "interrupted" in line, line
    # 4. The same command again finishes the search.
    fourth = rerun("run4")
    assert fourth.finish() == 0, fourth.err.read_text()[-3000:]
    assert f"{TRIALS}/{TRIALS} trials finished, 0 failed" in fourth.out.read_text()
    done_line = f"{TRIALS}/{TRIALS} trials done (0 running, 0 failed) · epochs {total}/{total} (100 %)"
    assert done_line in last_progress(fourth)
    said.append(f"{time.monotonic() - start:5.1f} s: run4 ends with {fourth.rows()} rows")

    assert reference.finish() == 0, reference.err.read_text()[-3000:]
    resumed, uninterrupted = runs(fourth.exp), runs(reference.exp)
    assert len(resumed) == len(uninterrupted) == total
    assert resumed == uninterrupted
    meta = json.loads((fourth.exp / "search.json").read_text())
    assert {e["status"] for e in meta["trials"].values()} == {"TERMINATED"} and len(meta["trials"]) == TRIALS
    # The trial whose worker was killed was retried within run 2 and finished later.
    assert any("recovered_from" in e for e in meta["trials"].values())
    assert not (fourth.exp.parent / ".k.ray").exists()
    print("\n".join(said))
