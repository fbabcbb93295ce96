"""A final's variants: the ablation of a study's winner. A variant is another final-stage experiment of the same
space with one configuration (`tune-digits search SPACE --stage final --name NAME --set ema=0.0`); it is set
beside the final that stands for the space (the one named `final`) seed by seed: what it changed, and the paired
difference of test comparison error at the honest epoch, with its 95 % CI, p Holm-adjusted over the final's
variants, and the seeds such an effect needs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import results
from .analysis import Analysis, by_space
from .inference import cohen_dz, seeds_needed
from .load import fmt_value
from .stats import mean_std, paired
from .table import Column, Table, num, pm

NOT_SET = "default"  # an option one side's config does not record: the TrainConfig default


@dataclass(frozen=True)
class Variant:
    analysis: Analysis
    final: Analysis
    changes: dict[str, tuple[str, str]]  # option → (the final's value, the variant's)

    @property
    def candidate(self) -> str:
        """The variant's arm as the findings name it: OPTION=VALUE for one change, else the experiment's name."""
        if len(self.changes) == 1:
            (option, (_, value)), = self.changes.items()
            return f"{option}={value}"
        return self.analysis.exp.name

    @property
    def reference(self) -> str:
        if len(self.changes) == 1:
            (option, (value, _)), = self.changes.items()
            return f"{option}={value}"
        return self.final.exp.name

    @property
    def changed(self) -> str:
        return "; ".join(f"{k} {old} → {new}" for k, (old, new) in self.changes.items())

    @property
    def question(self) -> str:
        options = ", ".join(self.changes)
        return (f"{self.final.exp.label} {options}: {', '.join(v for _, v in self.changes.values())} vs "
                f"{', '.join(f for f, _ in self.changes.values())}")


def find_variants(analyses: Sequence[Analysis]) -> list[Variant]:
    """Every variant of each standing final, in the order they were loaded."""
    chosen = by_space(analyses)
    out = []
    for a in analyses:
        final = chosen.get(a.exp.space)
        if final is None or a is final or final.exp.stage != "final" or a.exp.stage != "final":
            continue
        if len(a.configs) != 1:
            continue  # several configurations: a ranked experiment of its own (Table I), not one arm
        changes = _changes(_config(final, final.best), _config(a, a.best))
        if changes:
            out.append(Variant(a, final, changes))
    return out


def _config(a: Analysis, config: str) -> dict[str, Any] | None:
    """One configuration's options as search.json recorded them for one of its trials (no seed)."""
    trial_id = a.exp.rows.loc[a.exp.rows["config"] == config, "trial_id"].iloc[0]
    recorded = results.trial_config(a.exp.meta.get("trials", {}).get(trial_id))
    return None if recorded is None else {k: v for k, v in recorded.items() if k not in results.BOOKKEEPING}


def _changes(final: dict[str, Any] | None, variant: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Option → (final's value, variant's value) where they differ; empty when either config is unknown."""
    if final is None or variant is None:
        return {}
    keys = dict.fromkeys([*final, *variant])
    return {k: (_shown(final, k), _shown(variant, k)) for k in keys if _shown(final, k) != _shown(variant, k)}


def _shown(config: dict[str, Any], key: str) -> str:
    return fmt_value(config[key]) if key in config else NOT_SET


def seed_values(a: Analysis, metric: str = "test_error") -> pd.Series:
    """The best configuration's `metric` at each repetition's honest epoch, by seed."""
    r = a.reps
    part = r[(r["config"] == a.best) & (r["view"] == "honest")]
    return pd.Series(part[metric].to_numpy(dtype=float), index=part["seed"].to_numpy()).sort_index()


def comparison(v: Variant) -> dict[str, Any]:
    """The variant against its final on the seeds both ran: each arm's mean ± std, the paired difference."""
    mine, theirs = seed_values(v.analysis), seed_values(v.final)
    seeds = mine.index.intersection(theirs.index)
    a, b = mine[seeds].to_numpy(), theirs[seeds].to_numpy()
    diff, lo, hi, p = paired(a, b)
    dz = cohen_dz(a, b)
    mean_a, std_a = mean_std(a)
    mean_b, std_b = mean_std(b)
    return {"n_candidate": len(seeds), "n_reference": len(seeds), "candidate_mean": mean_a,
            "reference_mean": mean_b, "candidate_std": std_a, "reference_std": std_b, "diff": diff,
            "ci_low": lo, "ci_high": hi, "test": "paired t", "p": p, "cohen_d": dz,
            "seeds_needed": seeds_needed(dz, paired=True), "seeds": _span(seeds)}


def _span(seeds: pd.Index) -> str:
    """Seeds 0..9 as "0–9", others listed."""
    s = sorted(int(x) for x in seeds)
    return f"{s[0]}–{s[-1]}" if s and s == list(range(s[0], s[-1] + 1)) else ", ".join(map(str, s))


def variants_tables(rows: Sequence[dict[str, Any]]) -> list[Table]:
    """One table per final with variants, from the findings' rows of its family (corrected, with verdicts)."""
    return [_table(final, pd.DataFrame([r for r in rows if r["final"] == final]))
            for final in dict.fromkeys(r["final"] for r in rows)]


def _table(label: str, data: pd.DataFrame) -> Table:
    rule = (f"Each variant of {label} (another final of its space, one configuration), against {label} on the "
            f"seeds both ran: test comparison error in % at the honest epoch, mean ± sample std of each; Δ = "
            f"variant − final, mean of the per-seed differences with its 95% paired-t CI; p Holm-adjusted over "
            f"these variants. Open: the seeds (pairs) an effect this size needs at power 0.8. A positive Δ: "
            f"what the final's value bought.")
    display: list[Column] = [
        ("variant", lambda r: str(r["variant"])), ("changed", lambda r: str(r["changed"])),
        ("seeds", lambda r: f"{r['n_candidate']} ({r['seeds']})"), ("variant cmp", lambda r: pm(r, "candidate")),
        ("final, same seeds", lambda r: pm(r, "reference")), ("Δ [95% CI]", _ci),
        ("p Holm", lambda r: "—" if pd.isna(r["p_holm"]) else "<0.001" if r["p_holm"] < 0.001
         else num(r["p_holm"], 3)), ("verdict", lambda r: str(r["verdict_short"]))]
    return Table(f"ablation_{label.replace('/', '_')}", f"Ablation — {label}: each variant beside it, paired by "
                 f"seed", rule, data, display)


def _ci(r: pd.Series) -> str:
    if pd.isna(r["ci_low"]):
        return f"{r['diff']:+.3f}" if not pd.isna(r["diff"]) else "—"
    return f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
