"""One experiment's analysis: each repetition's selected epochs, then its configurations with statistics, ranked.

A repetition contributes one epoch per view: `best_epoch` (the paper's optimistic rule, as the authors' code
applies it: the first epoch of lowest test DIGIT error, where the comparison error is then read; a strategy
without digit outputs falls back to the lowest test comparison error) and `honest` (the epoch of lowest val_error when the search carved a validation split, else
the last epoch). A configuration is reported from its complete repetitions; only one with none is reported
from its partial ones, and flagged — never the two mixed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper, results
from .load import Experiment, fmt_value
from .stats import grouped_mean_std

KEY = ["config", "seed"]  # one repetition


@dataclass
class Analysis:
    exp: Experiment
    reps: pd.DataFrame  # one row per used repetition × view ("best_epoch", "honest"), selected epoch's values
    configs: pd.DataFrame  # one row per configuration, ranked (rank 1 = best), with its statistics
    honest: str  # "final_epoch", "val_epoch" or "mixed"
    rank_by: str  # "val_error" or "test_error"

    @property
    def best(self) -> str:
        return str(self.configs.iloc[0]["config"])

    def values(self, config: str, view: str, metric: str = "test_error") -> np.ndarray:
        r = self.reps
        return r.loc[(r["config"] == config) & (r["view"] == view), metric].to_numpy(dtype=float)


def analyse(exp: Experiment) -> Analysis:
    rows = exp.rows
    g = rows.groupby(KEY, sort=False)
    per = _repetitions(exp, g)
    honest_idx, honest_view = _honest_epochs(rows, g)
    views = sorted(set(honest_view))
    honest = views[0] if len(views) == 1 else "mixed"
    best_idx = _paper_epochs(rows, g)
    reps = _selected_epochs(rows, per, {"best_epoch": (best_idx, None), "honest": (honest_idx, honest_view)})
    rank_by = "val_error" if honest != "final_epoch" else "test_error"
    return Analysis(exp, reps, _config_table(exp, per, reps, rank_by), honest, rank_by)


def _repetitions(exp: Experiment, g: Any) -> pd.DataFrame:
    """One row per repetition: its trial, epochs seen and expected, whether complete, status, whether used."""
    rows = exp.rows
    fixed = exp.meta.get("fixed") if isinstance(exp.meta.get("fixed"), dict) else {}
    per = g.agg(trial_id=("trial_id", "last"), n_epochs=("epoch", "nunique"), last_epoch=("epoch", "max"))
    # The epochs each repetition should reach: its own `epochs` value, else search.json's, else the most seen.
    if "epochs" in rows.columns and pd.to_numeric(rows["epochs"], errors="coerce").notna().all():
        per["expected_epochs"] = pd.to_numeric(g["epochs"].first(), errors="coerce").astype("int64")
    elif isinstance(fixed.get("epochs"), int):
        per["expected_epochs"] = int(fixed["epochs"])
    else:
        per["expected_epochs"] = int(rows["epoch"].max())
    per["complete"] = (per["n_epochs"] == per["expected_epochs"]) & (per["last_epoch"] == per["expected_epochs"])
    trials = exp.meta.get("trials") if isinstance(exp.meta.get("trials"), dict) else {}
    per["status"] = per["trial_id"].map(lambda t: str((trials.get(t) or {}).get("status", "")))
    any_complete = per.groupby(level="config")["complete"].transform("any")
    per["used"] = per["complete"] | ~any_complete
    return per


def _paper_epochs(rows: pd.DataFrame, g: Any) -> pd.Series:
    """Per repetition, the row of the paper's "best epoch": the first of lowest test digit error (net.py of the
    authors' code keeps an epoch only when it strictly improves); lowest test comparison error where the
    repetition has no digit error. idxmin returns the first minimum: rows are in epoch order."""
    best_idx = g["test_error"].idxmin()
    if "test_digit_error" in rows.columns and rows["test_digit_error"].notna().any():
        has_digits = rows[rows["test_digit_error"].notna()]
        digit_idx = has_digits.groupby(KEY, sort=False)["test_digit_error"].idxmin()
        best_idx.loc[digit_idx.index] = digit_idx
    return best_idx


def _honest_epochs(rows: pd.DataFrame, g: Any) -> tuple[pd.Series, pd.Series]:
    """Per repetition, the row of its honest epoch and which rule chose it ("final_epoch" or "val_epoch")."""
    honest_idx = g["epoch"].idxmax()
    honest_view = pd.Series("final_epoch", index=honest_idx.index, dtype=object)
    if "val_error" in rows.columns and rows["val_error"].notna().any():
        has_val = rows[rows["val_error"].notna()]
        val_idx = has_val.groupby(KEY, sort=False)["val_error"].idxmin()
        honest_idx.loc[val_idx.index] = val_idx
        honest_view.loc[val_idx.index] = "val_epoch"
    return honest_idx, honest_view


def _selected_epochs(rows: pd.DataFrame, per: pd.DataFrame,
                     views: dict[str, tuple[pd.Series, pd.Series | None]]) -> pd.DataFrame:
    """The used repetitions' selected rows, one per view, with their repetition's bookkeeping."""
    parts = []
    for view, (idx, sel) in views.items():
        part = rows.loc[idx.to_numpy()].set_index(KEY)
        part["view"] = view
        part["selection"] = sel if sel is not None else view
        parts.append(part.join(per[["complete", "used", "n_epochs", "expected_epochs", "status"]]))
    all_reps = pd.concat(parts).reset_index()
    return all_reps[all_reps["used"]].reset_index(drop=True)


def _config_table(exp: Experiment, per: pd.DataFrame, reps: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    configs = pd.DataFrame(_config_records(exp, per))
    configs.index = configs["config"].to_list()  # aligns the per-config statistics below
    for view, prefix in (("honest", ""), ("best_epoch", "best_epoch_")):
        g = reps[reps["view"] == view].groupby("config", sort=False)
        for m in (*results.METRICS, "epoch"):
            mean, std = grouped_mean_std(g, m) if m in reps.columns else (np.nan, np.nan)
            configs[f"{prefix}{m}_mean"] = mean
            if m != "epoch":
                configs[f"{prefix}{m}_std"] = std
    # Complete configurations first, then by the ranking metric; a small validation split makes ties common
    # (200 pairs: steps of 0.5 %), so val_digit_error (twice the items) breaks them; then the label order.
    tie_break = ["val_digit_error_mean"] if rank_by == "val_error" else []
    configs = configs.sort_values(["partial", f"{rank_by}_mean", *tie_break, "config"], kind="stable",
                                  na_position="last").reset_index(drop=True)
    configs.insert(0, "rank", range(1, len(configs) + 1))
    configs.insert(1, "best", configs["rank"] == 1)
    return configs


def _config_records(exp: Experiment, per: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per configuration: its axes, repetitions, protocol, status and settings."""
    rows = exp.rows
    expected_seeds = len(exp.meta["seeds"]) if isinstance(exp.meta.get("seeds"), list) else None
    settings = _settings(rows)
    first = rows.groupby("config", sort=False).first()
    flat = per.reset_index()
    counts = flat.groupby("config", sort=False).agg(n_complete=("complete", "sum"),
                                                    epochs=("expected_epochs", "max"))
    partial = flat[~flat["complete"]].groupby("config", sort=False).agg(
        n_partial=("complete", "size"), lo=("n_epochs", "min"), hi=("n_epochs", "max"),
        statuses=("status", lambda s: "/".join(sorted({x for x in s if x}))))
    out = []
    for config, c in counts.join(partial).iterrows():
        n_partial = 0 if pd.isna(c["n_partial"]) else int(c["n_partial"])
        used_partial = c["n_complete"] == 0
        out.append({
            "config": config, **{a: first.at[config, a] for a in exp.axes},
            "n": n_partial if used_partial else int(c["n_complete"]), "seeds_expected": expected_seeds,
            "epochs": int(c["epochs"]), "pairs": _pairs(exp, first.loc[config]), "partial": bool(used_partial),
            "status": _status(int(c["n_complete"]), n_partial, c["lo"], c["hi"], c["statuses"], int(c["epochs"]),
                              expected_seeds, used_partial),
            "settings": settings[config],
        })
    return out


def _pairs(exp: Experiment, row: pd.Series) -> int | None:
    value = row.get("pairs")
    if value is None or pd.isna(value):
        value = (exp.meta.get("fixed") or {}).get("pairs")
    try:
        return int(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _settings(rows: pd.DataFrame) -> dict[str, str]:
    """Per configuration, every config value it ran with ("k=v, …"): hyperparameters stay visible."""
    cols = [c for c in rows.columns if c not in results.RUN_COLUMNS and c != "config"]
    first = rows.groupby("config", sort=False)[cols].first() if cols else None
    out = {}
    for config in rows["config"].unique():
        if first is None:
            out[config] = ""
            continue
        values = first.loc[config]
        out[config] = ", ".join(f"{c}={fmt_value(values[c])}" for c in cols if not pd.isna(values[c]))
    return out


def _status(n_complete: int, n_partial: int, lo: Any, hi: Any, statuses: Any, epochs: int,
            expected_seeds: int | None, used_partial: bool) -> str:
    if n_partial == 0 and (expected_seeds is None or n_complete >= expected_seeds):
        return "complete"
    text = f"{n_complete}/{expected_seeds} seeds complete" if expected_seeds else f"{n_complete} seeds complete"
    if n_partial:
        span = f"{int(lo)}" if lo == hi else f"{int(lo)}-{int(hi)}"
        text += (f"; {n_partial} partial ({span} of {epochs} epochs{', ' + statuses if statuses else ''}"
                 f"{', used' if used_partial else ', excluded'})")
    return ("PARTIAL: " if used_partial else "") + text


def choose_best(analyses: Sequence[Analysis]) -> Analysis:
    """The experiment whose best configuration stands for a search space: a `final` stage if any (the one named
    `final`, else the latest started), else a `screen`, else the latest experiment. A final run under another
    --name is a variant of the one named `final` (an ablation arm: report/variants.py), not its replacement."""
    def started(a: Analysis) -> tuple[bool, str]:
        return a.exp.name == a.exp.stage, f"{a.exp.meta.get('started') or ''}|{a.exp.name}"
    for stage in ("final", "screen"):
        of_stage = [a for a in analyses if a.exp.stage == stage]
        if of_stage:
            return max(of_stage, key=started)
    return max(analyses, key=started)


def by_space(analyses: Sequence[Analysis]) -> dict[str, Analysis]:
    """Search space → the analysis that stands for it, in the paper's order."""
    spaces: dict[str, list[Analysis]] = {}
    for a in analyses:
        spaces.setdefault(a.exp.space, []).append(a)
    return {space: choose_best(spaces[space]) for space in paper.order(spaces)}
