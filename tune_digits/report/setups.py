"""The setups side by side, per network of the paper: the paper's row, the authors' own setup (their code's
networks and training, search space `authors_<net>`) and our tuned one (search space `<net>`), each in the
paper's view and an honest one, so the protocol differences show in one table."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from .. import paper
from .analysis import Analysis, by_space
from .table import VIEW_LABELS, Column, Table, num, pm, protocol

SETUP_LABELS = {"paper": "paper (published)", "authors": "authors' setup", "ours": "our tuned setup"}


def setups_table(analyses: Sequence[Analysis]) -> Table | None:
    """None when no authors' setup has results (nothing to set beside the paper and ours)."""
    chosen = by_space(analyses)
    nets = [n for n in paper.TABLE_II if f"{paper.AUTHORS_PREFIX}{n}" in chosen]
    if not nets:
        return None
    records = []
    for net in nets:
        records.append(_paper_record(net))
        for setup, space in (("authors", f"{paper.AUTHORS_PREFIX}{net}"), ("ours", net)):
            if space in chosen:
                records += _setup_records(net, setup, chosen[space])
    data = pd.DataFrame(records)
    rule = ("Per network: the paper's published numbers (20 repetitions, best epoch chosen on the test set); the "
            "authors' setup (their code's networks and training: SGD lr 0.1, no momentum, no weight decay, "
            "constant lr, 5 pairs per batch in a fixed order, auxiliary loss weight 1, whole-split "
            "standardisation; search spaces authors_<net>); our tuned setup (search spaces <net>). Each of "
            "ours in two views: the paper's rule (first epoch of lowest test digit error, optimistic) and an "
            "honest one. Errors in %, mean ± sample std over repetitions; n = repetitions (fewer than 20 is a "
            "subset). " + "; ".join(dict.fromkeys(f"{r['space']}: {r['protocol']}" for r in records if r["space"]))
            + ".")
    return Table("table5_setups", "Setups side by side — paper, authors' setup, our tuned setup", rule, data,
                 _display(), optional=("train", "epoch", "results"))


def _paper_record(net: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"network": net, "setup": "paper", "space": "", "experiment": "", "view": "best_epoch",
                           "n": paper.REPETITIONS, "epoch_mean": float("nan"), "protocol": "", "settings": ""}
    for m in paper.METRICS:
        rec[f"{m}_mean"], rec[f"{m}_std"] = paper.TABLE_II[net][m]
    return rec


def _setup_records(net: str, setup: str, a: Analysis) -> list[dict[str, Any]]:
    best = a.configs.iloc[0]
    honest = a.honest if a.honest != "mixed" else "val_epoch"
    out = []
    for view, prefix in (("best_epoch", "best_epoch_"), (honest, "")):
        rec: dict[str, Any] = {"network": net, "setup": setup, "space": a.exp.space, "experiment": a.exp.name,
                               "view": view, "n": int(best["n"]), "epoch_mean": best[f"{prefix}epoch_mean"],
                               "protocol": protocol(a.configs.iloc[:1]), "settings": best["settings"]}
        for m in paper.METRICS:
            rec[f"{m}_mean"], rec[f"{m}_std"] = best[f"{prefix}{m}_mean"], best[f"{prefix}{m}_std"]
        out.append(rec)
    return out


def _display() -> list[Column]:
    return [("network", lambda r: str(r["network"])), ("setup", lambda r: SETUP_LABELS[r["setup"]]),
            ("results", lambda r: f"{r['space']}/{r['experiment']}" if r["space"] else "—"),
            ("view", lambda r: VIEW_LABELS[r["view"]]), ("n", lambda r: str(r["n"])),
            ("epoch", lambda r: num(r["epoch_mean"], 1)), ("test cmp", lambda r: pm(r, "test_error")),
            ("test digit", lambda r: pm(r, "test_digit_error")), ("train", lambda r: pm(r, "train_error"))]

