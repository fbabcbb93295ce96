"""Fault injection for the fault-tolerance tests, called inside trials. Does nothing unless its environment
variable is set (tests pass them to Ray's workers through `ray.init(runtime_env=...)`):

- TUNE_DIGITS_FAULT="seed=S,epoch=E,times=N,marker=DIR" makes the trial holding seed S crash in epoch E,
  before reporting it (so a retry resumed from epoch E-1 crashes again), N times in all (N=0: always).
- TUNE_DIGITS_EPOCH_DELAY=S sleeps S seconds after each reported epoch, so that trials last long enough to
  be seen overlapping, interrupted or moved off a lost node.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

FAULT_ENV = "TUNE_DIGITS_FAULT"
DELAY_ENV = "TUNE_DIGITS_EPOCH_DELAY"


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
