"""Finding the experiments under an output folder and loading each one's rows into one clean frame.

The files are read through `results` (the one owner of the format: it validates them and upgrades old names);
here the records are typed with pandas and cleaned (re-reported epochs and retried trials dropped)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper, results
from ..errors import UserError

REPORT_DIR = results.REPORT_DIR
# Where results are: the user's searches write to OUTPUTS_DIR; the committed reference results (made by this
# code, see reference/README.md) are in REFERENCE_DIR, which `tune-digits report` shows until OUTPUTS_DIR has any.
OUTPUTS_DIR = "outputs"
REFERENCE_DIR = "reference"


class ReportError(UserError):
    """Results that cannot be reported; the message is one line for the user (which file, what is wrong)."""


@dataclass
class Experiment:
    """One `outputs/<space>/<name>/` folder, its rows cleaned: one row per (configuration, seed, epoch)."""

    space: str  # the search space: the first-level folder
    name: str
    path: Path
    meta: dict[str, Any]  # search.json, in today's names
    axes: list[str]
    rows: pd.DataFrame  # result columns + `config` (the label of its configuration)
    source: str  # "trials" or "epochs.csv"
    skipped: list[str] = field(default_factory=list)  # "file: why" for each unreadable file
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.space}/{self.name}"

    @property
    def stage(self) -> str:
        return str(self.meta.get("stage") or self.name)


@dataclass
class Results:
    experiments: list[Experiment]
    skipped: list[str]
    notes: list[str]


def load_results(output_dir: str | Path = "outputs", space: str | None = None) -> Results:
    """Every experiment under `output_dir` (or only `space`'s); raises ReportError when nothing is usable."""
    root = Path(output_dir)
    found = _find_experiments(root)
    if space is not None and space not in found:
        raise ReportError(f"no results for '{space}' under {root} (found: {', '.join(paper.order(found))})")
    experiments, skipped, notes = [], [], []
    for name in paper.order(found):
        if space is not None and name != space:
            continue
        for path in found[name]:
            exp = load_experiment(path, name)
            skipped += exp.skipped
            if exp.rows.empty:
                notes.append(f"{exp.label}: no results yet ({_trial_summary(exp.meta)})")
                continue
            experiments.append(exp)
    if not experiments:
        raise ReportError(f"{root}: no experiment has reported an epoch yet ({'; '.join(notes)})")
    return Results(experiments, skipped, notes)


def default_results_dir() -> tuple[Path, str | None]:
    """The folder `tune-digits report` reads without --output, and a note when it is the reference results."""
    outputs, reference = Path(OUTPUTS_DIR), Path(REFERENCE_DIR)
    try:
        _find_experiments(outputs)
        return outputs, None
    except ReportError:
        if not reference.is_dir():
            return outputs, None
    return reference, f"no results in {OUTPUTS_DIR}/ yet: the committed reference results in {REFERENCE_DIR}/"


def _find_experiments(root: Path) -> dict[str, list[Path]]:
    """Search space → its experiment folders (`root/<space>/<name>/`)."""
    if not root.is_dir():
        raise ReportError(f"{root}: no such folder (run `tune-digits search SPACE` first, or pass --output DIR)")
    found: dict[str, list[Path]] = {}
    for space_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != REPORT_DIR):
        exps = sorted(p for p in space_dir.iterdir() if p.is_dir() and results.is_experiment(p))
        if exps:
            found[space_dir.name] = exps
    if not found:
        raise ReportError(f"{root}: no results found (expected <space>/<name>/{results.SEARCH_JSON}; "
                          f"run `tune-digits search SPACE` first)")
    return found


def _trial_summary(meta: dict[str, Any]) -> str:
    trials = meta.get("trials")
    if not isinstance(trials, dict) or not trials:
        return "no trial listed in search.json"
    statuses = pd.Series([str((t or {}).get("status", "?")) for t in trials.values()]).value_counts()
    return f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in statuses.items())


def load_experiment(path: Path, space: str) -> Experiment:
    """One experiment folder; ReportError when its search.json, or every one of its row files, is unusable."""
    try:
        meta = results.read_meta(path / results.SEARCH_JSON)
    except results.ResultsError as e:  # the report's callers catch ReportError
        raise ReportError(str(e)) from None
    axes_meta = meta.get("axes")
    records, source, skipped = _read_records(path, (*results.REQUIRED, *(axes_meta or ())))
    rows = _typed(records) if records else pd.DataFrame(columns=list(results.REQUIRED))
    if axes_meta is None:  # an old or hand-written search.json: the axes are the columns that vary
        axes = [c for c in rows.columns if c not in results.RUN_COLUMNS and rows[c].map(fmt_value).nunique() > 1]
    else:  # a seed is a repetition, not a configuration
        axes = [a for a in axes_meta if a not in results.RUN_COLUMNS]
    exp = Experiment(space, path.name, path, meta, axes, rows, source, skipped)
    if not rows.empty:
        exp.rows = _clean_rows(exp)
    return exp


def _read_records(path: Path, required: Sequence[str]) -> tuple[list[dict[str, str]], str, list[str]]:
    """The experiment's rows as records of strings, where they came from, and the files skipped (why)."""
    trials_dir, epochs_csv = path / results.TRIALS_DIR, path / results.EPOCHS_CSV
    trial_files = sorted(trials_dir.glob("*.csv")) if trials_dir.is_dir() else []
    skipped: list[str] = []
    # epochs.csv is the search's final concatenation: use it unless trials were appended after it
    # (a resumed or still-running search).
    if epochs_csv.is_file() and (not trial_files or
                                 epochs_csv.stat().st_mtime >= max(f.stat().st_mtime for f in trial_files)):
        try:
            return results.read_rows(epochs_csv, required, default_trial="epochs"), "epochs.csv", skipped
        except results.BadFile as e:
            if not trial_files:
                raise ReportError(f"{epochs_csv}: {e}") from None
            skipped.append(f"{epochs_csv}: {e}")
    records: list[dict[str, str]] = []
    for f in trial_files:
        try:
            records += results.read_rows(f, required, default_trial=f.stem)
        except results.BadFile as e:
            skipped.append(f"{f}: {e}")
    if trial_files and not records:
        raise ReportError(f"{path}: none of its {len(trial_files)} trial file(s) is readable ({skipped[-1]})")
    return records, "trials", skipped


def _typed(records: list[dict[str, str]]) -> pd.DataFrame:
    """Records of all files → one frame with numeric result columns; config values stay strings."""
    rows = pd.DataFrame.from_records(records)
    for col in ("seed", "epoch"):
        rows[col] = pd.to_numeric(rows[col]).astype("int64")
    for col in results.NUMERIC:
        if col in rows.columns:
            rows[col] = pd.to_numeric(rows[col].replace("", None), errors="coerce").astype("float64")
    rows["trial_id"] = rows["trial_id"].astype(str)
    return rows


def _clean_rows(exp: Experiment) -> pd.DataFrame:
    rows = exp.rows
    for a in exp.axes:
        rows[a] = rows[a].map(fmt_value).astype(object)
    rows["config"] = _config_labels(rows, exp.axes)
    rows = rows.sort_values(["config", "seed", "trial_id", "epoch"], kind="stable")
    # A restored trial re-reports the epochs after its last checkpoint: the last report wins.
    rows = rows.drop_duplicates(["config", "seed", "trial_id", "epoch"], keep="last")
    # Two trials for one (configuration, seed) — a retried trial: keep the one that got furthest.
    sizes = rows.groupby(["config", "seed", "trial_id"], sort=False).size().reset_index(name="n")
    keep = sizes.sort_values("n", kind="stable").drop_duplicates(["config", "seed"], keep="last")
    if len(keep) < len(sizes):
        exp.notes.append(f"{len(sizes) - len(keep)} duplicate trial(s) of the same configuration and seed "
                         f"ignored (the one with most epochs kept)")
        rows = rows.merge(keep[["config", "seed", "trial_id"]], on=["config", "seed", "trial_id"])
    return rows.reset_index(drop=True)


def _config_labels(rows: pd.DataFrame, axes: Sequence[str]) -> pd.Series:
    parts = zip(*(rows[a] for a in axes)) if axes else ((),) * len(rows)
    return pd.Series([config_label(dict(zip(axes, vals)), axes) for vals in parts], index=rows.index, dtype=object)


def config_label(values: dict[str, str], axes: Sequence[str]) -> str:
    """A configuration's name in the tables: its axes' values (canonical strings, `fmt_value`), in order."""
    return ", ".join(f"{a}={values[a]}" for a in axes) if axes else "(single configuration)"


def values_label(values: dict[str, Any], axes: Sequence[str]) -> str:
    """`config_label` of values as search.json holds them (a race's winner and eliminations: typed, not strings)."""
    return config_label({ax: fmt_value(values.get(ax)) for ax in axes}, axes)


def fmt_value(v: Any) -> str:
    """A config value as one canonical string, so 128, 128.0 and "128" name the same configuration."""
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "none"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    s = str(v).strip()
    if not s:
        return "none"
    if s.lower() in ("true", "false"):
        return s.capitalize()
    try:
        return fmt_value(float(s))
    except ValueError:
        return s


def value_order(value: str) -> tuple[bool, float, str]:
    """Numbers in numeric order, then words."""
    try:
        return False, float(value), value
    except ValueError:
        return True, 0.0, value
