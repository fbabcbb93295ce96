"""Fault injection for the fault-tolerance tests, called inside trials. Does nothing unless its environment
variable is set (tests pass them to Ray's workers through `ray.init(runtime_env=...)`):

- TUNE_DIGITS_FAULT="seed=S,epoch=E,times=N,marker=DIR" makes the trial holding seed S crash in epoch E,
  before reporting it (so a retry resumed from epoch E-1 crashes again), N times in all (N=0: always).
- TUNE_DIGITS_EPOCH_DELAY=S sleeps S seconds after each reported epoch, so that trials last long enough to
  be seen overlapping, interrupted or moved off a lost node.
- TUNE_DIGITS_PAUSE="epoch=E,times=N,marker=DIR" holds the first N trials that reach epoch E just after its
  checkpoint and report: each writes its process id to DIR/pause-<i> and waits (at most 2 minutes) for
  DIR/release, so that a test can kill the driver or that worker at that exact moment.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

FAULT_ENV = "TUNE_DIGITS_FAULT"
DELAY_ENV = "TUNE_DIGITS_EPOCH_DELAY"
PAUSE_ENV = "TUNE_DIGITS_PAUSE"


def maybe_fail(config: dict, epoch: int) -> None:
    """Crash as TUNE_DIGITS_FAULT says. Each crash claims one file fail-0..fail-(N-1) in DIR, atomically, so
    trials crashing at the same moment never exceed N together."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    opts = dict(item.split("=", 1) for item in spec.split(","))
    if int(opts["seed"]) not in config.get("seeds", [config.get("seed")]) or int(opts["epoch"]) != epoch:
        return
    times = int(opts.get("times", 1))
    marker = Path(opts["marker"])
    marker.mkdir(parents=True, exist_ok=True)
    for slot in range(times) if times else [None]:
        if slot is not None:
            try:
                os.close(os.open(marker / f"fail-{slot}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue  # this crash already happened
        raise RuntimeError(f"injected fault (seed {opts['seed']}, epoch {epoch})")


def epoch_delay() -> None:
    """Sleep as TUNE_DIGITS_EPOCH_DELAY says."""
    delay = os.environ.get(DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def maybe_pause(config: dict, epoch: int) -> None:
    """Wait as TUNE_DIGITS_PAUSE says; each pause claims one file pause-0..pause-(N-1), atomically."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    opts = dict(item.split("=", 1) for item in spec.split(","))
    if int(opts["epoch"]) != epoch:
        return
    marker = Path(opts["marker"])
    marker.mkdir(parents=True, exist_ok=True)
    for slot in range(int(opts.get("times", 1))):
        try:
            fd = os.open(marker / f"pause-{slot}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        deadline = time.monotonic() + 120
        while not (marker / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return
