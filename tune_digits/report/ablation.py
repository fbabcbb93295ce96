"""Tables per value of one grid option: `--compare OPTION`, and the paper's ablations (Tables III and IV)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper
from .analysis import Analysis
from .load import ReportError
from .stats import welch, whole_mean_std
from .table import HONEST_RULES, VIEW_LABELS, Column, Table, experiment_notes, pm, protocol, safe, signed, stat_columns

COMPARE_COLUMNS = ["space", "experiment", "stage", "option", "scope", "view", "value", "best", "n_configs", "n",
                   "epochs", "pairs", "status", "train_error_mean", "train_error_std", "test_digit_error_mean",
                   "test_digit_error_std", "test_error_mean", "test_error_std", "diff_vs_best", "ci_low",
                   "ci_high", "p_vs_best"]
PAPER_COLUMNS = [f"paper_{m}_{s}" for m in paper.METRICS for s in ("mean", "std")] + ["diff_paper_test_error"]


def is_on(value: str) -> bool:
    """Whether an ablation option is switched on: True, or a non-zero weight/rate."""
    return value.lower() not in ("false", "0", "none", "no", "off", "")


def slice_at_best(a: Analysis, option: str) -> pd.DataFrame:
    """The configurations that differ from the best only in `option`."""
    best = a.configs.iloc[0]
    mask = pd.Series(True, index=a.configs.index)
    for ax in a.exp.axes:
        if ax != option:
            mask &= a.configs[ax] == best[ax]
    return a.configs[mask]


def group_rows(a: Analysis, option: str, scope: str, view: str, configs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per value of `option` among `configs`: statistics over their repetitions, vs the best value."""
    reps = a.reps[(a.reps["view"] == view) & a.reps["config"].isin(configs["config"])]
    value_of = dict(zip(configs["config"], configs[option]))
    reps = reps.assign(_value=reps["config"].map(value_of))
    rows = []
    for value, r in reps.groupby("_value", sort=False):
        cfg = configs[configs[option] == value]
        rec: dict[str, Any] = {
            "space": a.exp.space, "experiment": a.exp.name, "stage": a.exp.stage, "option": option,
            "scope": scope, "view": view if view != "honest" else a.honest, "value": value,
            "n_configs": len(cfg), "n": len(r), "epochs": int(cfg["epochs"].max()),
            "pairs": cfg["pairs"].iloc[0],
            "status": "complete" if (cfg["status"] == "complete").all() else
            "PARTIAL" if cfg["partial"].any() else "incomplete",
        }
        for m in paper.METRICS:
            rec[f"{m}_mean"], rec[f"{m}_std"] = whole_mean_std(r[m].to_numpy(dtype=float))
        rec["_values"] = r["test_error"].to_numpy(dtype=float)
        rows.append(rec)
    if rows:
        _against_best(rows)
    return sorted(rows, key=lambda x: x["test_error_mean"])


def _against_best(rows: list[dict[str, Any]]) -> None:
    """Mark the row of lowest mean test error and compare every row's repetitions with its (Welch)."""
    ref = min(rows, key=lambda x: (math.inf if pd.isna(x["test_error_mean"]) else x["test_error_mean"]))
    for rec in rows:
        rec["best"] = rec is ref
        d, lo, hi, p = welch(rec["_values"], ref["_values"])
        rec.update(diff_vs_best=d, ci_low=lo if rec is not ref else np.nan,
                   ci_high=hi if rec is not ref else np.nan, p_vs_best=p if rec is not ref else np.nan)
    for rec in rows:
        del rec["_values"]


# ---------------------------------------------------------------------------------------------------
# --compare OPTION


def compare_table(analyses: Sequence[Analysis], option: str) -> Table:
    """`--compare OPTION`: statistics per value of one grid option, in every experiment that varies it."""
    used = [a for a in analyses if option in a.exp.axes and a.configs[option].nunique() > 1]
    if not used:
        axes = sorted({ax for a in analyses for ax in a.exp.axes})
        raise ReportError(f"no experiment varies '{option}'" +
                          (f"; options that vary: {', '.join(axes)}" if axes else "; no experiment has grid axes"))
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for a in used:
        rows += _compare_rows(a, option, notes)
    data = pd.DataFrame(rows)[COMPARE_COLUMNS]
    views = sorted({HONEST_RULES[a.honest] for a in used})
    rule = (f"Test comparison error per value of '{option}' (errors in %, mean ± sample std over repetitions, "
            f"each at {' / '.join(views)}). 'others at best': the configurations that differ from the "
            f"experiment's best only in {option}; 'pooled': all its configurations, grouped by {option}. "
            f"* = lowest mean; Δ, 95% CI (Welch) and p (Welch t-test) vs that value; n = repetitions. "
            + "; ".join(f"{a.exp.label}: {protocol(a.configs)}" for a in used) + ".")
    return Table(f"compare_{safe(option)}", f"Comparison — {option}", rule, data, _compare_display(option, data),
                 notes, optional=("95% CI", "train error", "test digit error", "configs", "p (Welch)"))


def _compare_rows(a: Analysis, option: str, notes: list[str]) -> list[dict[str, Any]]:
    """One experiment's rows of the comparison (others at best, then pooled); its notes go to `notes`."""
    rows = []
    at_best = slice_at_best(a, option)
    if at_best[option].nunique() > 1:
        rows += group_rows(a, option, "others_at_best", "honest", at_best)
    else:
        notes.append(f"{a.exp.label}: no configuration differs from the best only in {option}")
    rows += group_rows(a, option, "pooled", "honest", a.configs)
    others = [ax for ax in a.exp.axes if ax != option]
    best = a.configs.iloc[0]
    notes.append(f"{a.exp.label}: best configuration {best['config']}" +
                 (f"; 'others_at_best' holds {', '.join(f'{ax}={best[ax]}' for ax in others)}" if others else ""))
    notes += [n for n in experiment_notes(a) if "fixed settings" in n]
    return rows


def _compare_display(option: str, data: pd.DataFrame) -> list[Column]:
    display: list[Column] = [
        ("experiment", lambda r: f"{r['space']}/{r['experiment']}"),
        ("scope", lambda r: "others at best" if r["scope"] == "others_at_best" else "pooled"),
        (option, lambda r: str(r["value"]) + (" *" if r["best"] else "")),
        ("configs", lambda r: str(r["n_configs"])), ("n", lambda r: str(r["n"])),
        ("test cmp error", lambda r: pm(r, "test_error")), *stat_columns(),
        ("test digit error", lambda r: pm(r, "test_digit_error")),
        ("train error", lambda r: pm(r, "train_error")),
    ]
    if (data["status"] != "complete").any():
        display.append(("status", lambda r: str(r["status"])))
    return display


# ---------------------------------------------------------------------------------------------------
# The paper's ablations


@dataclass(frozen=True)
class PaperAblation:
    """One of the paper's ablation tables: which search space, the option(s) that switch it, its numbers."""

    space: str
    options: tuple[str, ...]  # in order of preference
    reference: dict[str, paper.Row]  # the paper's rows "with" and "without"
    name: str
    title: str
    paper_text: str  # how the rule names the paper's setting


def ablation_table(analyses: Sequence[Analysis], spec: PaperAblation) -> Table | None:
    """The paper's ablation on `spec.space`, when some experiment varies one of `spec.options`."""
    candidates = [a for a in analyses if a.exp.space == spec.space]
    # Final stage first, then screen, then the rest; the latest started first within each.
    order = sorted(candidates, key=lambda a: str(a.exp.meta.get("started") or ""), reverse=True)
    order.sort(key=lambda a: (a.exp.stage != "final", a.exp.stage != "screen"))
    for a in order:
        for option in spec.options:
            if option in a.exp.axes:
                at_best = slice_at_best(a, option)
                if at_best[option].nunique() >= 2:
                    return _ablation(a, option, at_best, spec)
    return None


def _ablation(a: Analysis, option: str, at_best: pd.DataFrame, spec: PaperAblation) -> Table:
    rows = []
    for view in ("best_epoch", "honest"):
        for rec in group_rows(a, option, "others_at_best", view, at_best):
            ref = spec.reference["with" if is_on(str(rec["value"])) else "without"]
            for m in paper.METRICS:
                rec[f"paper_{m}_mean"], rec[f"paper_{m}_std"] = ref[m]
            rec["diff_paper_test_error"] = rec["test_error_mean"] - rec["paper_test_error_mean"]
            rows.append(rec)
    data = pd.DataFrame(rows)[COMPARE_COLUMNS + PAPER_COLUMNS]
    best = a.configs.iloc[0]
    others = [f"{ax}={best[ax]}" for ax in a.exp.axes if ax != option]
    display: list[Column] = [
        ("view", lambda r: VIEW_LABELS[r["view"]]),
        (option, lambda r: f"{r['value']} ({'with' if is_on(str(r['value'])) else 'without'})"
         + (" *" if r["best"] else "")),
        ("n", lambda r: str(r["n"])),
        ("train", lambda r: pm(r, "train_error")), ("test digit", lambda r: pm(r, "test_digit_error")),
        ("test cmp", lambda r: pm(r, "test_error")), ("paper test cmp", lambda r: pm(r, "paper_test_error")),
        ("Δ paper", lambda r: signed(r["diff_paper_test_error"])), *stat_columns(),
    ]
    rule = (f"{a.exp.label}: {option} varied with the other options at the best configuration's values "
            f"({', '.join(others) or 'none'}); errors in %, mean ± sample std over repetitions, in both "
            f"epoch views. * = lower mean in that view; Δ, 95% CI (Welch) and p (Welch t-test) vs it. "
            f"Paper ({spec.paper_text}): 20 repetitions, 1,000 pairs, 25 epochs, best-epoch view. "
            f"{protocol(at_best)}.")
    return Table(spec.name, spec.title, rule, data, display, experiment_notes(a, at_best),
                 optional=("95% CI", "train", "test digit", "p (Welch)", "Δ vs best"))
