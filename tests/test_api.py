"""The Python API: `import tune_digits` stays light; load_results and report_tables give tidy DataFrames of
the committed results; and README's "Use from Python" snippet runs as written (a real 1-trial search)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from helpers import ROOT

import tune_digits as td


def test_import_is_light():
    code = ("import sys, tune_digits as td; td.__all__; "
            "print(sorted(m for m in ('torch', 'ray', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        td.nope  # noqa: B018
    from tune_digits import api  # td.search is the API's function itself (the Ray code lives in tune_digits.tuning)
    assert td.search is api.search


def test_load_results_is_tidy_and_typed():
    rows = td.load_results(ROOT / "reference" / "lenet" / "final")
    assert len(rows) == 20 * 25 and not rows.duplicated(["seed", "epoch"]).any()  # a row per seed and epoch
    assert list(rows.columns[:5]) == ["space", "experiment", "trial_id", "seed", "epoch"]
    assert rows["kernel_size"].dtype == "int64" and rows["batch_norm"].dtype == bool
    assert rows["lr"].dtype == float and rows["network"].eq("lenet").all()
    both = td.load_results(ROOT / "reference" / "lenet")
    assert set(both["experiment"]) == {"final", "screen"} and len(both) == len(rows) + 16 * 3 * 25


def test_report_tables_are_the_files_data():
    tables = td.report_tables(ROOT / "reference", space="lenet")
    assert list(tables)[:2] == ["findings", "table2_best"] and "provenance" in tables
    ranking = tables["table1_lenet_screen"]
    assert len(ranking) == 16 and {"test_error_mean", "p_vs_best", "ci_low"} <= set(ranking.columns)


@pytest.mark.slow
def test_readme_snippet_runs(tmp_path, monkeypatch, ray_tmpdir):
    snippet = re.search(r"## Use from Python\n.*?```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    shutil.copytree(ROOT / "reference", tmp_path / "reference", ignore=shutil.ignore_patterns("report", ".*"))
    monkeypatch.chdir(tmp_path)  # "run from the repository's root": a copy of its reference/
    scope: dict = {}
    exec(compile(snippet.group(1), "README.md", "exec"), scope)  # noqa: S102 (the README's own code)
    rows = scope["rows"]
    assert isinstance(rows, pd.DataFrame) and list(rows["epoch"]) == [1, 2] and rows.attrs["finished"] == 1
    assert (tmp_path / "outputs" / "lenet" / "default" / "search.json").is_file()
    assert scope["tables"]["table2_best"]["space"].iloc[0] == "linear"
