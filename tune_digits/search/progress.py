"""The progress line on stderr: trials done/total, running, failed, epochs and an ETA. Redrawn in place
once a second on a terminal, a new line every 15 s in a log."""
from __future__ import annotations

import sys
import time

from .live import SessionCallback


class Progress(SessionCallback):
    """Silent when the search runs with progress=False (it is in every run's callbacks, so that an
    experiment resumed with the other setting behaves as asked)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.epochs_done: dict[str, int] = {}  # trial → epochs × seeds it reported
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0
        self.start = time.monotonic()

    def setup(self, **info):
        self.start = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.epochs_done[trial.trial_id] = int(result["epoch"]) * len(trial.config.get("seeds", [0]))

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self.last_print < (1.0 if self.tty else 15.0):
            return
        self.last_print = now
        self._print(trials)

    def on_experiment_end(self, trials, **info):
        self._print(trials, final=True)

    def _print(self, trials, final: bool = False) -> None:
        session = self.session
        if not session.show_progress:
            return
        line = progress_line(session.plan, [t.status for t in trials], sum(self.epochs_done.values()),
                             time.monotonic() - self.start, final)
        if self.tty:
            sys.stderr.write("\r" + line.ljust(110) + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def progress_line(plan, states: list[str], epochs: int, elapsed: float, final: bool = False) -> str:
    done, failed, running = states.count("TERMINATED"), states.count("ERROR"), states.count("RUNNING")
    total_epochs = plan.num_runs * plan.epochs
    # Epochs already in the folder before a resume count as done but took no time now.
    fraction = min(1.0, epochs / total_epochs) if total_epochs else 1.0
    eta = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else 0.0
    return (f"[{plan.space.name}/{plan.name}] {done + failed}/{plan.num_trials} trials done "
            f"({running} running, {failed} failed) · epochs {epochs}/{total_epochs} "
            f"({100 * fraction:.0f} %) · {duration(elapsed)} elapsed"
            + ("" if final else f" · ETA {duration(eta) if fraction else '…'}"))


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
