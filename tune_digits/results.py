"""The on-disk results format, and its only owner: a search (tuning/) writes through this module, `report` reads
through it, test fixtures build result sets with it. Standard library only: no torch, no Ray, no pandas.

One experiment is a folder `OUTPUT/<space>/<name>/` (outputs/README.md):
- `search.json`: what was run (the `META_*` keys below), with `format_version`;
- `trials/<trial_id>.csv`: one trial's rows, appended as it reports;
- `epochs.csv`: every trial's rows together, written when the search ends.
A row is one (trial, seed, epoch): the `ROW_HEAD` columns, then one column per config value.

Format history. Columns added without a new version: `precision` and `train_eval` (absent: `fp32`, `every`;
see `CONFIG_DEFAULTS`). Version 1 (no `format_version` key) named the search space `arch` in search.json and the
network `arch` in the rows, LeNet's side-classifier weight `aux_loss_weight` and the pair strategies' digit
loss weight `aux_weight`. Readers see every file in today's names (`upgrade_meta`, `CONFIG_RENAMES`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from .errors import UserError

FORMAT_VERSION = 2
SEARCH_JSON = "search.json"
EPOCHS_CSV = "epochs.csv"
TRIALS_DIR = "trials"
REPORT_DIR = "report"  # OUTPUT/report/: the report's files, beside the spaces' folders (no experiment)

# Per-epoch metrics of docs/protocol.md §3 (plus the validation split's), in the order of the columns.
CURVES = ("train_loss", "train_error", "test_digit_error", "test_error")
VAL_METRICS = ("val_error", "val_digit_error")
METRICS = (*CURVES, *VAL_METRICS)
# wall_time (unix seconds at the report) and node (the Ray node the epoch ran on) place each epoch in time
# and on the cluster: how many trials overlapped, which ones a lost node moved.
ROW_HEAD = ("trial_id", "seed", "epoch", *METRICS, "time_s", "wall_time", "node")
REQUIRED = ("seed", "epoch", *CURVES)
NUMERIC = (*METRICS, "time_s")
# Columns of a row that are not a config value.
RUN_COLUMNS = frozenset(ROW_HEAD)
# Trial config keys that are the search's bookkeeping, not a setting of the study.
BOOKKEEPING = frozenset({"seed", "seeds", "threads"})

# Old name → today's, for config keys (rows, search.json's fixed/grid/axes, YAML files, --set).
CONFIG_RENAMES = {"arch": "network", "aux_loss_weight": "side_loss_weight", "aux_weight": "digit_loss_weight"}

# Config columns added after results were committed, and what a row without one meant when it was written:
# the float32 path, the training set measured every epoch. Readers fill them in (`read_rows`), so old and
# new rows of the same setting read alike.
CONFIG_DEFAULTS = {"precision": "fp32", "train_eval": "every"}

# search.json keys. Written by search (`new_meta`), read by report and by a resuming search.
# Provenance (tune_digits/provenance.py): `command` (as typed, shell-quoted), `commands` (every run of it,
# resumes included), `code` (version, git_commit, git_dirty), `versions`, `machine`, `searcher_seed`.
# Paths are relative to the experiment's folder (`ray_path`, a user's `space_file`) or name a shipped space
# (`space_file` = tune_digits/search_spaces/<space>.yaml with `space_origin` = shipped): never absolute.
META_KEYS = (
    "format_version", "space", "network", "name", "stage", "space_file", "space_origin", "axes", "fixed", "grid",
    "seeds", "seeds_per_trial", "vectorize", "num_trials", "search", "scheduler", "searcher_seed", "metric",
    "fingerprint", "command", "commands", "code", "versions", "machine", "resources", "ray_path", "started",
    "finished", "trials", "log",
)
PROVENANCE_KEYS = ("command", "code", "versions", "machine", "started", "finished")


class ResultsError(UserError):
    """A result file that cannot be used; the message names the file and what is wrong."""


class BadFile(Exception):
    """One unreadable result CSV; the message says why (readers decide whether to skip it)."""


# ---------------------------------------------------------------------------------------------------
# Writing


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(path: Path, fields, rows) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


def cell(value):
    """Missing or NaN metrics are written as empty cells."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def make_row(trial_id: str, seed: int, metrics: dict, config: dict) -> dict:
    """One row: the run columns from `metrics` (missing ones empty), then the trial's config values."""
    head = {"trial_id": trial_id, "seed": seed, **{k: cell(metrics.get(k)) for k in ROW_HEAD[2:]}}
    return {**head, **{k: v for k, v in config.items() if k not in BOOKKEEPING}}


def new_meta(**fields) -> dict:
    """A search.json for a new experiment: the keys of `META_KEYS` (unknown ones refused), current version."""
    unknown = set(fields) - set(META_KEYS)
    if unknown:
        raise ValueError(f"not search.json keys: {sorted(unknown)}")
    return {"format_version": FORMAT_VERSION, **fields, "trials": fields.get("trials", {})}


def write_meta(experiment_dir: Path, meta: dict) -> None:
    atomic_write(experiment_dir / SEARCH_JSON, json.dumps(meta, indent=1, default=str))


def append_rows(experiment_dir: Path, trial_id: str, rows: list[dict], last_epoch: int | None) -> int:
    """Append one report's rows (one per seed, same epoch) to trials/<trial_id>.csv; returns the epoch.

    A trial restored from an earlier checkpoint (or restarted) re-reports epochs: the rows it is about to
    replace are dropped first, so no epoch is ever counted twice. `last_epoch` is the caller's memory of
    the file's newest epoch (None: read it from the file)."""
    path = experiment_dir / TRIALS_DIR / f"{trial_id}.csv"
    epoch = int(rows[0]["epoch"])
    if last_epoch is None and path.exists():
        _drop_cut_line(path)
        last_epoch = newest_epoch(path)
    if last_epoch is not None and epoch <= last_epoch:
        _truncate(path, epoch)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return epoch


def _drop_cut_line(path: Path) -> None:
    """A driver killed while appending leaves a last line without its line end: drop that line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write(path, data[:data.rfind(b"\n") + 1].decode())


def count_rows(experiment_dir: Path) -> dict[str, int]:
    """trial id → the rows in its file (epochs × seeds reported so far)."""
    counts = {}
    for path in (experiment_dir / TRIALS_DIR).glob("*.csv"):
        with path.open(newline="") as f:
            counts[path.stem] = sum(1 for row in csv.DictReader(f) if row.get("epoch"))
    return counts


def move_rows(experiment_dir: Path, old_id: str, new_id: str) -> None:
    """Trial `old_id`'s rows become trial `new_id`'s (a trial that replaces it, for the same run)."""
    old = experiment_dir / TRIALS_DIR / f"{old_id}.csv"
    if not old.exists():
        return
    _drop_cut_line(old)
    with old.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [{**r, "trial_id": new_id} for r in reader]
    write_csv(old.with_name(f"{new_id}.csv"), fields, rows)
    old.unlink()


def drop_rows(experiment_dir: Path, trial_id: str) -> None:
    (experiment_dir / TRIALS_DIR / f"{trial_id}.csv").unlink(missing_ok=True)


def newest_epoch(path: Path) -> int | None:
    try:
        with path.open(newline="") as f:
            epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return None
    return max(epochs) if epochs else None


def _truncate(path: Path, first_epoch: int) -> None:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if int(r["epoch"]) < first_epoch]
    write_csv(path, fields, rows)


def write_epochs_csv(experiment_dir: Path) -> Path | None:
    """All trials' rows in one file, sorted by trial and epoch (written when a search ends)."""
    rows, fields = [], []
    for path in sorted((experiment_dir / TRIALS_DIR).glob("*.csv")):
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields += [name for name in reader.fieldnames or [] if name not in fields]
            rows += list(reader)
    if not rows:
        return None
    rows.sort(key=lambda r: (r["trial_id"], int(r["epoch"])))
    out = experiment_dir / EPOCHS_CSV
    write_csv(out, fields, rows)
    return out


def has_rows(experiment_dir: Path) -> bool:
    return (experiment_dir / EPOCHS_CSV).exists() or any((experiment_dir / TRIALS_DIR).glob("*.csv"))


def is_experiment(path: Path) -> bool:
    return (path / SEARCH_JSON).exists() or (path / TRIALS_DIR).is_dir() or (path / EPOCHS_CSV).exists()


# ---------------------------------------------------------------------------------------------------
# Reading


def read_meta(path: Path, missing_ok: bool = False) -> dict | None:
    """search.json in today's names; None when absent and `missing_ok`; ResultsError when unusable."""
    if not path.is_file():
        if missing_ok:
            return None
        raise ResultsError(f"{path}: missing (each experiment folder needs the search.json that "
                           f"`tune-digits search` writes)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ResultsError(f"{path}: empty file")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    axes = meta.get("axes")
    if axes is not None and not (isinstance(axes, list) and all(isinstance(a, str) for a in axes)):
        raise ResultsError(f"{path}: 'axes' must be a list of option names")
    return upgrade_meta(meta)


def upgrade_meta(meta: dict) -> dict:
    """A version-1 search.json in today's names (the file on disk is left as it is)."""
    if meta.get("format_version", 1) >= FORMAT_VERSION:
        return meta
    meta = dict(meta)
    if "arch" in meta:  # version 1 named the search space `arch`
        meta.setdefault("space", meta.pop("arch"))
    for key in ("fixed", "grid"):
        if isinstance(meta.get(key), dict):
            meta[key] = rename_config(meta[key])
    if isinstance(meta.get("axes"), list):
        meta["axes"] = [CONFIG_RENAMES.get(a, a) for a in meta["axes"]]
    return meta


def rename_config(config: dict) -> dict:
    """Config keys in today's names (a key already in today's name wins over its old spelling)."""
    out = {}
    for key, value in config.items():
        new = CONFIG_RENAMES.get(key, key)
        if new == key or new not in config:
            out[new] = value
    return out


def trial_config(entry) -> dict | None:
    """One trial entry of search.json's `trials`: its config in today's names; None when it has none.

    `upgrade_meta` renames the search's own keys, not each trial's config: readers that look a trial's values
    up by today's option names (the axes) go through here."""
    config = entry.get("config") if isinstance(entry, dict) else None
    return rename_config(config) if isinstance(config, dict) else None


def read_rows(path: Path, required=REQUIRED, default_trial: str = "epochs") -> list[dict[str, str]]:
    """One result CSV as validated records of strings, in today's column names and with every column of
    `CONFIG_DEFAULTS` (a missing one holds its default); raises BadFile.

    Plain `csv` rather than pandas: a search leaves hundreds of tiny trial files, and pandas' per-call
    overhead would dominate the report's run time."""
    lines = _csv_lines(path)
    header = [CONFIG_RENAMES.get(h.strip(), h.strip()) for h in lines[0]]
    body = lines[1:]
    if not body:
        raise BadFile("no rows (header only)")
    missing = [c for c in required if c not in header]
    if missing:
        raise BadFile("missing column(s) " + ", ".join(missing))
    numeric = [c for c in NUMERIC if c in header]
    records = []
    for i, values in enumerate(body, start=1):
        if len(values) != len(header):
            raise BadFile(f"not a readable CSV (data row {i} has {len(values)} fields, the header {len(header)})")
        rec = dict(zip(header, values))
        _check_record(rec, numeric, i)
        rec.setdefault("trial_id", default_trial)
        for key, default in CONFIG_DEFAULTS.items():
            if not rec.get(key):  # absent, or empty in an epochs.csv that joins older and newer trial files
                rec[key] = default
        records.append(rec)
    return records


def _csv_lines(path: Path) -> list[list[str]]:
    if path.stat().st_size == 0:
        raise BadFile("empty file")
    try:
        text = path.read_text(encoding="utf-8")
        lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
    except UnicodeDecodeError:
        raise BadFile("not a readable CSV (not UTF-8 text)") from None
    except csv.Error as e:
        raise BadFile(f"not a readable CSV ({one_line(e)})") from None
    if not lines:
        raise BadFile("empty file")
    return lines


def _check_record(rec: dict[str, str], numeric: list[str], i: int) -> None:
    for col in ("seed", "epoch"):
        if not _is_int(rec[col]):
            raise BadFile(f"non-integer '{col}' on data row {i}")
    if float(rec["epoch"]) < 1:
        raise BadFile(f"'epoch' must be 1-based (data row {i})")
    for col in numeric:
        if rec[col].strip() and not _is_float(rec[col]):
            raise BadFile(f"non-numeric '{col}' on data row {i}")
    if not rec["test_error"].strip():
        raise BadFile(f"empty 'test_error' on data row {i}")


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _is_int(text: str) -> bool:
    return _is_float(text) and math.isfinite(float(text)) and float(text).is_integer()


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:120] + ("…" if len(text) > 120 else "")
