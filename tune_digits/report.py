"""`tune-digits report`: the paper's tables and Figure 1 from what `tune-digits search` wrote.

Reads `outputs/<arch>/<name>/{search.json, trials/*.csv, epochs.csv}` (schema: outputs/README.md) with
pandas only — never torch or ray, so it starts fast and runs anywhere. matplotlib is imported only when a
figure is drawn.

Vocabulary used throughout:
- a *repetition* is one (configuration, seed): its epochs are one curve;
- a *configuration* is one combination of the experiment's grid axes;
- the two epoch *views* of a repetition: `best_epoch` (the epoch with the lowest test comparison error —
  the paper's rule, optimistic because it selects on the test set) and the honest one: `val_epoch` (lowest
  val_error, when the search carved a validation split) or else `final_epoch` (the last epoch).
- statistics are over repetitions: mean and sample std (n − 1); differences come with a 95 % Welch
  confidence interval and a Welch t-test p-value.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from . import paper
from .errors import UserError

if TYPE_CHECKING:  # matplotlib is imported only when drawing
    from matplotlib.figure import Figure

FORMATS = ("table", "markdown", "csv", "latex", "json")
EXTENSIONS = {"table": "txt", "markdown": "md", "csv": "csv", "latex": "tex", "json": "json"}
FIGURE_FORMATS = ("png", "pdf", "svg")
METRICS = ("train_error", "test_digit_error", "test_error")
CURVES = ("train_loss", "train_error", "test_digit_error", "test_error")
VAL = ("val_error", "val_digit_error")
REQUIRED = ("seed", "epoch", "train_loss", "train_error", "test_digit_error", "test_error")
NON_CONFIG = frozenset({"trial_id", "seed", "epoch", "time_s", "wall_time", "node", *CURVES, *VAL})
PAPER_ORDER = ("linear", "lenet", "resnet", "alexnet")
REPORT_DIR = "report"
# Option names the paper's ablations may carry, in order of preference (see models/ and train.py).
TABLE_III_OPTIONS = ("dropout",)
TABLE_IV_OPTIONS = ("aux_loss", "aux_weight", "aux_loss_weight")
VIEW_LABELS = {
    "best_epoch": "test-selected (paper, optimistic)",
    "final_epoch": "final epoch (honest)",
    "val_epoch": "val-selected (honest)",
}
HONEST_RULES = {
    "final_epoch": "the final epoch",
    "val_epoch": "the epoch of lowest val_error",
    "mixed": "the epoch of lowest val_error (final epoch where no validation split)",
}
METRIC_LABELS = {
    "train_loss": "Training loss",
    "train_error": "Training digit error (%)",
    "test_digit_error": "Test digit error (%)",
    "test_error": "Test comparison error (%)",
}


class ReportError(UserError):
    """Results that cannot be reported; the message is one line for the user (which file, what is wrong)."""


class _BadFile(Exception):
    """One unreadable result file; the message says why."""


# ---------------------------------------------------------------------------------------------------
# Loading


@dataclass
class Experiment:
    """One `outputs/<arch>/<name>/` folder, its rows cleaned: one row per (configuration, seed, epoch)."""

    arch: str
    name: str
    path: Path
    meta: dict[str, Any]
    axes: list[str]
    rows: pd.DataFrame  # result columns + `config` (the label of its configuration)
    source: str  # "trials" or "epochs.csv"
    skipped: list[str] = field(default_factory=list)  # "file: why" for each unreadable file
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.name}"

    @property
    def stage(self) -> str:
        return str(self.meta.get("stage") or self.name)


@dataclass
class Results:
    experiments: list[Experiment]
    skipped: list[str]
    notes: list[str]


def load_results(output_dir: str | Path = "outputs", arch: str | None = None) -> Results:
    """Every experiment under `output_dir` (or only `arch`'s); raises ReportError when nothing is usable."""
    root = Path(output_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such folder (run `tune-digits search ARCH` first, or pass --output DIR)")
    found: dict[str, list[Path]] = {}
    for arch_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != REPORT_DIR):
        exps = sorted(p for p in arch_dir.iterdir() if p.is_dir() and _looks_like_experiment(p))
        if exps:
            found[arch_dir.name] = exps
    if not found:
        raise ReportError(f"{root}: no results found (expected <arch>/<name>/search.json; "
                          f"run `tune-digits search ARCH` first)")
    if arch is not None and arch not in found:
        raise ReportError(f"no results for '{arch}' under {root} (found: {', '.join(_arch_order(found))})")
    experiments, skipped, notes = [], [], []
    for a in _arch_order(found):
        if arch is not None and a != arch:
            continue
        for path in found[a]:
            exp = _load_experiment(path, a)
            skipped += exp.skipped
            if exp.rows.empty:
                notes.append(f"{exp.label}: no results yet ({_trial_summary(exp.meta)})")
                continue
            experiments.append(exp)
    if not experiments:
        raise ReportError(f"{root}: no experiment has reported an epoch yet ({'; '.join(notes)})")
    return Results(experiments, skipped, notes)


def _looks_like_experiment(path: Path) -> bool:
    return (path / "search.json").exists() or (path / "trials").is_dir() or (path / "epochs.csv").exists()


def _arch_order(archs: Iterable[str]) -> list[str]:
    archs = list(archs)
    return [a for a in PAPER_ORDER if a in archs] + sorted(a for a in archs if a not in PAPER_ORDER)


def _trial_summary(meta: dict[str, Any]) -> str:
    trials = meta.get("trials")
    if not isinstance(trials, dict) or not trials:
        return "no trial listed in search.json"
    statuses = pd.Series([str((t or {}).get("status", "?")) for t in trials.values()]).value_counts()
    return f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in statuses.items())


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReportError(f"{path}: missing (each experiment folder needs the search.json that "
                          f"`tune-digits search` writes)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ReportError(f"{path}: empty file")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(meta, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    axes = meta.get("axes")
    if axes is not None and not (isinstance(axes, list) and all(isinstance(a, str) for a in axes)):
        raise ReportError(f"{path}: 'axes' must be a list of option names")
    return meta


def _read_rows(path: Path, required: Sequence[str], default_trial: str) -> list[dict[str, str]]:
    """One result CSV as validated records (strings; typed later, once for all files); raises _BadFile.

    Plain `csv` rather than pandas: a search leaves hundreds of tiny trial files, and pandas' per-call
    overhead would dominate the report's run time."""
    if path.stat().st_size == 0:
        raise _BadFile("empty file")
    try:
        text = path.read_text(encoding="utf-8")
        lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
    except UnicodeDecodeError:
        raise _BadFile("not a readable CSV (not UTF-8 text)") from None
    except csv.Error as e:
        raise _BadFile(f"not a readable CSV ({_one_line(e)})") from None
    if not lines:
        raise _BadFile("empty file")
    header, body = [h.strip() for h in lines[0]], lines[1:]
    if not body:
        raise _BadFile("no rows (header only)")
    missing = [c for c in required if c not in header]
    if missing:
        raise _BadFile("missing column(s) " + ", ".join(missing))
    numeric = [c for c in (*CURVES, *VAL, "time_s") if c in header]
    records = []
    for i, values in enumerate(body, start=1):
        if len(values) != len(header):
            raise _BadFile(f"not a readable CSV (data row {i} has {len(values)} fields, the header {len(header)})")
        rec = dict(zip(header, values))
        for col in ("seed", "epoch"):
            if not _is_int(rec[col]):
                raise _BadFile(f"non-integer '{col}' on data row {i}")
        if float(rec["epoch"]) < 1:
            raise _BadFile(f"'epoch' must be 1-based (data row {i})")
        for col in numeric:
            if rec[col].strip() and not _is_float(rec[col]):
                raise _BadFile(f"non-numeric '{col}' on data row {i}")
        if not rec["test_error"].strip():
            raise _BadFile(f"empty 'test_error' on data row {i}")
        rec.setdefault("trial_id", default_trial)
        records.append(rec)
    return records


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _is_int(text: str) -> bool:
    return _is_float(text) and math.isfinite(float(text)) and float(text).is_integer()


def _typed(records: list[dict[str, str]]) -> pd.DataFrame:
    """Records of all files → one frame with numeric result columns; config values stay strings."""
    rows = pd.DataFrame.from_records(records)
    for col in ("seed", "epoch"):
        rows[col] = pd.to_numeric(rows[col]).astype("int64")
    for col in (*CURVES, *VAL, "time_s"):
        if col in rows.columns:
            rows[col] = pd.to_numeric(rows[col].replace("", None), errors="coerce").astype("float64")
    rows["trial_id"] = rows["trial_id"].astype(str)
    return rows


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:120] + ("…" if len(text) > 120 else "")


def _load_experiment(path: Path, arch: str) -> Experiment:
    meta = _read_meta(path / "search.json")
    axes_meta = meta.get("axes")
    required = (*REQUIRED, *(axes_meta or ()))
    trial_files = sorted((path / "trials").glob("*.csv")) if (path / "trials").is_dir() else []
    epochs_csv = path / "epochs.csv"
    skipped: list[str] = []
    records: list[dict[str, str]] = []
    source = "trials"
    # epochs.csv is the search's final concatenation: use it unless trials were appended after it
    # (a resumed or still-running search).
    if epochs_csv.is_file() and (not trial_files or
                                 epochs_csv.stat().st_mtime >= max(f.stat().st_mtime for f in trial_files)):
        try:
            records = _read_rows(epochs_csv, required, default_trial="epochs")
            source = "epochs.csv"
        except _BadFile as e:
            if not trial_files:
                raise ReportError(f"{epochs_csv}: {e}") from None
            skipped.append(f"{epochs_csv}: {e}")
    if not records:
        for f in trial_files:
            try:
                records += _read_rows(f, required, default_trial=f.stem)
            except _BadFile as e:
                skipped.append(f"{f}: {e}")
        if trial_files and not records:
            raise ReportError(f"{path}: none of its {len(trial_files)} trial file(s) is readable "
                              f"({skipped[-1]})")
    rows = _typed(records) if records else pd.DataFrame(columns=list(REQUIRED))
    if axes_meta is None:  # an old or hand-written search.json: the axes are the columns that vary
        axes = [c for c in rows.columns if c not in NON_CONFIG and rows[c].map(_fmt_value).nunique() > 1]
    else:
        axes = [a for a in axes_meta if a not in NON_CONFIG]  # a seed is a repetition, not a configuration
    exp = Experiment(arch, path.name, path, meta, axes, rows, source, skipped)
    if not rows.empty:
        exp.rows = _clean_rows(exp)
    return exp


def _clean_rows(exp: Experiment) -> pd.DataFrame:
    rows = exp.rows
    for a in exp.axes:
        rows[a] = rows[a].map(_fmt_value).astype(object)
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
    if not axes:
        return pd.Series("(single configuration)", index=rows.index, dtype=object)
    parts = zip(*(rows[a] for a in axes))
    return pd.Series([", ".join(f"{a}={v}" for a, v in zip(axes, vals)) for vals in parts],
                     index=rows.index, dtype=object)


def _fmt_value(v: Any) -> str:
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
        return _fmt_value(float(s))
    except ValueError:
        return s


def _value_order(value: str) -> tuple[bool, float, str]:
    """Numbers in numeric order, then words."""
    return (False, float(value), value) if _is_float(value) else (True, 0.0, value)


def _is_on(value: str) -> bool:
    """Whether an ablation option is switched on: True, or a non-zero weight/rate."""
    return value.lower() not in ("false", "0", "none", "no", "off", "")


# ---------------------------------------------------------------------------------------------------
# Analysis: repetitions → configurations


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
    fixed = exp.meta.get("fixed") if isinstance(exp.meta.get("fixed"), dict) else {}
    key = ["config", "seed"]
    g = rows.groupby(key, sort=False)
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
    # A configuration is reported from its complete repetitions; only one with none is reported from
    # its partial ones, and flagged — never the two mixed.
    any_complete = per.groupby(level="config")["complete"].transform("any")
    per["used"] = per["complete"] | ~any_complete

    best_idx = g["test_error"].idxmin()  # first minimum: the earliest such epoch
    honest_idx = g["epoch"].idxmax()
    honest_view = pd.Series("final_epoch", index=honest_idx.index, dtype=object)
    if "val_error" in rows.columns and rows["val_error"].notna().any():
        has_val = rows[rows["val_error"].notna()]
        val_idx = has_val.groupby(key, sort=False)["val_error"].idxmin()
        honest_idx.loc[val_idx.index] = val_idx
        honest_view.loc[val_idx.index] = "val_epoch"
    views = sorted(set(honest_view))
    honest = views[0] if len(views) == 1 else "mixed"

    parts = []
    for view, idx, sel in (("best_epoch", best_idx, None), ("honest", honest_idx, honest_view)):
        part = rows.loc[idx.to_numpy()].set_index(key)
        part["view"] = view
        part["selection"] = sel if sel is not None else "best_epoch"
        parts.append(part.join(per[["complete", "used", "n_epochs", "expected_epochs", "status"]]))
    all_reps = pd.concat(parts).reset_index()
    reps = all_reps[all_reps["used"]].reset_index(drop=True)

    rank_by = "val_error" if honest != "final_epoch" else "test_error"
    configs = _config_table(exp, rows, per, reps, rank_by)
    return Analysis(exp, reps, configs, honest, rank_by)


def _config_table(exp: Experiment, rows: pd.DataFrame, per: pd.DataFrame, reps: pd.DataFrame,
                  rank_by: str) -> pd.DataFrame:
    expected_seeds = len(exp.meta["seeds"]) if isinstance(exp.meta.get("seeds"), list) else None
    settings = _settings(exp, rows)
    first = rows.groupby("config", sort=False).first()
    flat = per.reset_index()
    counts = flat.groupby("config", sort=False).agg(n_complete=("complete", "sum"),
                                                    epochs=("expected_epochs", "max"))
    partial = flat[~flat["complete"]].groupby("config", sort=False).agg(
        n_partial=("complete", "size"), lo=("n_epochs", "min"), hi=("n_epochs", "max"),
        statuses=("status", lambda s: "/".join(sorted({x for x in s if x}))))
    counts = counts.join(partial)
    out = []
    for config, c in counts.iterrows():
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
    configs = pd.DataFrame(out)
    configs.index = configs["config"].to_list()  # aligns the per-config statistics below
    for view, prefix in (("honest", ""), ("best_epoch", "best_epoch_")):
        g = reps[reps["view"] == view].groupby("config", sort=False)
        for m in (*CURVES, *VAL, "epoch"):
            has = m in reps.columns
            configs[f"{prefix}{m}_mean"] = g[m].mean() if has else np.nan
            if m != "epoch":
                configs[f"{prefix}{m}_std"] = g[m].std(ddof=1) if has else np.nan
    # Complete configurations first, then by the ranking metric; a small validation split makes ties common
    # (200 pairs: steps of 0.5 %), so val_digit_error (twice the items) breaks them; then the label order.
    tie_break = ["val_digit_error_mean"] if rank_by == "val_error" else []
    configs = configs.sort_values(["partial", f"{rank_by}_mean", *tie_break, "config"], kind="stable",
                                  na_position="last").reset_index(drop=True)
    configs.insert(0, "rank", range(1, len(configs) + 1))
    configs.insert(1, "best", configs["rank"] == 1)
    return configs


def _pairs(exp: Experiment, row: pd.Series) -> int | None:
    value = row.get("pairs")
    if value is None or pd.isna(value):
        value = (exp.meta.get("fixed") or {}).get("pairs")
    try:
        return int(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _settings(exp: Experiment, rows: pd.DataFrame) -> dict[str, str]:
    """Per configuration, every config value it ran with ("k=v, …"): hyperparameters stay visible."""
    cols = [c for c in rows.columns if c not in NON_CONFIG and c != "config"]
    first = rows.groupby("config", sort=False)[cols].first() if cols else None
    out = {}
    for config in rows["config"].unique():
        if first is None:
            out[config] = ""
            continue
        values = first.loc[config]
        out[config] = ", ".join(f"{c}={_fmt_value(values[c])}" for c in cols if not pd.isna(values[c]))
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


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (n − 1) of the non-NaN values; NaN where undefined."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """mean(a) − mean(b), its 95 % Welch confidence interval, and the Welch t-test p-value."""
    from scipy import stats  # ~0.3 s to import: only when a difference is computed

    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:  # no spread at all: the t statistic is undefined
        return diff, math.nan, math.nan, math.nan
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    se = math.sqrt(va + vb)
    half = float(stats.t.ppf(0.975, df) * se)
    # Welch's two-sided p from the same t and df (what ttest_ind(equal_var=False) returns), without its
    # warning about near-constant samples: 3 seeds often tie exactly on 350 test pairs.
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return diff, diff - half, diff + half, p


# ---------------------------------------------------------------------------------------------------
# Tables


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

    def display_frame(self) -> pd.DataFrame:
        return pd.DataFrame({h: [f(r) for _, r in self.data.iterrows()] for h, f in self.display})


def _num(x: Any, digits: int = 3) -> str:
    return "—" if x is None or pd.isna(x) else f"{float(x):.{digits}f}"


def _pm(r: pd.Series, prefix: str) -> str:
    mean, std = r.get(f"{prefix}_mean"), r.get(f"{prefix}_std")
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.3f}" if std is None or pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _signed(x: Any) -> str:
    return "—" if x is None or pd.isna(x) else f"{float(x):+.3f}"


def _ci(r: pd.Series) -> str:
    if pd.isna(r.get("ci_low")):
        return "—"
    return f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"


def _p(x: Any) -> str:
    if x is None or pd.isna(x):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _stat_columns() -> list[Column]:
    return [("Δ vs best", lambda r: _signed(r["diff_vs_best"])), ("95% CI", _ci),
            ("p (Welch)", lambda r: _p(r["p_vs_best"]))]


def _protocol(a: Analysis, configs: pd.DataFrame) -> str:
    """"3 seeds, 350 pairs, 25 epochs" for the given configuration rows (ranges when they differ)."""
    def span(values: Iterable[Any]) -> str:
        v = sorted({int(x) for x in values if x is not None and not pd.isna(x)})
        return "?" if not v else str(v[0]) if len(v) == 1 else f"{v[0]}-{v[-1]}"
    return (f"{span(configs['n'])} repetitions (seeds) per configuration, {span(configs['pairs'])} pairs, "
            f"{span(configs['epochs'])} epochs")


def _experiment_notes(a: Analysis, configs: pd.DataFrame | None = None) -> list[str]:
    exp = a.exp
    configs = a.configs if configs is None else configs
    notes = list(exp.notes)
    fixed = exp.meta.get("fixed")
    if isinstance(fixed, dict) and fixed:
        notes.append(f"{exp.label} fixed settings: " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in fixed.items()))
    incomplete = configs[configs["status"] != "complete"]
    for _, r in incomplete.iterrows():
        notes.append(f"{exp.label} [{r['config']}]: {r['status']}")
    expected = _expected_configs(exp)
    if expected is not None and expected > len(a.configs):
        notes.append(f"{exp.label}: {len(a.configs)} of {expected} configurations have results "
                     f"({expected - len(a.configs)} without any epoch yet)")
    if exp.source == "epochs.csv":
        notes.append(f"{exp.label}: read from epochs.csv")
    return notes


def _expected_configs(exp: Experiment) -> int | None:
    trials = exp.meta.get("trials")
    if not isinstance(trials, dict) or not trials:
        return None
    keys = set()
    for t in trials.values():
        config = (t or {}).get("config") if isinstance(t, dict) else None
        if not isinstance(config, dict):
            return None
        keys.add(tuple(_fmt_value(config.get(a)) for a in exp.axes))
    return len(keys)


def _with_welch(a: Analysis, configs: pd.DataFrame, groups: dict[str, np.ndarray], ref: str) -> pd.DataFrame:
    stats_rows = [welch(groups[c], groups[ref]) for c in configs["config"]]
    out = configs.copy()
    for i, col in enumerate(("diff_vs_best", "ci_low", "ci_high", "p_vs_best")):
        out[col] = [s[i] for s in stats_rows]
    out.loc[out["config"] == ref, ["ci_low", "ci_high", "p_vs_best"]] = np.nan
    return out


def ranking_table(a: Analysis) -> Table:
    """Table I for one experiment: every configuration ranked, best marked, each compared with the best."""
    exp = a.exp
    honest = a.reps[a.reps["view"] == "honest"]
    groups = {c: r["test_error"].to_numpy(dtype=float) for c, r in honest.groupby("config", sort=False)}
    data = _with_welch(a, a.configs, groups, a.best)
    data.insert(0, "arch", exp.arch)
    data.insert(1, "experiment", exp.name)
    data.insert(2, "stage", exp.stage)
    data["rank_by"] = a.rank_by
    data["selection"] = a.honest
    cols = ["arch", "experiment", "stage", "rank", "best", "config", *exp.axes, "n", "seeds_expected", "epochs",
            "pairs", "status", "rank_by", "selection",
            "test_error_mean", "test_error_std", "diff_vs_best", "ci_low", "ci_high", "p_vs_best",
            "test_digit_error_mean", "test_digit_error_std", "train_error_mean", "train_error_std",
            "train_loss_mean", "train_loss_std", "val_error_mean", "val_error_std", "epoch_mean",
            "best_epoch_test_error_mean", "best_epoch_test_error_std", "best_epoch_epoch_mean", "settings"]
    data = data[cols]
    display: list[Column] = [("rank", lambda r: str(r["rank"])), ("", lambda r: "*" if r["best"] else "")]
    display += [(ax, lambda r, ax=ax: str(r[ax])) for ax in exp.axes]
    display += [("n", lambda r: str(r["n"]))]
    if a.rank_by == "val_error":
        display += [("val error", lambda r: _pm(r, "val_error"))]
    display += [("test cmp error", lambda r: _pm(r, "test_error")), *_stat_columns(),
                ("test digit error", lambda r: _pm(r, "test_digit_error")),
                ("train error", lambda r: _pm(r, "train_error")),
                ("best-epoch cmp (optimistic)", lambda r: _pm(r, "best_epoch_test_error"))]
    if (data["status"] != "complete").any():
        display += [("status", lambda r: str(r["status"]))]
    rule = (f"{len(data)} configurations ranked by mean {a.rank_by} over repetitions at "
            f"{HONEST_RULES[a.honest]}; complete configurations first; * = best. Errors in %, mean ± sample "
            f"std. Δ, 95% CI (Welch) and p (Welch t-test) compare each configuration's test comparison "
            f"error with the best's. The last column selects each repetition's epoch on the test set "
            f"(paper's rule, optimistic). {_protocol(a, data)}.")
    return Table(f"table1_{exp.arch}_{exp.name}", f"Table I — {exp.label} ({exp.stage}): configurations ranked",
                 rule, data.reset_index(drop=True), display, _experiment_notes(a))


def choose_best(analyses: Sequence[Analysis]) -> Analysis:
    """The experiment whose best configuration stands for an architecture: a `final` stage if any (the
    latest started), else a `screen`, else the latest experiment."""
    def started(a: Analysis) -> str:
        return f"{a.exp.meta.get('started') or ''}|{a.exp.name}"
    for stage in ("final", "screen"):
        of_stage = [a for a in analyses if a.exp.stage == stage]
        if of_stage:
            return max(of_stage, key=started)
    return max(analyses, key=started)


def best_table(analyses: Sequence[Analysis]) -> Table:
    """Table II: each architecture's best configuration in both epoch views, beside the paper's numbers."""
    out = []
    chosen = _by_arch(analyses)
    for arch, a in chosen.items():
        best = a.configs.iloc[0]
        ref = arch if arch in paper.TABLE_II else paper.BEST_ARCH
        ref_label = arch if arch in paper.TABLE_II else f"{paper.BEST_ARCH} (paper's best)"
        honest_view = a.honest if a.honest != "mixed" else "val_epoch"
        for view, prefix in (("best_epoch", "best_epoch_"), (honest_view, "")):
            rec: dict[str, Any] = {
                "arch": arch, "experiment": a.exp.name, "stage": a.exp.stage, "view": view,
                "config": best["config"], "n": best["n"], "seeds_expected": best["seeds_expected"],
                "epochs": best["epochs"], "pairs": best["pairs"], "status": best["status"],
                "epoch_mean": best[f"{prefix}epoch_mean"], "paper_ref": ref_label,
            }
            for m in METRICS:
                rec[f"{m}_mean"], rec[f"{m}_std"] = best[f"{prefix}{m}_mean"], best[f"{prefix}{m}_std"]
                rec[f"paper_{m}_mean"], rec[f"paper_{m}_std"] = paper.TABLE_II[ref][m]
                rec[f"diff_{m}"] = rec[f"{m}_mean"] - rec[f"paper_{m}_mean"]
            rec["settings"] = best["settings"]
            out.append(rec)
    data = pd.DataFrame(out)
    display: list[Column] = [
        ("arch", lambda r: f"{r['arch']}/{r['experiment']}"),
        ("view", lambda r: VIEW_LABELS[r["view"]]),
        ("n", lambda r: str(r["n"])), ("epoch", lambda r: _num(r["epoch_mean"], 1)),
    ]
    for m, label in (("train_error", "train"), ("test_digit_error", "test digit"), ("test_error", "test cmp")):
        display += [(label, lambda r, m=m: _pm(r, m)), (f"paper {label}", lambda r, m=m: _pm(r, f"paper_{m}")),
                    (f"Δ {label}", lambda r, m=m: _signed(r[f"diff_{m}"]))]
    if (data["status"] != "complete").any():
        display.append(("status", lambda r: "complete" if r["status"] == "complete" else "see notes"))
    notes = []
    for arch, a in chosen.items():
        best = a.configs.iloc[0]
        notes.append(f"{a.exp.label} best configuration (rank 1 of {len(a.configs)} by {a.rank_by}): "
                     f"{best['settings'] or best['config']}")
        if best["status"] != "complete":
            notes.append(f"{a.exp.label} [{best['config']}]: {best['status']}")
    rule = ("Per architecture, the best configuration of its final-stage experiment (else of its screen): "
            "errors in %, mean ± sample std over repetitions, at two epochs per repetition — the paper's "
            "'best epoch' (lowest test comparison error: selected on the test set, optimistic) and an honest "
            "one (lowest val_error when the search held out a validation split, else the final epoch). "
            "'epoch' is the mean selected epoch. Paper: 20 repetitions, 1,000 pairs, 25 epochs, best-epoch "
            "view; Δ = ours − paper. Result sets that are not one of the paper's nets are compared with its "
            f"best net ({paper.BEST_ARCH}). "
            + "; ".join(f"{arch}: {_protocol(a, a.configs.iloc[:1])}" for arch, a in chosen.items()) + ".")
    return Table("table2_best", "Table II — best configuration per architecture vs the paper", rule, data,
                 display, notes)


def _by_arch(analyses: Sequence[Analysis]) -> dict[str, Analysis]:
    archs: dict[str, list[Analysis]] = {}
    for a in analyses:
        archs.setdefault(a.exp.arch, []).append(a)
    return {arch: choose_best(archs[arch]) for arch in _arch_order(archs)}


def _slice_at_best(a: Analysis, option: str) -> pd.DataFrame:
    """The configurations that differ from the best only in `option`."""
    best = a.configs.iloc[0]
    mask = pd.Series(True, index=a.configs.index)
    for ax in a.exp.axes:
        if ax != option:
            mask &= a.configs[ax] == best[ax]
    return a.configs[mask]


def _group_rows(a: Analysis, option: str, scope: str, view: str, configs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per value of `option` among `configs`: statistics over their repetitions, vs the best value."""
    reps = a.reps[(a.reps["view"] == view) & a.reps["config"].isin(configs["config"])]
    value_of = dict(zip(configs["config"], configs[option]))
    reps = reps.assign(_value=reps["config"].map(value_of))
    rows = []
    for value, r in reps.groupby("_value", sort=False):
        cfg = configs[configs[option] == value]
        rec: dict[str, Any] = {
            "arch": a.exp.arch, "experiment": a.exp.name, "stage": a.exp.stage, "option": option,
            "scope": scope, "view": view if view != "honest" else a.honest, "value": value,
            "n_configs": len(cfg), "n": len(r), "epochs": int(cfg["epochs"].max()),
            "pairs": cfg["pairs"].iloc[0],
            "status": "complete" if (cfg["status"] == "complete").all() else
            "PARTIAL" if cfg["partial"].any() else "incomplete",
        }
        for m in METRICS:
            rec[f"{m}_mean"], rec[f"{m}_std"] = mean_std(r[m].to_numpy(dtype=float))
        rec["_values"] = r["test_error"].to_numpy(dtype=float)
        rows.append(rec)
    if not rows:
        return rows
    ref = min(rows, key=lambda x: (math.inf if pd.isna(x["test_error_mean"]) else x["test_error_mean"]))
    for rec in rows:
        rec["best"] = rec is ref
        d, lo, hi, p = welch(rec["_values"], ref["_values"])
        rec.update(diff_vs_best=d, ci_low=lo if rec is not ref else np.nan,
                   ci_high=hi if rec is not ref else np.nan, p_vs_best=p if rec is not ref else np.nan)
    for rec in rows:
        del rec["_values"]
    return sorted(rows, key=lambda x: x["test_error_mean"])


COMPARE_COLUMNS = ["arch", "experiment", "stage", "option", "scope", "view", "value", "best", "n_configs", "n",
                   "epochs", "pairs", "status", "train_error_mean", "train_error_std", "test_digit_error_mean",
                   "test_digit_error_std", "test_error_mean", "test_error_std", "diff_vs_best", "ci_low",
                   "ci_high", "p_vs_best"]


def compare_table(analyses: Sequence[Analysis], option: str) -> Table:
    """`--compare OPTION`: statistics per value of one grid option, in every experiment that varies it."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    used = [a for a in analyses if option in a.exp.axes and a.configs[option].nunique() > 1]
    if not used:
        axes = sorted({ax for a in analyses for ax in a.exp.axes})
        raise ReportError(f"no experiment varies '{option}'" +
                          (f"; options that vary: {', '.join(axes)}" if axes else "; no experiment has grid axes"))
    for a in used:
        at_best = _slice_at_best(a, option)
        if at_best[option].nunique() > 1:
            rows += _group_rows(a, option, "others_at_best", "honest", at_best)
        else:
            notes.append(f"{a.exp.label}: no configuration differs from the best only in {option}")
        rows += _group_rows(a, option, "pooled", "honest", a.configs)
        others = [ax for ax in a.exp.axes if ax != option]
        best = a.configs.iloc[0]
        notes.append(f"{a.exp.label}: best configuration {best['config']}" +
                     (f"; 'others_at_best' holds {', '.join(f'{ax}={best[ax]}' for ax in others)}" if others else ""))
        notes += [n for n in _experiment_notes(a) if "fixed settings" in n]
    data = pd.DataFrame(rows)[COMPARE_COLUMNS]
    display: list[Column] = [
        ("experiment", lambda r: f"{r['arch']}/{r['experiment']}"),
        ("scope", lambda r: "others at best" if r["scope"] == "others_at_best" else "pooled"),
        (option, lambda r: str(r["value"]) + (" *" if r["best"] else "")),
        ("configs", lambda r: str(r["n_configs"])), ("n", lambda r: str(r["n"])),
        ("test cmp error", lambda r: _pm(r, "test_error")), *_stat_columns(),
        ("test digit error", lambda r: _pm(r, "test_digit_error")),
        ("train error", lambda r: _pm(r, "train_error")),
    ]
    if (data["status"] != "complete").any():
        display.append(("status", lambda r: str(r["status"])))
    views = sorted({HONEST_RULES[a.honest] for a in used})
    rule = (f"Test comparison error per value of '{option}' (errors in %, mean ± sample std over repetitions, "
            f"each at {' / '.join(views)}). 'others at best': the configurations that differ from the "
            f"experiment's best only in {option}; 'pooled': all its configurations, grouped by {option}. "
            f"* = lowest mean; Δ, 95% CI (Welch) and p (Welch t-test) vs that value; n = repetitions. "
            + "; ".join(f"{a.exp.label}: {_protocol(a, a.configs)}" for a in used) + ".")
    return Table(f"compare_{_safe(option)}", f"Comparison — {option}", rule, data, display, notes)


def ablation_table(analyses: Sequence[Analysis], arch: str, options: Sequence[str],
                   reference: dict[str, paper.Row], name: str, title: str, paper_text: str) -> Table | None:
    """Tables III/IV: the paper's ablation on `arch`, when some experiment varies one of `options`."""
    candidates = [a for a in analyses if a.exp.arch == arch]
    # Final stage first, then screen, then the rest; the latest started first within each.
    order = sorted(candidates, key=lambda a: str(a.exp.meta.get("started") or ""), reverse=True)
    order.sort(key=lambda a: (a.exp.stage != "final", a.exp.stage != "screen"))
    for a in order:
        for option in options:
            if option not in a.exp.axes:
                continue
            at_best = _slice_at_best(a, option)
            if at_best[option].nunique() < 2:
                continue
            rows = []
            for view in ("best_epoch", "honest"):
                for rec in _group_rows(a, option, "others_at_best", view, at_best):
                    ref = reference["with" if _is_on(str(rec["value"])) else "without"]
                    for m in METRICS:
                        rec[f"paper_{m}_mean"], rec[f"paper_{m}_std"] = ref[m]
                    rec["diff_paper_test_error"] = rec["test_error_mean"] - rec["paper_test_error_mean"]
                    rows.append(rec)
            data = pd.DataFrame(rows)
            cols = COMPARE_COLUMNS + [f"paper_{m}_{s}" for m in METRICS for s in ("mean", "std")]
            data = data[cols + ["diff_paper_test_error"]]
            best = a.configs.iloc[0]
            others = [f"{ax}={best[ax]}" for ax in a.exp.axes if ax != option]
            display: list[Column] = [
                ("view", lambda r: VIEW_LABELS[r["view"]]),
                (option, lambda r: f"{r['value']} ({'with' if _is_on(str(r['value'])) else 'without'})"
                 + (" *" if r["best"] else "")),
                ("n", lambda r: str(r["n"])),
                ("train", lambda r: _pm(r, "train_error")), ("test digit", lambda r: _pm(r, "test_digit_error")),
                ("test cmp", lambda r: _pm(r, "test_error")), ("paper test cmp", lambda r: _pm(r, "paper_test_error")),
                ("Δ paper", lambda r: _signed(r["diff_paper_test_error"])), *_stat_columns(),
            ]
            rule = (f"{a.exp.label}: {option} varied with the other options at the best configuration's values "
                    f"({', '.join(others) or 'none'}); errors in %, mean ± sample std over repetitions, in both "
                    f"epoch views. * = lower mean in that view; Δ, 95% CI (Welch) and p (Welch t-test) vs it. "
                    f"Paper ({paper_text}): 20 repetitions, 1,000 pairs, 25 epochs, best-epoch view. "
                    f"{_protocol(a, at_best)}.")
            return Table(name, title, rule, data, display, _experiment_notes(a, at_best))
    return None


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


# ---------------------------------------------------------------------------------------------------
# Figure 1


@dataclass
class FigureTarget:
    analysis: Analysis
    config: str


def figure_target(analyses: Sequence[Analysis], spec: str | None, arch: str | None = None) -> FigureTarget:
    """What Figure 1 draws. `spec` is ARCH[/NAME][:OPTION=VALUE,...]; None means ResNet's best (the
    paper's Figure 1), or the selected architecture's best."""
    by_arch = _by_arch(analyses)
    if not spec:
        pick = arch if arch in by_arch else paper.BEST_ARCH if paper.BEST_ARCH in by_arch else next(iter(by_arch))
        a = by_arch[pick]
        return FigureTarget(a, a.best)
    head, _, selection = spec.partition(":")
    arch_name, _, exp_name = head.partition("/")
    if arch_name not in by_arch:
        raise ReportError(f"--figure {spec}: no results for '{arch_name}' (found: {', '.join(by_arch)})")
    if exp_name:
        matches = [a for a in analyses if a.exp.arch == arch_name and a.exp.name == exp_name]
        if not matches:
            names = sorted(a.exp.name for a in analyses if a.exp.arch == arch_name)
            raise ReportError(f"--figure {spec}: no experiment '{exp_name}' for {arch_name} "
                              f"(found: {', '.join(names)})")
        a = matches[0]
    else:
        a = by_arch[arch_name]
    configs = a.configs
    for item in filter(None, (s.strip() for s in selection.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in a.exp.axes:
            raise ReportError(f"--figure {spec}: '{item}' is not OPTION=VALUE with OPTION one of "
                              f"{', '.join(a.exp.axes) or '(no grid axes)'}")
        want = _fmt_value(value.strip())
        hit = configs[configs[key].astype(str).str.lower() == want.lower()]
        if hit.empty:
            values = ", ".join(sorted(a.configs[key].astype(str).unique(), key=_value_order))
            raise ReportError(f"--figure {spec}: no configuration of {a.exp.label} has {key}={value.strip()} "
                              f"(it takes {values})")
        configs = hit
    return FigureTarget(a, str(configs.iloc[0]["config"]))  # ranked: the best of the matches


def figure_curves(target: FigureTarget) -> pd.DataFrame:
    """Per epoch: n, and mean/std over the configuration's repetitions of the four curves of Figure 1."""
    a = target.analysis
    used = a.reps[(a.reps["config"] == target.config) & (a.reps["view"] == "honest")]["seed"]
    rows = a.exp.rows[(a.exp.rows["config"] == target.config) & a.exp.rows["seed"].isin(used)]
    g = rows.groupby("epoch")
    out = pd.DataFrame({"n": g.size()})
    for m in CURVES:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1)
    return out.reset_index()


def draw_figure(curves: pd.DataFrame, title: str) -> "Figure":
    """Four panels (training loss, training error, test digit error, test comparison error): mean ± std."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    x = curves["epoch"].to_numpy()
    for ax, m in zip(axes, CURVES):
        mean, std = curves[f"{m}_mean"].to_numpy(float), curves[f"{m}_std"].fillna(0).to_numpy(float)
        ax.set_title(METRIC_LABELS[m])
        ax.grid(alpha=0.3)
        if np.isnan(mean).all():  # e.g. strategies without digit outputs
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.plot(x, mean, color="C0", label="mean")
        ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.25, linewidth=0, label="± std")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig


def write_figure(target: FigureTarget, report_dir: Path, formats: Sequence[str]) -> list[Path]:
    a = target.analysis
    curves = figure_curves(target)
    config = a.configs[a.configs["config"] == target.config].iloc[0]
    partial = " — PARTIAL repetitions" if config["partial"] else ""
    # A single-configuration experiment has no axes to name it by: show its settings instead.
    what = target.config if a.exp.axes else config["settings"]
    title = (textwrap.fill(f"Figure 1 — {a.exp.label}: {what}", 130) + f"\nmean ± std over {config['n']} "
             f"repetitions, {config['pairs']} pairs, {config['epochs']} epochs{partial}")
    fig = draw_figure(curves, title)
    stem = f"figure1_{a.exp.arch}"
    paths = []
    for fmt in formats:
        path = report_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=120, format=fmt)
        paths.append(path)
    data_path = report_dir / f"{stem}.csv"
    curves.insert(0, "config", target.config)
    curves.insert(0, "experiment", a.exp.name)
    curves.insert(0, "arch", a.exp.arch)
    curves.to_csv(data_path, index=False)
    return [*paths, data_path]


# ---------------------------------------------------------------------------------------------------
# Rendering


def _clean(v: Any) -> Any:
    """A cell as plain JSON: NaN → null, numpy scalars → Python."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def table_json(t: Table) -> dict[str, Any]:
    return {"name": t.name, "title": t.title, "rule": t.rule, "notes": t.notes,
            "columns": list(t.data.columns),
            "rows": [{k: _clean(v) for k, v in rec.items()} for rec in t.data.to_dict("records")]}


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "−": "-", "…": r"\ldots{}", "<": r"$<$", ">": r"$>$"}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(c, c) for c in str(text))


def render(t: Table, fmt: str) -> str:
    """One table in one format (the text written to outputs/report/<name>.<ext>)."""
    if fmt == "csv":
        return t.data.to_csv(index=False)
    if fmt == "json":
        return json.dumps(table_json(t), indent=2, allow_nan=False) + "\n"
    frame = t.display_frame()
    if fmt == "markdown":
        body = tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        notes = "".join(f"- {n}\n" for n in t.notes)
        return f"### {t.title}\n\n{t.rule}\n\n{body}\n" + (f"\n{notes}" if notes else "")
    if fmt == "latex":
        head = " & ".join(_tex(h) for h in frame.columns) + r" \\"
        lines = [" & ".join(_tex(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
        notes = "".join(f"% {n}\n" for n in t.notes)
        return ("\\begin{table}[ht]\n\\centering\n\\small\n"
                f"\\caption{{{_tex(t.title)}. {_tex(t.rule)}}}\n\\label{{tab:{t.name}}}\n"
                f"\\begin{{tabular}}{{{'l' * len(frame.columns)}}}\n\\toprule\n{head}\n\\midrule\n"
                + "\n".join(lines) + "\n\\bottomrule\n\\end{tabular}\n\\end{table}\n" + notes)
    body = tabulate(frame, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)
    rule = textwrap.fill(t.rule, width=110)
    notes = "".join(f"  - {n}\n" for n in t.notes)
    return f"{t.title}\n{rule}\n\n{body}\n" + (f"\n{notes}" if notes else "")


def render_all(tables: Sequence[Table], fmt: str, results: Results, written: Sequence[Path]) -> str:
    """What the command prints: every table, then skipped files and the files written."""
    extra = [f"skipped unreadable file {s}" for s in results.skipped] + results.notes
    if fmt == "json":
        return json.dumps({"tables": [table_json(t) for t in tables], "skipped": results.skipped,
                           "notes": results.notes, "files": [str(p) for p in written]},
                          indent=2, allow_nan=False) + "\n"
    if fmt == "csv":  # one block per table; '#' lines are comments for pandas.read_csv(comment="#")
        blocks = [f"# {t.title}\n# {t.rule}\n{render(t, 'csv')}" for t in tables]
        tail = "".join(f"# {line}\n" for line in extra)
        return "\n".join(blocks) + tail
    out = "\n".join(render(t, fmt) for t in tables)
    if fmt == "latex":
        return out + "".join(f"% {line}\n" for line in extra) + "".join(f"% wrote {p}\n" for p in written)
    bullet = "- " if fmt == "markdown" else "  "
    if extra:
        out += "\n" + "".join(f"{bullet}{line}\n" for line in extra)
    if written:
        out += f"\nWritten to {written[0].parent}: " + ", ".join(p.name for p in written) + "\n"
    return out


# ---------------------------------------------------------------------------------------------------
# Entry point


def build_tables(analyses: Sequence[Analysis], compare: str | None = None) -> tuple[list[Table], list[str]]:
    """The tables of a report (and notes on the paper tables that could not be built)."""
    if compare:
        return [compare_table(analyses, compare)], []
    notes = []
    tables = [ranking_table(a) for a in analyses if a.exp.stage == "screen" or len(a.configs) > 1]
    tables.append(best_table(analyses))
    archs = {a.exp.arch for a in analyses}
    for arch, options, ref, name, title, text in (
        ("linear", TABLE_III_OPTIONS, paper.TABLE_III, "table3_linear_dropout",
         "Table III — Linear with and without dropout", "Linear 2×128, Table III"),
        ("lenet", TABLE_IV_OPTIONS, paper.TABLE_IV, "table4_lenet_aux",
         "Table IV — LeNet with and without the auxiliary loss", "LeNet k=5 + batch norm, Table IV"),
    ):
        if arch not in archs:
            continue
        t = ablation_table(analyses, arch, options, ref, name, title, text)
        if t is None:
            notes.append(f"{title.split(' — ')[0]} not built: no {arch} experiment varies "
                         f"{' or '.join(options)} with the other options at their best values")
        else:
            tables.append(t)
    return tables, notes


def run_report(output_dir: str | Path = "outputs", arch: str | None = None, fmt: str = "table",
               compare: str | None = None, figure: str | None = None,
               figure_formats: Sequence[str] = ("png",), out: IO[str] | None = None) -> list[Path]:
    """Print the report of `output_dir`'s results in `fmt` and write each table (as `fmt` and as csv) and
    Figure 1 under `output_dir/report/`. `figure`: None = the default figure (none with `compare`),
    "none" = no figure, else ARCH[/NAME][:OPTION=VALUE,...]. Returns the paths written."""
    out = sys.stdout if out is None else out
    if fmt not in FORMATS:
        raise ReportError(f"unknown format '{fmt}' (choose one of {', '.join(FORMATS)})")
    bad = [f for f in figure_formats if f not in FIGURE_FORMATS]
    if bad:
        raise ReportError(f"unknown figure format '{bad[0]}' (choose from {', '.join(FIGURE_FORMATS)})")
    results = load_results(output_dir, arch)
    analyses = [analyse(e) for e in results.experiments]
    tables, notes = build_tables(analyses, compare)
    results.notes += notes
    draw = figure is not None and figure.lower() != "none" or (figure is None and not compare)
    target = figure_target(analyses, figure if figure is not None and figure.lower() != "none" else None,
                           arch) if draw else None

    report_dir = Path(output_dir) / REPORT_DIR
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for t in tables:
            for f in dict.fromkeys(("csv", fmt)):  # csv always: the tidy, stable form
                path = report_dir / f"{t.name}.{EXTENSIONS[f]}"
                path.write_text(render(t, f), encoding="utf-8")
                written.append(path)
        if target is not None:
            written += write_figure(target, report_dir, list(dict.fromkeys(figure_formats)) or ["png"])
    except OSError as e:
        raise ReportError(f"{report_dir}: cannot write the report ({e.strerror or e})") from None
    out.write(render_all(tables, fmt, results, written))
    return written


# ---------------------------------------------------------------------------------------------------
# Small views used by `tune-digits search` (through the CLI: search itself never imports the report)


def best_configuration(experiment_dir: str | Path, arch: str) -> dict[str, Any] | None:
    """The grid values of an experiment's best configuration (Table I's rank 1), typed as the search
    wrote them in search.json; None when the experiment has no results yet."""
    path = Path(experiment_dir)
    if not (path / "search.json").is_file():
        return None
    exp = _load_experiment(path, arch)
    if exp.rows.empty:
        return None
    a = analyse(exp)
    trial_id = a.reps.loc[a.reps["config"] == a.best, "trial_id"].iloc[0]
    config = (exp.meta.get("trials", {}).get(trial_id) or {}).get("config") or {}
    missing = [ax for ax in exp.axes if ax not in config]
    if missing:
        raise ReportError(f"{path / 'search.json'}: trial {trial_id} has no value for {', '.join(missing)}")
    return {ax: config[ax] for ax in exp.axes}


def top_configurations(experiment_dir: str | Path, arch: str, top: int = 5) -> str:
    """A short ranked table of one experiment (mean ± std over seeds), for the end of a search."""
    exp = _load_experiment(Path(experiment_dir), arch)
    if exp.rows.empty:
        return "no epoch was reported"
    table = ranking_table(analyse(exp))
    frame = table.display_frame().head(top)
    more = len(table.data) - len(frame)
    return (tabulate(frame, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)
            + (f"\n… {more} more configuration(s): tune-digits report {arch}" if more > 0 else ""))
