"""The Python API (`import tune_digits as td`): run a search, read results as tidy DataFrames, get the report's
tables. Each function imports what it needs when called, so `import tune_digits` stays light.

    import tune_digits as td
    rows = td.search("lenet", stage="screen", reps=1, epochs=2, pairs=100)  # one row per seed and epoch
    rows = td.load_results("reference/lenet/final")                        # any result set on disk
    tables = td.report_tables("reference")                                 # {"table2_best": DataFrame, …}
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def search(space: str, stage: str | None = None, *, output: str | Path = "outputs", name: str | None = None,
           pairs: int | None = None, reps: int | None = None, epochs: int | None = None,
           overrides: dict[str, Any] | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
           address: str | None = None, num_cpus: int | None = None, searcher: str = "grid", num_samples: int = 1,
           scheduler: str = "fifo", race: dict[str, Any] | None = None, seeds_per_trial: int = 1, restart: bool = False,
           spaces_dir: str | Path | None = None, data_dir: str | Path | None = None,
           verbose: bool = False) -> pd.DataFrame:
    """`tune-digits search` from Python: run (or resume) the search and return its rows (`load_results`).

    `space` is a space's name or a .yaml path; `overrides` are `--set` values (a list replaces a grid axis);
    `race` the `--race` settings of `searcher="race"` ({"first": 2, "alpha": 0.05, "budget": None}).
    The frame's `attrs` hold the experiment's folder and the outcome (trials finished, failed, interrupted)."""
    from .tuning import Algorithm, Launch, Resources, RunOptions, Sizes, run_search

    plan = plan_space(space, stage, output=output, name=name, overrides=overrides, spaces_dir=spaces_dir,
                      sizes=Sizes(pairs=pairs, reps=reps, epochs=epochs),
                      algorithm=Algorithm(search=searcher, num_samples=num_samples, scheduler=scheduler,
                                          settings=dict(race or {})),
                      resources=Resources(cpus_per_trial, gpus_per_trial),
                      options=RunOptions(seeds_per_trial=seeds_per_trial))
    call = ", ".join([repr(space), *(f"{k}={v!r}" for k, v in (
        ("stage", stage), ("output", str(output)), ("name", name), ("pairs", pairs), ("reps", reps),
        ("epochs", epochs), ("overrides", overrides)) if v is not None)])
    outcome = run_search(plan, Launch(address=address, num_cpus=num_cpus, restart=restart, verbose=verbose,
                                      progress=False, data_dir=data_dir, command=f"tune_digits.search({call})",
                                      echo=lambda line: None))
    rows = load_results(outcome.experiment_dir)
    rows.attrs.update(experiment_dir=str(outcome.experiment_dir), trials=outcome.trials,
                      finished=outcome.finished, failed=outcome.failed, interrupted=outcome.interrupted)
    return rows


def plan_space(space: str, stage: str | None = None, *, output: str | Path = "outputs", name: str | None = None,
               overrides: dict[str, Any] | None = None, spaces_dir: str | Path | None = None, **groups: Any):
    """The SearchPlan of `tune-digits search` and `search()`: the space found by name or path, `--set` values
    applied, the screen's winner for a final stage; `groups` are plan_search's option groups (sizes, …)."""
    from .tuning import plan_search
    from .spaces import apply_overrides, load_space

    loaded = load_space(space, spaces_dir)
    if overrides:
        loaded = apply_overrides(loaded, dict(overrides))
    best = None
    if stage == "final":
        from .report import best_configuration

        best = best_configuration(Path(output) / loaded.name / "screen", loaded.name)
    return plan_search(loaded, stage=stage, name=name, best=best, output=output, **groups)


def load_results(path: str | Path = "outputs") -> pd.DataFrame:
    """One tidy frame: a row per (trial, seed, epoch) with its metrics and one column per config value, typed
    (numbers, booleans, text). `path` is one experiment's folder (`outputs/lenet/screen`), a space's folder
    (`outputs/lenet`) or a results folder (`outputs`, `reference`); the `space` and `experiment` columns say
    which each row is from. `path` may be a search's --storage too: a folder, a file:// URI, or an s3:// or
    gs:// URI of its root or of one experiment (`s3://bucket/prefix/lenet/screen`), read through a temporary
    folder."""
    import pandas as pd

    from . import results, storage
    from .report.load import load_experiment, load_results as load_all

    folder = storage.local_path(path)
    if folder is None:
        return _load_remote(str(path))
    inside = sorted(p for p in folder.iterdir() if p.is_dir() and results.is_experiment(p)) if folder.is_dir() else []
    if results.is_experiment(folder):
        experiments = [load_experiment(folder, folder.parent.name)]
    elif inside:  # one space's experiments
        experiments = [load_experiment(p, folder.name) for p in inside]
    else:
        experiments = load_all(folder).experiments
    frames = [exp.rows.drop(columns="config").assign(space=exp.space, experiment=exp.name)
              for exp in experiments if not exp.rows.empty]
    if not frames:
        return pd.DataFrame(columns=["space", "experiment", *results.ROW_HEAD])
    rows = pd.concat(frames, ignore_index=True)
    head = ["space", "experiment", *[c for c in results.ROW_HEAD if c in rows.columns]]
    rows = rows[head + [c for c in rows.columns if c not in head]]
    for column in ["wall_time", *rows.columns[len(head):]]:
        if column in rows.columns:
            rows[column] = _typed(rows[column])
    return rows


def _load_remote(uri: str) -> pd.DataFrame:
    """load_results of remote storage: its tables copied to a temporary folder in the layout of outputs/ (one
    experiment as `<space>/<name>`, so the space and experiment columns read the same), then read."""
    import tempfile

    from . import storage

    with tempfile.TemporaryDirectory(prefix="tune-digits-results-") as tmp:
        parts = uri.partition("?")[0].rstrip("/").split("/")
        one = Path(tmp, *parts[-2:])
        if len(parts) >= 5 and storage.fetch_experiment(uri, one):  # scheme://bucket/.../space/name
            return load_results(one)
        storage.fetch_tables(uri, Path(tmp))
        return load_results(tmp)


def _typed(column: pd.Series) -> pd.Series:
    """A column read as text → numbers or booleans where every value given is one (empty cells: missing)."""
    import pandas as pd

    text = column.astype(str).str.strip()
    given = ~text.isin(["", "none", "None", "nan"])
    if given.any() and text[given].isin(["True", "False"]).all():
        return text == "True" if given.all() else (text == "True").astype(object).where(given)
    numbers = pd.to_numeric(text.where(given), errors="coerce")
    if given.any() and numbers[given].notna().all():
        whole = given.all() and (numbers % 1 == 0).all()
        return numbers.astype("int64") if whole else numbers
    return column


def report_tables(path: str | Path = "outputs", space: str | None = None,
                  compare: str | None = None) -> dict[str, pd.DataFrame]:
    """The report's tables as DataFrames (every row and column, as in the CSV files), by file name:
    `findings`, `table2_best`, `table1_<space>_<name>`, …, `provenance`; with `compare`, only that comparison."""
    from .report import analyse, build_tables
    from .report.load import load_results as load_all

    analyses = [analyse(e) for e in load_all(path, space).experiments]
    tables, _notes = build_tables(analyses, compare)
    return {t.name: t.data for t in tables}
