"""The findings: the study's questions answered with their uncertainty, the report's first table.

Four families of questions, each corrected for multiple comparisons on its own (Holm):
- per ranked experiment (a Table I), each option's effect: each other value of the option against the best
  configuration's value, the other options held at the best configuration's values;
- the networks: each of the paper's networks (its best configuration, in the stage that stands for it) against
  the best network;
- the studies: each study against the result set it builds on (`STUDY_BASES`, and authors_<net> against <net>);
- per final with variants (its winner's ablation, variants.py), each variant against it, paired by seed.
Each answer: Δ of mean test comparison error (the honest epoch) with its 95 % Welch CI, the Welch t-test's p
(a variant: the paired t's), the family's Holm-adjusted p, a verdict, the seeds per arm an effect of this size
needs at power 0.8, and where the paper states a conclusion, whether our data support it."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper
from .ablation import slice_at_best
from .analysis import Analysis, by_space
from .inference import ALPHA, POWER, cohen_d, holm, seeds_needed, verdict
from .load import value_order
from .stats import welch
from .table import Column, Table
from .variants import Variant, comparison, find_variants

# A study's result set → the one it builds on and is asked to beat (the levers study builds on best; best on ResNet).
STUDY_BASES = {"best": paper.BEST_ARCH, "levers": "best"}
COLUMNS = ["family", "kind", "question", "experiment", "option", "better", "worse", "candidate", "reference",
           "n_candidate", "n_reference", "candidate_mean", "reference_mean", "diff", "ci_low", "ci_high", "test",
           "p", "p_holm", "cohen_d", "seeds_needed", "resolved", "verdict", "verdict_short", "shown",
           "paper_claim", "paper_support"]


def findings_table(analyses: Sequence[Analysis]) -> Table | None:
    """None when no question can be asked (a single configuration of a single network)."""
    rows: list[dict[str, Any]] = []
    for a in analyses:
        if a.exp.stage == "screen" or len(a.configs) > 1:
            rows += _corrected(_option_rows(a))
    rows += _corrected(_network_rows(analyses))
    rows += _corrected(_study_rows(analyses))
    rows += variant_rows(analyses)
    if not rows:
        return None
    data = pd.DataFrame(rows)[COLUMNS]
    rule = (f"Test comparison error (%, honest epoch) of two arms of repetitions: Δ = candidate − reference mean "
            f"with its 95% Welch CI, Welch t-test p (a final's variants: paired by seed, paired t), p Holm-adjusted "
            f"in its family (an experiment's options; the networks; the studies; a final's variants). Resolved: "
            f"adjusted p < {ALPHA}; open: the seeds per arm an effect this size needs at power {POWER} "
            f"(statsmodels). Options: each value against the best configuration's, the others at its values; "
            f"shown: the closest value and the paper's choice. paper: its conclusion, tested.")
    return Table("findings", "Findings — the study's questions, with their uncertainty", rule, data, _display(),
                 optional=("n", "p", "paper"), shown=data["shown"].to_numpy(dtype=bool))


def _comparison(candidate: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    diff, lo, hi, p = welch(candidate, reference)
    d = cohen_d(candidate, reference)
    return {"n_candidate": int((~np.isnan(candidate)).sum()), "n_reference": int((~np.isnan(reference)).sum()),
            "candidate_mean": float(np.nanmean(candidate)), "reference_mean": float(np.nanmean(reference)),
            "diff": diff, "ci_low": lo, "ci_high": hi, "test": "Welch t", "p": p, "cohen_d": d,
            "seeds_needed": seeds_needed(d)}


def _option_rows(a: Analysis) -> list[dict[str, Any]]:
    best = a.configs.iloc[0]
    ref = a.values(str(best["config"]), "honest")
    rows = []
    for ax in a.exp.axes:
        at_best = slice_at_best(a, ax)
        claim = paper.OPTION_CLAIMS.get((a.exp.space, ax))
        others = [c for _, c in at_best.iterrows() if c["config"] != best["config"]]
        for c in sorted(others, key=lambda c: value_order(str(c[ax]))):
            rec = {"family": f"options: {a.exp.label}", "kind": "option", "experiment": a.exp.label, "option": ax,
                   "candidate": f"{ax}={c[ax]}", "reference": f"{ax}={best[ax]}",
                   "question": f"{_short_label(a)} {ax}: {c[ax]} vs {best[ax]}",
                   **_comparison(a.values(str(c["config"]), "honest"), ref)}
            rec["_claim"] = (None if claim is None else
                             (claim[0] and f"{ax}={claim[0]}", claim[1]))
            rows.append(rec)
        _mark_shown([r for r in rows if r["option"] == ax], claim and claim[0] and f"{ax}={claim[0]}")
    return rows


def _short_label(a: Analysis) -> str:
    """A screen by its space alone (the usual case), any other experiment by space/name."""
    return a.exp.space if a.exp.name == "screen" else a.exp.label


def _mark_shown(rows: list[dict[str, Any]], paper_choice: str | None) -> None:
    """Per option, the rows a short view shows: the closest value to the best's, and the paper's choice."""
    if not rows:
        return
    closest = min(rows, key=lambda r: math.inf if pd.isna(r["diff"]) else r["diff"])
    for r in rows:
        r["shown"] = r is closest or r["candidate"] == paper_choice


def _network_rows(analyses: Sequence[Analysis]) -> list[dict[str, Any]]:
    chosen = {s: a for s, a in by_space(analyses).items() if s in paper.TABLE_II}
    if len(chosen) < 2:
        return []
    mean = {s: float(a.configs.iloc[0]["test_error_mean"]) for s, a in chosen.items()}
    top = min(mean, key=lambda s: math.inf if math.isnan(mean[s]) else mean[s])
    ref = chosen[top].values(chosen[top].best, "honest")
    rows = []
    for space, a in chosen.items():
        if space == top:
            continue
        paper_better = min((space, top), key=lambda s: paper.TABLE_II[s]["test_error"][0])
        rows.append({"family": "networks", "kind": "network", "experiment": a.exp.label, "option": "",
                     "candidate": space, "reference": top, "question": f"network: {space} vs {top}",
                     "shown": True, "_claim": (paper_better, paper.NETWORK_CLAIM),
                     **_comparison(a.values(a.best, "honest"), ref)})
    return rows


def _study_rows(analyses: Sequence[Analysis]) -> list[dict[str, Any]]:
    chosen = by_space(analyses)
    bases = {**STUDY_BASES, **{f"{paper.AUTHORS_PREFIX}{n}": n for n in paper.TABLE_II}}
    rows = []
    for study, base in bases.items():
        if study in chosen and base in chosen:
            a, b = chosen[study], chosen[base]
            rows.append({"family": "studies", "kind": "study", "experiment": a.exp.label, "option": "",
                         "candidate": study, "reference": base, "question": f"study: {study} vs {base}",
                         "shown": study in STUDY_BASES, "_claim": None,
                         **_comparison(a.values(a.best, "honest"), b.values(b.best, "honest"))})
    return rows


def variant_rows(analyses: Sequence[Analysis]) -> list[dict[str, Any]]:
    """Each final's variants against it, paired by seed: one family per final (an ablation of its winner)."""
    found = find_variants(analyses)
    rows = []
    for final in dict.fromkeys(v.final.exp.label for v in found):
        rows += _corrected([_variant_row(v) for v in found if v.final.exp.label == final])
    return rows


def _variant_row(v: Variant) -> dict[str, Any]:
    return {"family": f"ablation: {v.final.exp.label}", "kind": "variant", "experiment": v.analysis.exp.label,
            "option": ", ".join(v.changes), "candidate": v.candidate, "reference": v.reference,
            "question": v.question, "shown": True, "_claim": None, "final": v.final.exp.label,
            "variant": v.analysis.exp.name, "changed": v.changed, **comparison(v)}


def _corrected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One family's rows with their Holm-adjusted p, verdicts and the paper's support."""
    adjusted = holm([r["p"] for r in rows])
    for r, p_adj in zip(rows, adjusted):
        better, worse = ((r["reference"], r["candidate"]) if not r["diff"] < 0 else (r["candidate"], r["reference"]))
        v = verdict(better, worse, r["diff"], float(p_adj), min(r["n_candidate"], r["n_reference"]),
                    r["seeds_needed"])
        claim = r.pop("_claim")
        r.update(better=better, worse=worse, p_holm=float(p_adj), resolved=v.resolved, verdict=v.text,
                 verdict_short=v.short, paper_claim="" if claim is None else claim[1],
                 paper_support="" if claim is None else support(claim[0], better, worse, v.resolved))
    return rows


def support(paper_better: str | None, better: str, worse: str, resolved: bool) -> str:
    """Whether a comparison's answer supports the paper's: `paper_better` is the arm the paper found better,
    None where it found them similar."""
    if paper_better is None:
        return "contradicted: a difference" if resolved else "consistent: no difference resolved"
    if paper_better not in (better, worse):
        return ""  # the paper's choice is neither arm: this row does not test it
    agrees = paper_better == better
    if resolved:
        return "supported" if agrees else "contradicted"
    return "not resolved (our means agree)" if agrees else "not resolved (our means disagree)"


def _display() -> list[Column]:
    def ci(r: pd.Series) -> str:
        def x(v: float) -> str:  # 3 significant digits or so: a narrow column
            return f"{v:+.2f}" if abs(v) < 10 else f"{v:+.1f}"
        return "—" if pd.isna(r["ci_low"]) else f"{x(r['diff'])} [{x(r['ci_low'])}, {x(r['ci_high'])}]"

    def p(x: Any) -> str:
        return "—" if pd.isna(x) else "<0.001" if x < 0.001 else f"{x:.3f}"

    return [("question", lambda r: str(r["question"])), ("n", lambda r: f"{r['n_candidate']}/{r['n_reference']}"),
            ("Δ [95% CI]", ci), ("p", lambda r: p(r["p"])), ("p Holm", lambda r: p(r["p_holm"])),
            ("verdict", lambda r: str(r["verdict_short"])),
            ("paper", lambda r: SHORT_SUPPORT.get(str(r["paper_support"]), str(r["paper_support"])) or "—")]


SHORT_SUPPORT = {"not resolved (our means agree)": "leans yes", "not resolved (our means disagree)": "leans no",
                 "consistent: no difference resolved": "consistent", "contradicted: a difference": "contradicted"}
