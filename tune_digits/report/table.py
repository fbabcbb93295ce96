"""A report table (tidy data + a display view), the cell formats its display uses, and the registry of the
report's tables: a table is one function registered with `@register_table(name)`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, Union

import pandas as pd

from .. import results
from .analysis import Analysis
from ..registry import Registry
from .load import Experiment, ReportError, fmt_value

VIEW_LABELS = {
    "best_epoch": "test-selected (paper)",  # optimistic: the rules say so
    "final_epoch": "final epoch (honest)",
    "val_epoch": "val-selected (honest)",
}
HONEST_RULES = {
    "final_epoch": "the final epoch",
    "val_epoch": "the epoch of lowest val_error",
    "mixed": "the epoch of lowest val_error (final epoch where no validation split)",
}

Column = tuple[str, Callable[[pd.Series], str]]


@dataclass
class Table:
    """One report table: tidy numeric `data` (written as csv/json) and a `display` view for humans."""

    name: str  # file stem under outputs/report/
    title: str
    rule: str  # selection rule, repetitions, pairs, epochs
    data: pd.DataFrame
    display: list[Column]
    notes: list[str] = field(default_factory=list)
    # Display headers a narrow view may leave out, the first given first (the files keep every column).
    optional: tuple[str, ...] = ()
    ranked: bool = False  # one row per configuration, best first: a printed view may show the top rows only
    # The rows a short printed view shows (None: all); the files and `--all` keep every row.
    shown: Any = None
    # What this table's results share that its rule does not say (repetitions, pairs, epochs): a report that
    # prints several tables of one rule states the rule once and each table's conditions under its title.
    conditions: str = ""
    # The notes a short printed view shows instead of `notes` (None: the same): the files and `--all` keep all.
    short_notes: list[str] | None = None

    def display_frame(self, rows: int | None = None, short: bool = False) -> pd.DataFrame:
        data = self.data if rows is None else self.data.head(rows)
        if short and self.shown is not None:
            data = self.data[self.shown]
        return pd.DataFrame({h: [f(r) for _, r in data.iterrows()] for h, f in self.display})


# ---------------------------------------------------------------------------------------------------
# The registry


class NotBuilt(Exception):
    """Raised by a table function that applies to these results but cannot be built; the message is a note."""


# A table function gets every experiment's analysis and returns its table(s), or None when it does not apply.
TableFunction = Callable[[Sequence[Analysis]], Union[Table, Sequence[Table], None]]
TABLES: Registry[TableFunction] = Registry("report table", ReportError)  # in the report's order: registration's


def register_table(name: str) -> Callable[[TableFunction], TableFunction]:
    """Decorator: `fn` builds the report's table `name` (after those registered before it)."""
    def register(fn: TableFunction) -> TableFunction:
        return TABLES.register(name, fn)
    return register


def unregister_table(name: str) -> None:
    TABLES.pop(name)


def table_names() -> list[str]:
    return TABLES.names()


# ---------------------------------------------------------------------------------------------------
# Cells


def num(x: Any, digits: int = 3) -> str:
    return "—" if x is None or pd.isna(x) else f"{float(x):.{digits}f}"


def pm(r: pd.Series, prefix: str) -> str:
    """`<prefix>_mean ± <prefix>_std` of a row."""
    mean, std = r.get(f"{prefix}_mean"), r.get(f"{prefix}_std")
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.3f}" if std is None or pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def signed(x: Any) -> str:
    return "—" if x is None or pd.isna(x) else f"{float(x):+.3f}"


def _ci(r: pd.Series) -> str:
    if pd.isna(r.get("ci_low")):
        return "—"
    return f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"


def _p(x: Any) -> str:
    if x is None or pd.isna(x):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def stat_columns(adjusted: bool = False) -> list[Column]:
    """Δ, 95 % CI and p of a row's comparison with the best (`diff_vs_best`, `ci_low/high`, `p_vs_best`);
    `adjusted`: the p corrected for the table's comparisons (`p_holm`) instead of the raw one."""
    p: Column = ("p Holm", lambda r: _p(r["p_holm"])) if adjusted else ("p (Welch)", lambda r: _p(r["p_vs_best"]))
    return [("Δ vs best", lambda r: signed(r["diff_vs_best"])), ("95% CI", _ci), p]


def safe(text: str) -> str:
    """`text` as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


# ---------------------------------------------------------------------------------------------------
# Rules and notes


def protocol(configs: pd.DataFrame) -> str:
    """"3 seeds, 350 pairs, 25 epochs" (each configuration's) for the given configuration rows (ranges when they
    differ)."""
    def span(values: Iterable[Any]) -> str:
        v = sorted({int(x) for x in values if x is not None and not pd.isna(x)})
        return "?" if not v else str(v[0]) if len(v) == 1 else f"{v[0]}-{v[-1]}"
    return f"{span(configs['n'])} seeds, {span(configs['pairs'])} pairs, {span(configs['epochs'])} epochs"


def protocols(parts: Sequence[tuple[str, str]]) -> str:
    """(name, protocol) pairs stated once per protocol: "3 seeds …: lenet, resnet; 20 seeds …: best"."""
    groups: dict[str, list[str]] = {}
    for name, proto in parts:
        groups.setdefault(proto, []).append(name)
    return "; ".join(f"{', '.join(dict.fromkeys(names))}: {proto}" for proto, names in groups.items())


def experiment_notes(a: Analysis, configs: pd.DataFrame | None = None) -> list[str]:
    """An experiment's fixed settings, incomplete configurations, missing results and source."""
    exp = a.exp
    fixed = exp.meta.get("fixed")
    notes = list(exp.notes)
    if isinstance(fixed, dict) and fixed:
        notes.append(f"{exp.label} fixed settings: " + ", ".join(f"{k}={fmt_value(v)}" for k, v in fixed.items()))
    notes += status_notes(a, configs)
    if exp.source == "epochs.csv":
        notes.append(f"{exp.label}: read from epochs.csv")
    return notes


def status_notes(a: Analysis, configs: pd.DataFrame | None = None) -> list[str]:
    """What a reader must not miss even in a short view: incomplete configurations and missing results."""
    exp = a.exp
    configs = a.configs if configs is None else configs
    notes = []
    incomplete = configs[configs["status"] != "complete"]
    for _, r in incomplete.iterrows():
        notes.append(f"{exp.label} [{r['config']}]: {r['status']}")
    expected = _expected_configs(exp)
    if expected is not None and expected > len(a.configs):
        notes.append(f"{exp.label}: {len(a.configs)} of {expected} configurations have results "
                     f"({expected - len(a.configs)} without any epoch yet)")
    return notes


def _expected_configs(exp: Experiment) -> int | None:
    """How many configurations search.json lists trials for; None when it does not say."""
    trials = exp.meta.get("trials")
    if not isinstance(trials, dict) or not trials:
        return None
    keys = set()
    for t in trials.values():
        config = results.trial_config(t)
        if config is None:
            return None
        keys.add(tuple(fmt_value(config.get(a)) for a in exp.axes))
    return len(keys)
