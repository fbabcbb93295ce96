"""Issue 16's honest best: the `levers` study beside the paper, the authors' code and the best peer (both cited),
our `best` study and the authors' setup, each with its selection rule and total parameter count (an ensemble
counts every member); and what each lever of the `levers` screen gave on its validation split."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper, results
from ..errors import UserError
from .analysis import KEY, Analysis, by_space
from .load import value_order
from .stats import mean_std
from .table import VIEW_LABELS, Column, Table, num, pm

STUDY = "levers"
# The result sets set beside the cited rows, where present: (space, label, how its configuration was chosen).
STUDIES = (
    (f"{paper.AUTHORS_PREFIX}lenet", "authors' setup", "their settings"),
    (f"{paper.AUTHORS_PREFIX}resnet", "authors' setup", "their settings"),
    ("best", "best study", "config on val"),
    (STUDY, "levers study", "config on val"),
    ("regularisers", "regularisers study", "config on val"),
    ("distortions", "distortions study", "config on val"),
)
PAPER_RULE = "test-selected epoch (optimistic)"


def honest_tables(analyses: Sequence[Analysis]) -> list[Table] | None:
    """None without `levers` results; else the side-by-side table, and a levers table per screen."""
    if not any(a.exp.space == STUDY for a in analyses):
        return None
    tables = [_side_by_side(analyses)]
    return tables + [levers_table(a) for a in analyses if a.exp.space == STUDY and a.exp.stage == "screen"]


def _side_by_side(analyses: Sequence[Analysis]) -> Table:
    chosen = by_space(analyses)
    records = [*_paper_records(), *({"results": "", "settings": "", **c} for c in paper.CITED)]
    records += [_study_record(chosen[space], label, choice) for space, label, choice in STUDIES if space in chosen]
    data = pd.DataFrame(records)
    rule = ("Test comparison error in %, mean ± sample std over n repetitions. Paper: Table II as published (its "
            "networks are the authors' code's, parameters counted from them). Cited rows are measurements by "
            "others outside this repository (docs/protocol.md §7), not results of this code: the authors' code (ResNet 2 blocks × 16 "
            "channels, k=7, BN; 1,000 pairs, 25 epochs, final epoch, 7 rounds) and the best peer (a siamese LeNet "
            "predicting both digits, compared with a hard ≤, 800 training pairs, 10 rounds). Result sets: the "
            "honest view of the stage that stands for each space (final if any); 'config on val': its "
            "configuration chosen on val_error in its screen. Parameters: the whole trained model, every "
            "ensemble member.")
    return Table("table6_honest", "Honest best — levers study beside the paper, the authors' code and the best "
                 "peer", rule, data, _side_display(), optional=("test digit", "results"))


def _paper_records() -> list[dict[str, Any]]:
    out = []
    for net in ("lenet", paper.BEST_ARCH):
        row = paper.TABLE_II[net]
        out.append({"source": f"paper, {net}", "results": "", "rule": PAPER_RULE,
                    "n": paper.REPETITIONS, "parameters": paper.AUTHORS_PARAMETERS[net],
                    "test_error_mean": row["test_error"][0], "test_error_std": row["test_error"][1],
                    "test_digit_error_mean": row["test_digit_error"][0],
                    "test_digit_error_std": row["test_digit_error"][1], "settings": ""})
    return out


def _study_record(a: Analysis, label: str, choice: str) -> dict[str, Any]:
    best = a.configs.iloc[0]
    return {"source": f"{label}, {a.exp.meta.get('network') or a.exp.space}", "results": f"{a.exp.space}/{a.exp.name}",
            "rule": f"{VIEW_LABELS.get(a.honest, a.honest)}, {choice}", "n": int(best["n"]),
            "parameters": parameters(a, str(best["config"])),
            **{f"{m}_{s}": best[f"{m}_{s}"] for m in ("test_error", "test_digit_error") for s in ("mean", "std")},
            "settings": best["settings"]}


def parameters(a: Analysis, config: str) -> int | None:
    """The trained parameters of one configuration of an experiment (every ensemble member), from the typed
    config search.json records for one of its trials; None when that does not make a model (no config recorded,
    a network this process does not know)."""
    from ..train import TrainConfig, parameter_count  # torch, only for the configurations shown

    trial_id = a.exp.rows.loc[a.exp.rows["config"] == config, "trial_id"].iloc[0]
    recorded = results.trial_config(a.exp.meta.get("trials", {}).get(trial_id))
    if recorded is None:
        return None
    flat = {k: v for k, v in recorded.items() if k not in results.BOOKKEEPING}
    flat.setdefault("network", a.exp.meta.get("network") or a.exp.space)
    try:
        return parameter_count(TrainConfig.from_flat(flat))
    except UserError:
        return None


def _side_display() -> list[Column]:
    return [("source", lambda r: str(r["source"])), ("results", lambda r: str(r["results"]) or "—"),
            ("selection", lambda r: str(r["rule"])), ("n", lambda r: str(r["n"])),
            ("parameters", lambda r: "—" if pd.isna(r["parameters"]) else f"{int(r['parameters']):,}"),
            ("test cmp", lambda r: pm(r, "test_error")), ("test digit", lambda r: pm(r, "test_digit_error"))]


def levers_table(a: Analysis) -> Table:
    """Per lever (grid axis) and value: val_error and test_error at the final epoch, mean ± sample std over every
    repetition (configurations × seeds) with that value, and the difference from the lever's first value."""
    rows = a.exp.rows
    last = rows.loc[rows.groupby(KEY, sort=False)["epoch"].idxmax().to_numpy()]
    records = []
    for axis in a.exp.axes:
        values = sorted(last[axis].unique(), key=value_order)
        base = np.nan
        for value in values:
            part = last[last[axis] == value]
            rec = {"lever": axis, "value": value, "n": len(part)}
            for m in ("val_error", "test_error"):
                rec[f"{m}_mean"], rec[f"{m}_std"] = mean_std(part[m].to_numpy(dtype=float))
            base = rec["val_error_mean"] if value == values[0] else base
            rec["diff_val_error"] = rec["val_error_mean"] - base
            records.append(rec)
    rule = (f"{a.exp.label} ({a.exp.stage}): each lever's values over all repetitions that have them (the other "
            "levers at each of their values), read at the final epoch. val_error (validation split, what chooses) "
            "and test_error in %, mean ± sample std; Δ val: difference from the lever's first value.")
    display: list[Column] = [("lever", lambda r: str(r["lever"])), ("value", lambda r: str(r["value"])),
                             ("n", lambda r: str(r["n"])), ("val cmp", lambda r: pm(r, "val_error")),
                             ("Δ val", lambda r: num(r["diff_val_error"], 3)), ("test cmp", lambda r: pm(r, "test_error"))]
    return Table(f"table6_levers_{a.exp.name}", f"Levers — {a.exp.label}: what each gave on the validation split",
                 rule, pd.DataFrame(records), display)
