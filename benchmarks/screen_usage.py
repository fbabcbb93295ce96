"""How busy a search kept its trial slots: for each experiment folder given (a raced or a grid screen), the runs
and trials, the wall time, the trial-seconds of training and evaluation, and the share of the slots' time that
was idle, from the rows alone (no training).

- busy: each run's own training and evaluation time (`time_s` at its last epoch: Ray's start-up of a trial,
  checkpoint writes and reports are not in it, so they count as idle);
- idle = 1 − busy ÷ (slots × wall), the wall from search.json's `started` to `finished`;
- under-used: the share of the wall during which fewer trials were running than there are slots (a trial runs
  from its first epoch's start, its first report less that epoch's `time_s`, to its last report). A race that
  waited for a round's last run while a CPU sat free would show here.

    .venv/bin/python benchmarks/screen_usage.py reference/reproduce-race/resnet/screen \\
        reference/reproduce-auto/resnet/screen --slots 2 > usage.md
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import pandas as pd


def usage(folder: Path, slots: int) -> dict:
    meta = json.loads((folder / "search.json").read_text())
    rows = pd.read_csv(folder / "epochs.csv")
    started, finished = (datetime.fromisoformat(meta[k].replace("Z", "+00:00")).timestamp()
                         for k in ("started", "finished"))
    wall = finished - started
    last = rows.loc[rows.groupby(["trial_id", "seed"])["epoch"].idxmax()]
    busy = float(last["time_s"].sum())
    first = rows[rows["epoch"] == rows.groupby("trial_id")["epoch"].transform("min")]
    spans = pd.DataFrame({
        "start": first.groupby("trial_id")["wall_time"].first() - first.groupby("trial_id")["time_s"].sum(),
        "end": rows.groupby("trial_id")["wall_time"].max()})
    race = meta.get("race") or {}
    return {"experiment": str(folder), "search": meta.get("search", "grid"), "runs": len(last),
            "trials": len(spans), "wall_min": wall / 60, "busy_trial_min": busy / 60,
            "idle": 1 - busy / (slots * wall), "under_used": under_used(spans, started, finished, slots) / wall,
            "alive": race.get("alive"), "configurations": race.get("configurations", meta.get("num_trials"))}


def under_used(spans: pd.DataFrame, start: float, end: float, slots: int) -> float:
    """Seconds of [start, end] during which fewer than `slots` spans were open."""
    events = sorted([(s, 1) for s in spans["start"]] + [(e, -1) for e in spans["end"]] + [(end, 0)])
    running, t, idle = 0, start, 0.0
    for when, step in events:
        when = min(max(when, start), end)
        if running < slots:
            idle += when - t
        running, t = running + step, when
    return idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--slots", type=int, default=2, help="trials that could run at once (CPUs ÷ CPUs per trial)")
    args = parser.parse_args()
    print("| experiment | search | runs | trials | wall min | busy trial-min | idle | under-used |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        u = usage(folder, args.slots)
        print(f"| {u['experiment']} | {u['search']} | {u['runs']} | {u['trials']} | {u['wall_min']:.1f} | "
              f"{u['busy_trial_min']:.1f} | {100 * u['idle']:.1f} % | {100 * u['under_used']:.1f} % |")


if __name__ == "__main__":
    main()
