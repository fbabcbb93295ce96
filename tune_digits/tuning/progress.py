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
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0
        self.start = time.monotonic()
        self.baseline = 0

    def setup(self, **info):
        self.start = time.monotonic()
        self.baseline = sum(self.session.rows.values())  # a resumed search's rows (the ResultWriter set up first)

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
        # Done and failed as search.json says: Tune marks the trials it stops on Ctrl-C TERMINATED too.
        race = session.meta.get("race")
        # A race counts runs (a grouped first-round trial holds several), a grid its trials.
        states = [session.meta["trials"].get(t.trial_id, {}).get("status", "PENDING")
                  for t in trials for _ in range(len(t.config.get("seeds", [None])) if race else 1)]
        running = sum(t.status == "RUNNING" for t in trials)
        line = progress_line(session.plan, states, running, sum(session.rows.values()),
                             time.monotonic() - self.start, final, self.baseline, race)
        if self.tty:
            sys.stderr.write("\r" + line.ljust(110) + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def progress_line(plan, states: list[str], running: int, epochs: int, elapsed: float, final: bool = False,
                  baseline: int = 0, race: dict | None = None) -> str:
    """`states`: each trial's status in search.json (TERMINATED only once it finished); `epochs`: the rows
    written, a resumed search's `baseline` rows included (the ETA comes from this run's pace only). A race
    (search.json's `race`) counts runs (`states` has one per run) and shows its round and survivors; its totals
    and ETA are the worst case, every survivor to every seed, as it stands now."""
    done, failed = states.count("TERMINATED"), states.count("ERROR")
    trials = plan.num_trials if race is None else _race_worst_case(race)
    total_epochs = (plan.num_runs if race is None else trials) * plan.epochs
    fraction = min(1.0, epochs / total_epochs) if total_epochs else 1.0
    pace = elapsed / (epochs - baseline) if epochs > baseline else 0.0
    eta = pace * (total_epochs - epochs) if fraction < 1 else 0.0
    stopped = final and (done + failed < trials if race is None else not race["finished"])
    at_most = "" if race is None or race["finished"] else "≤ "
    unit = "trials" if race is None else "runs"
    return (f"[{plan.space.name}/{plan.name}] {done + failed}/{at_most}{trials} {unit} done "
            f"({running} running, {failed} failed) · epochs {epochs}/{at_most}{total_epochs} "
            f"({100 * fraction:.0f} %)" + ("" if race is None else f" · race round {race['round']}: "
                                                               f"{race['alive']}/{race['configurations']} alive")
            + f" · {duration(elapsed)} elapsed"
            + (" · interrupted" if stopped else "") + ("" if final else f" · ETA {duration(eta) if pace else '…'}"))


def _race_worst_case(race: dict) -> int:
    """The runs a race can still come to: those handed out, plus every survivor's seeds not handed out yet."""
    if race["finished"]:
        return race["runs_handed_out"]
    return race["runs_handed_out"] + race["survivor_seeds_to_come"]


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
