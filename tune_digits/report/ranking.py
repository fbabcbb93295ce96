"""Table I (one experiment's configurations ranked) and Table II (each search space's best vs the paper)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper, results
from .analysis import Analysis, by_space
from .load import fmt_value, values_label
from .inference import ALPHA, holm
from .stats import welch
from .table import (VIEW_LABELS, Column, Table, experiment_notes, num, pm, protocol, protocols,
                    signed, stat_columns, status_notes)

TABLE_I_COLUMNS = [
    "space", "experiment", "stage", "rank", "best", "config", "<axes>", "n", "seeds_expected", "epochs", "pairs",
    "status", "rank_by", "selection", "test_error_mean", "test_error_std", "diff_vs_best", "ci_low", "ci_high",
    "p_vs_best", "p_holm", "tied_with_best", "test_digit_error_mean", "test_digit_error_std", "train_error_mean", "train_error_std",
    "train_loss_mean", "train_loss_std", "val_error_mean", "val_error_std", "epoch_mean",
    "best_epoch_test_error_mean", "best_epoch_test_error_std", "best_epoch_epoch_mean", "settings",
]


def _with_welch(configs: pd.DataFrame, groups: dict[str, np.ndarray], ref: str) -> pd.DataFrame:
    stats_rows = [welch(groups[c], groups[ref]) for c in configs["config"]]
    out = configs.copy()
    for i, col in enumerate(("diff_vs_best", "ci_low", "ci_high", "p_vs_best")):
        out[col] = [s[i] for s in stats_rows]
    out.loc[out["config"] == ref, ["ci_low", "ci_high", "p_vs_best"]] = np.nan
    # One family: every configuration against the best. Tied: not significantly worse after the correction
    # (the set to choose among); a configuration that cannot be tested (one seed, no spread) is not marked.
    out["p_holm"] = holm(out["p_vs_best"].to_numpy(dtype=float))
    out["tied_with_best"] = (out["config"] == ref) | (out["p_holm"] >= ALPHA)
    return out


def ranking_table(a: Analysis) -> Table:
    """Table I for one experiment: every configuration ranked, best marked, each compared with the best."""
    exp = a.exp
    honest = a.reps[a.reps["view"] == "honest"]
    groups = {c: r["test_error"].to_numpy(dtype=float) for c, r in honest.groupby("config", sort=False)}
    data = _with_welch(a.configs, groups, a.best)
    data.insert(0, "space", exp.space)
    data.insert(1, "experiment", exp.name)
    data.insert(2, "stage", exp.stage)
    data["rank_by"] = a.rank_by
    data["selection"] = a.honest
    i = TABLE_I_COLUMNS.index("<axes>")
    data = data[[*TABLE_I_COLUMNS[:i], *exp.axes, *TABLE_I_COLUMNS[i + 1:]]]
    race = exp.meta.get("race")
    outcomes = race_outcomes(race, exp.axes) if race else {}
    if race:
        data["race"] = data["config"].map(outcomes).fillna("survivor")
    rule = ("Ranked by mean val_error (at each repetition's epoch of lowest val_error) where a validation split was "
            "held out, else by mean test_error at the final epoch; complete configurations first. * = best; = : "
            f"tied with it (not significantly worse after Holm's correction over the table, α = {ALPHA}: the set to "
            "choose among). Errors in %, mean ± sample std; Δ, 95% CI (Welch) and p Holm: each configuration's test "
            "comparison error against the best's. 'test-selected': each repetition's epoch chosen on the test set "
            "(the paper's rule, optimistic).")
    notes, shown = experiment_notes(a), a.configs
    ties = int(data["tied_with_best"].sum())
    conditions = (f"{len(data)} configurations ranked by {a.rank_by} ({ties} tied with the best), "
                  f"{protocol(data)}")
    if race:  # said under this table only: the rule above is shared with the grid screens' tables
        conditions += f"; raced ({race['first']} seeds first, alpha {race['alpha']}: see the race column)"
        notes = [f"Raced (--search race): a configuration out in round r has r seeds, dropped by Friedman's test and "
                 "Conover's against the round's best (Holm); survivors ran to every seed, and the final stage takes "
                 f"the race's winner: the survivor of lowest mean {exp.meta.get('metric', 'val_error')} at the final "
                 "epoch, which the race tests, where this table ranks each repetition at its best epoch.", *notes]
        dropped = [c for c, outcome in outcomes.items() if outcome.startswith("out")]
        shown = a.configs[~a.configs["config"].isin(dropped)]  # a configuration the race dropped is not incomplete
        if race.get("finished"):  # nor one a finished race gave every seed it meant to (a winner left alone early)
            shown = shown[~shown["status"].str.fullmatch(r"\d+/\d+ seeds complete")]
    stage = "" if exp.stage == exp.name else f" ({exp.stage})"
    return Table(f"table1_{exp.space}_{exp.name}", f"Table I — {exp.label}{stage}",
                 rule, data.reset_index(drop=True), _ranking_display(a, data), notes,
                 optional=("95% CI", "train error", "test digit error", "test-selected cmp", "p Holm", "n", "status"),
                 ranked=True, conditions=conditions, short_notes=status_notes(a, shown))


def race_outcomes(race: dict, axes: Sequence[str]) -> dict[str, str]:
    """A raced screen's eliminated configurations (by Table I's label) → "out in round r (p = …)", and its
    winner → "winner"; the others survived (search.json's `race`, tune_digits/tuning/racer.py)."""
    outcomes = {values_label(e["values"], axes): f"out in round {e['round']} (p = {e['p_value']:.2g})"
                for e in race.get("eliminations", [])}
    if race.get("winner_config"):
        outcomes[values_label(race["winner_config"], axes)] = "winner"
    return outcomes


def _ranking_display(a: Analysis, data: pd.DataFrame) -> list[Column]:
    display: list[Column] = [("rank", lambda r: str(r["rank"])),
                             ("", lambda r: "*" if r["best"] else "=" if r["tied_with_best"] else "")]
    display += [(ax, lambda r, ax=ax: str(r[ax])) for ax in a.exp.axes]
    display += [("n", lambda r: str(r["n"]))]
    if a.rank_by == "val_error":
        display += [("val error", lambda r: pm(r, "val_error"))]
    display += [("test cmp error", lambda r: pm(r, "test_error")), *stat_columns(adjusted=True),
                ("test digit error", lambda r: pm(r, "test_digit_error")),
                ("train error", lambda r: pm(r, "train_error")),
                ("test-selected cmp", lambda r: pm(r, "best_epoch_test_error"))]
    if (data["status"] != "complete").any():
        display += [("status", lambda r: str(r["status"]))]
    if "race" in data:
        display += [("race", lambda r: str(r["race"]))]
    return display


def best_table(analyses: Sequence[Analysis]) -> Table:
    """Table II: each search space's best configuration in both epoch views, beside the paper's numbers."""
    chosen = by_space(analyses)
    data = pd.DataFrame([rec for space, a in chosen.items() for rec in _best_records(space, a)])
    rule = ("Each network's best configuration in its final stage (else its screen); errors in %, mean ± sample "
            "std over repetitions, at the paper's 'best epoch' (the first of lowest test digit error: chosen on the "
            "test set, optimistic) and an honest one (lowest val_error where a validation split was held out, else "
            "the final epoch). Paper: 20 repetitions, 1,000 pairs, 25 epochs, best epoch; Δ = ours − paper; "
            f"authors_<net> beside its net, other result sets beside the paper's best ({paper.BEST_ARCH}).")
    conditions = "Ours: " + protocols([(space, protocol(a.configs.iloc[:1])) for space, a in chosen.items()]) + "."
    return Table("table2_best", "Table II — best configuration per architecture vs the paper", rule, data,
                 _best_display(data), _best_notes(chosen),
                 optional=("Δ train", "Δ test digit", "paper train", "paper test digit", "epoch", "train",
                           "test digit"), conditions=conditions, short_notes=_short_notes(chosen))


def _best_records(space: str, a: Analysis) -> list[dict[str, Any]]:
    """Table II's two rows for one search space: its best configuration in the paper's view, then honestly."""
    best = a.configs.iloc[0]
    ref = paper.reference(space)
    stands_in = ref == paper.BEST_ARCH and space not in (ref, f"{paper.AUTHORS_PREFIX}{ref}")
    ref_label = f"{ref} (paper's best)" if stands_in else ref
    honest_view = a.honest if a.honest != "mixed" else "val_epoch"
    out = []
    for view, prefix in (("best_epoch", "best_epoch_"), (honest_view, "")):
        rec: dict[str, Any] = {
            "space": space, "experiment": a.exp.name, "stage": a.exp.stage, "view": view,
            "config": best["config"], "n": best["n"], "seeds_expected": best["seeds_expected"],
            "epochs": best["epochs"], "pairs": best["pairs"], "status": best["status"],
            "epoch_mean": best[f"{prefix}epoch_mean"], "paper_ref": ref_label,
        }
        for m in paper.METRICS:
            rec[f"{m}_mean"], rec[f"{m}_std"] = best[f"{prefix}{m}_mean"], best[f"{prefix}{m}_std"]
            rec[f"paper_{m}_mean"], rec[f"paper_{m}_std"] = paper.TABLE_II[ref][m]
            rec[f"diff_{m}"] = rec[f"{m}_mean"] - rec[f"paper_{m}_mean"]
        rec["settings"] = best["settings"]
        out.append(rec)
    return out


def _best_display(data: pd.DataFrame) -> list[Column]:
    display: list[Column] = [
        ("space", lambda r: f"{r['space']}/{r['experiment']}"),
        ("view", lambda r: VIEW_LABELS[r["view"]]),
        ("n", lambda r: str(r["n"])), ("epoch", lambda r: num(r["epoch_mean"], 1)),
    ]
    for m, label in (("train_error", "train"), ("test_digit_error", "test digit"), ("test_error", "test cmp")):
        display += [(label, lambda r, m=m: pm(r, m)), (f"paper {label}", lambda r, m=m: pm(r, f"paper_{m}")),
                    (f"Δ {label}", lambda r, m=m: signed(r[f"diff_{m}"]))]
    if (data["status"] != "complete").any():
        display.append(("status", lambda r: "complete" if r["status"] == "complete" else "see notes"))
    return display


def _best_notes(chosen: dict[str, Analysis]) -> list[str]:
    notes = []
    for a in chosen.values():
        best = a.configs.iloc[0]
        notes.append(f"{a.exp.label} best configuration (rank 1 of {len(a.configs)} by {a.rank_by}): "
                     f"{best['settings'] or best['config']}")
        if best["status"] != "complete":
            notes.append(f"{a.exp.label} [{best['config']}]: {best['status']}")
    return notes


# Settings a short view leaves out of the shared settings: each result set's own (its network, its protocol), or
# how it ran rather than what it trained.
_OWN = frozenset({"network", "pairs", "epochs", "precision", "train_eval"})


def _short_notes(chosen: dict[str, Analysis]) -> list[str]:
    """Each best configuration's grid values on one line, and the other settings once per group sharing them."""
    values, shared = [], {}
    for space, a in chosen.items():
        best = a.configs.iloc[0]
        row = a.exp.rows[a.exp.rows["config"] == best["config"]].iloc[0]
        cols = [c for c in a.exp.rows.columns if c not in results.RUN_COLUMNS and c not in ("config", *_OWN)]
        grid = ", ".join(f"{ax}={best[ax]}" for ax in a.exp.axes)
        values += [f"{space} {grid}"] if grid else []  # a single configuration: its settings say it all
        rest = ", ".join(f"{c}={fmt_value(row[c])}" for c in cols if c not in a.exp.axes and not pd.isna(row[c]))
        shared.setdefault(rest, []).append(space)
        out_statuses = [] if best["status"] == "complete" else [f"{a.exp.label} [{best['config']}]: {best['status']}"]
        values += out_statuses
    papers = {rest: [s for s in spaces if s in paper.TABLE_II] for rest, spaces in shared.items()}
    others = [s for spaces in shared.values() for s in spaces if s not in paper.TABLE_II]
    return (["best configurations: " + "; ".join(values)]
            + [f"settings of {', '.join(spaces)}: {rest or '(defaults)'}" for rest, spaces in papers.items() if spaces]
            + (["settings of the other result sets: the 'settings' column of report/table2_best.csv (--all)"]
               if others else []))
