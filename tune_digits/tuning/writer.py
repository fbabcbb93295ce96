"""The tidy tables, written on the driver as trials report, so they work the same on a laptop and on a
cluster: trials/<trial_id>.csv, search.json's statuses and, at the end, epochs.csv. Every byte goes through
`tune_digits.results`, the one owner of the format."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..results import (TRIALS_DIR, append_rows, count_rows, drop_rows, make_row, move_rows, write_epochs_csv,
                       write_meta)
from .algorithms import searcher
from .live import SessionCallback


class ResultWriter(SessionCallback):
    """Append each reported epoch to trials/<trial_id>.csv and keep search.json's statuses current."""

    def __init__(self, key: str):
        super().__init__(key)
        self.last_epoch: dict[str, int] = {}  # trial → the newest epoch in its file (saves re-reading it)

    def setup(self, **info):
        (self._dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        self.session.rows.update(count_rows(self._dir))  # a resumed search's earlier epochs count as done
        write_meta(self._dir, self.session.meta)

    @property
    def _dir(self) -> Path:
        return self.session.plan.experiment_dir

    def on_trial_start(self, iteration, trials, trial, **info):
        self._adopt(trial, trials)
        self._status(trial, "RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # A trial resumed from its checkpoint first sends again every report the checkpoint holds (`replay`).
        for report in result.get("replay") or [result]:
            rows = report_rows(trial.trial_id, trial.config, report)
            last = self.last_epoch.get(trial.trial_id)
            self.last_epoch[trial.trial_id] = append_rows(self._dir, trial.trial_id, rows, last)
        self.session.rows[trial.trial_id] = self.last_epoch[trial.trial_id] * len(rows)
        if result.get("exploited"):  # PBT: from this epoch on, the trial trains another run's state
            entry = self.session.meta["trials"].setdefault(trial.trial_id, {})
            entry.setdefault("exploits", []).append({**result["exploited"], "at_epoch": result["epoch"],
                                                     "config": trial_config(trial)})
            write_meta(self._dir, self.session.meta)

    def on_trial_complete(self, iteration, trials, trial, **info):
        entry = self.session.meta["trials"].get(trial.trial_id, {})
        if entry.get("error"):  # it failed before and a retry finished it: history, not an error
            entry["recovered_from"] = entry.pop("error")
        self._status(trial, "TERMINATED")
        if self.session.mirror:
            self.session.mirror.push()  # the storage's copy follows as trials end (at most every 30 s)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._status(trial, "ERROR", error=error_line(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        if lost_with_node(last_failure(trial)):
            # Not the trial's failure: Tune counted it against --max-failures (once per failed call in flight, so
            # one lost node could count twice), the count is handed back and the entry says how often it happened.
            trial.run_metadata.num_failures = max(0, trial.run_metadata.num_failures - 1)
            entry = self.session.meta["trials"].setdefault(trial.trial_id, {})
            entry["node_losses"] = entry.get("node_losses", 0) + 1
        self._status(trial, "PENDING", error=f"retrying after: {error_line(trial)}")

    def on_experiment_end(self, trials, **info):
        self._drop_strays(trials)
        self.session.meta["finished"] = utc_now()
        write_meta(self._dir, self.session.meta)
        write_epochs_csv(self._dir)
        if self.session.mirror:
            self.session.mirror.push(force=True)

    def _adopt(self, trial, trials) -> None:
        """When Tune's saved state was older than a trial (or lost), Tune starts that run again under a new
        trial id; the new trial continues from the run's checkpoint, so it takes over the old trial's rows."""
        known = self.session.meta["trials"]
        if trial.trial_id in known:
            return
        live, config = {t.trial_id for t in trials}, same_run(trial_config(trial))
        for old_id, entry in list(known.items()):
            if old_id not in live and same_run(entry.get("config") or {}) == config:
                move_rows(self._dir, old_id, trial.trial_id)
                del known[old_id]
                self.last_epoch.pop(old_id, None)
                self.session.rows[trial.trial_id] = self.session.rows.pop(old_id, 0)
                return

    def _drop_strays(self, trials) -> None:
        """Trials of an earlier run that Tune no longer knows and no new trial took over (a searcher that drew
        anew after Tune's state was lost): once every known trial has ended, their rows are not this search's.
        A race's finished ones stay: it rebuilt itself from their rows, they are its results."""
        known, live = self.session.meta["trials"], {t.trial_id for t in trials}
        if any(known.get(t, {}).get("status") not in ("TERMINATED", "ERROR") for t in live):
            return  # interrupted: a rerun may still take them over
        kept = ("TERMINATED",) if searcher(self.session.plan.algorithm.search).races else ()
        for stray in [t for t, entry in known.items() if t not in live and entry.get("status") not in kept]:
            drop_rows(self._dir, stray)
            del known[stray]
            self.session.rows.pop(stray, None)

    def _status(self, trial, status: str, error: str | None = None) -> None:
        meta = self.session.meta
        entry = meta["trials"].setdefault(trial.trial_id, {})
        entry.update(status=status, config=trial_config(trial))
        if error is not None:
            entry["error"] = error
        write_meta(self._dir, meta)


def report_rows(trial_id: str, config: dict, result: dict) -> list[dict]:
    """One report → its rows: one, or one per seed of a grouped trial with that seed's own metrics."""
    if "seeds" not in config:
        return [make_row(trial_id, config["seed"], result, config)]
    # Tune hands callbacks the result as reported (nested); only its loggers flatten it.
    shared = {"wall_time": result.get("wall_time"), "node": result.get("node")}
    return [make_row(trial_id, int(seed), {**shared, **metrics}, config) for seed, metrics in result["replicas"].items()]


def trial_config(trial) -> dict:
    """What search.json records of a trial's config (not the CPUs it got)."""
    return {k: v for k, v in trial.config.items() if k != "threads"}


def same_run(config: dict) -> str:
    """A config as compared across runs (search.json holds it as JSON: lists, not tuples)."""
    return json.dumps(config, sort_keys=True, default=str)


def error_line(trial) -> str:
    """The last line of a failed trial's error file: what the user sees of the failure."""
    text = last_failure(trial).strip().splitlines()
    return text[-1].strip()[:300] if text else "unknown error"


def last_failure(trial) -> str:
    """The newest failure's text in a trial's error file (Tune appends one "Failure # N" block per failure)."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    return text.rsplit("Failure # ", 1)[-1]


# How Ray 2.60 words an actor lost with its node (the GCS's death causes, as they reach a trial's error file):
# the node was removed or missed its health checks, whatever the trial was doing.
NODE_LOSS_WORDS = ("node was terminated unexpectedly", "because its node has died")


def lost_with_node(failure: str) -> bool:
    """Whether a failure's text says the trial's node died under it (not its code, not its worker alone)."""
    return "The actor died" in failure and any(words in failure for words in NODE_LOSS_WORDS)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
