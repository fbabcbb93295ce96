"""The tidy tables, written on the driver as trials report, so they work the same on a laptop and on a
cluster: trials/<trial_id>.csv, search.json's statuses and, at the end, epochs.csv. Every byte goes through
`tune_digits.results`, the one owner of the format."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..results import TRIALS_DIR, append_rows, make_row, write_epochs_csv, write_meta
from .live import SessionCallback


class ResultWriter(SessionCallback):
    """Append each reported epoch to trials/<trial_id>.csv and keep search.json's statuses current."""

    def __init__(self, key: str):
        super().__init__(key)
        self.last_epoch: dict[str, int] = {}  # trial → the newest epoch in its file (saves re-reading it)

    def setup(self, **info):
        (self._dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        write_meta(self._dir, self.session.meta)

    @property
    def _dir(self) -> Path:
        return self.session.plan.experiment_dir

    def on_trial_start(self, iteration, trials, trial, **info):
        self._status(trial, "RUNNING")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rows = report_rows(trial.trial_id, trial.config, result)
        last = self.last_epoch.get(trial.trial_id)
        self.last_epoch[trial.trial_id] = append_rows(self._dir, trial.trial_id, rows, last)

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
        self._status(trial, "PENDING", error=f"retrying after: {error_line(trial)}")

    def on_experiment_end(self, trials, **info):
        self.session.meta["finished"] = utc_now()
        write_meta(self._dir, self.session.meta)
        write_epochs_csv(self._dir)
        if self.session.mirror:
            self.session.mirror.push(force=True)

    def _status(self, trial, status: str, error: str | None = None) -> None:
        meta = self.session.meta
        entry = meta["trials"].setdefault(trial.trial_id, {})
        entry.update(status=status, config={k: v for k, v in trial.config.items() if k != "threads"})
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


def error_line(trial) -> str:
    """The last line of a failed trial's error file: what the user sees of the failure."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text().strip().splitlines() if path else []
    except OSError:
        text = []
    return text[-1].strip()[:300] if text else "unknown error"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
