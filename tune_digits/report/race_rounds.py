"""A raced screen's rounds, as a table and a figure: per round, the configurations its test compared, those it
dropped and the path of the race's winner. Read from the rows and search.json's `race` (tuning/racer.py);
the decision itself is report/racing.py's."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from .analysis import Analysis
from .load import values_label
from .table import Table, num

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROUND_COLUMNS = ["space", "experiment", "round", "tested", "dropped", "alive", "best", "best_mean", "winner_mean",
                 "winner_rank"]


def race_rounds(a: Analysis) -> pd.DataFrame | None:
    """One row per round (seeds per configuration) and configuration its test compared: the mean of the race's
    metric at the final epoch over the round's seeds, whether that round dropped it, whether it is the race's
    winner. None for an experiment that was not raced."""
    exp = a.exp
    race = exp.meta.get("race")
    if not race or exp.rows.empty:
        return None
    metric = exp.meta.get("metric", "val_error")
    dropped = {values_label(e["values"], exp.axes): e["round"] for e in race.get("eliminations", [])}
    winner = values_label(race["winner_config"], exp.axes) if race.get("winner_config") else None
    last = exp.rows[exp.rows["epoch"] == exp.rows["epoch"].max()]
    table = last.pivot_table(index="config", columns="seed", values=metric, aggfunc="last")
    seeds = list(exp.meta.get("seeds", sorted(table.columns)))
    out = []
    for r in range(int(race["first"]), int(race["round"]) + 1):
        tested = [s for s in seeds[:r] if s in table.columns]
        if len(tested) < r:
            break  # no configuration has this round's seeds yet (a budget, a stop)
        for config, values in table[tested].iterrows():
            if dropped.get(config, math.inf) < r or values.isna().any():
                continue  # out before this round, or this round's seeds are not all in
            out.append({"round": r, "config": config, "mean": float(values.mean()), "dropped": dropped.get(config) == r,
                        "winner": config == winner})
    return pd.DataFrame(out, columns=["round", "config", "mean", "dropped", "winner"])


def race_table(a: Analysis) -> Table | None:
    """Per round of a raced screen: how many configurations its test compared and dropped, the round's best
    and where the race's winner stood."""
    rounds = race_rounds(a)
    if rounds is None or rounds.empty:
        return None
    exp, race = a.exp, a.exp.meta["race"]
    rows = []
    for r, part in rounds.groupby("round"):
        best = part.sort_values(["mean", "config"]).iloc[0]
        won = part[part["winner"]]
        winner_mean = float(won["mean"].iloc[0]) if len(won) else math.nan
        rows.append({"space": exp.space, "experiment": exp.name, "round": int(r), "tested": len(part),
                     "dropped": int(part["dropped"].sum()), "alive": int((~part["dropped"]).sum()),
                     "best": best["config"], "best_mean": float(best["mean"]), "winner_mean": winner_mean,
                     "winner_rank": int((part["mean"] < winner_mean).sum()) + 1 if len(won) else None})
    data = pd.DataFrame(rows, columns=ROUND_COLUMNS)
    metric = exp.meta.get("metric", "val_error")
    display = [("round (seeds)", lambda d: str(d["round"])), ("tested", lambda d: str(d["tested"])),
               ("dropped", lambda d: str(d["dropped"])), ("alive", lambda d: str(d["alive"])),
               (f"best {metric}", lambda d: f"{num(d['best_mean'])} ({d['best']})"),
               ("winner", lambda d: f"{num(d['winner_mean'])}, rank {d['winner_rank']}")]
    rule = (f"Each round: the configurations still in the race, on its first r seeds (mean {metric} at the final "
            f"epoch); dropped by Friedman's test and Conover's against the round's best (Holm, alpha "
            f"{race['alpha']}); the survivors get one seed more, up to {race['max_seeds']}. The winner: the "
            f"configuration the race chose, its mean and rank in each round.")
    notes = [f"{race['runs_handed_out']} runs of the {race['worst_case_runs']} a grid of every configuration × "
             f"{race['max_seeds']} seeds would run; winner: {rounds.loc[rounds['winner'], 'config'].iloc[0]}"
             if rounds["winner"].any() else "the race has not finished: no winner yet"]
    return Table(f"race_{exp.space}_{exp.name}", f"The race — {exp.label}", rule, data, display, notes)


def draw_race(rounds: pd.DataFrame, title: str, metric: str) -> "Figure":
    """Left: configurations compared in each round, the dropped ones in red. Right: each one's mean over the
    round's seeds (dropped: red ×), and the winner's path."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    alive_ax, means_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    per = rounds.groupby("round").agg(tested=("config", "size"), dropped=("dropped", "sum"))
    kept = per["tested"] - per["dropped"]
    alive_ax.bar(per.index, kept, color="C0", label="go on")
    alive_ax.bar(per.index, per["dropped"], bottom=kept, color="C3", label="dropped")
    alive_ax.set_xticks(list(per.index))
    alive_ax.set(xlabel="round (seeds per configuration)", ylabel="configurations")
    alive_ax.legend(fontsize=7)
    on, out = rounds[~rounds["dropped"]], rounds[rounds["dropped"]]
    means_ax.scatter(on["round"], on["mean"], s=8, color="0.6", alpha=0.6, label="compared, goes on")
    means_ax.scatter(out["round"], out["mean"], s=14, color="C3", marker="x", label="dropped")
    path = rounds[rounds["winner"]].sort_values("round")
    if len(path):
        means_ax.plot(path["round"], path["mean"], "o-", color="C2", label="the winner")
    means_ax.set_xticks(list(per.index))
    means_ax.set(xlabel="round (seeds per configuration)", ylabel=f"mean {metric} (%)")
    means_ax.grid(alpha=0.3)
    means_ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def race_title(a: Analysis) -> str:
    race = a.exp.meta["race"]
    return (f"The race — {a.exp.label}: {race['configurations']} configurations, {race['runs_handed_out']} of "
            f"{race['worst_case_runs']} runs")


def write_race_figures(analyses: Sequence[Analysis], report_dir: Path, formats: Sequence[str]) -> list[Path]:
    """race_<space>_<name>.<format> for each raced experiment, and its rounds as race_<space>_<name>_rounds.csv."""
    paths = []
    for a in analyses:
        rounds = race_rounds(a)
        if rounds is None or rounds.empty:
            continue
        stem = f"race_{a.exp.space}_{a.exp.name}"
        fig = draw_race(rounds, race_title(a), a.exp.meta.get("metric", "val_error"))
        for fmt in formats:
            fig.savefig(report_dir / f"{stem}.{fmt}", dpi=120, format=fmt)
            paths.append(report_dir / f"{stem}.{fmt}")
        rounds.to_csv(report_dir / f"{stem}_rounds.csv", index=False)
        paths.append(report_dir / f"{stem}_rounds.csv")
    return paths
