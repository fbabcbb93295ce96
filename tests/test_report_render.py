"""What the report prints and writes, in every format."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import outputs  # noqa: F401 (a fixture)

from tune_digits.report import FORMATS, run_report

EXPECTED_ROW = "batch_norm=True, channels=16"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_prints_and_writes_parseable_tables(outputs: Path, fmt: str) -> None:
    out = io.StringIO()
    written = run_report(outputs, fmt=fmt, out=out, figure="none")
    text, report = out.getvalue(), outputs / "report"
    assert {"table1_resnet_screen.csv", "table2_best.csv"} <= {p.name for p in written}
    if fmt == "json":
        t1 = {t["name"]: t for t in json.loads(text)["tables"]}["table1_resnet_screen"]
        assert t1["rows"][0]["config"] == EXPECTED_ROW
        assert t1["rows"][0]["test_error_mean"] == pytest.approx(3.5) and "rule" in t1
        assert json.loads((report / "table2_best.json").read_text())["name"] == "table2_best"
    elif fmt == "csv":
        df = pd.read_csv(report / "table1_resnet_screen.csv")
        assert df["config"].iloc[0] == EXPECTED_ROW and df["test_error_mean"].iloc[0] == pytest.approx(3.5)
        table1 = next(b for b in text.split("\n\n") if b.startswith("# Table I "))  # one block per table
        assert pd.read_csv(io.StringIO(table1), comment="#")["rank"].tolist() == [1, 2, 3, 4]
    elif fmt == "markdown":
        md = (report / "table1_resnet_screen.md").read_text()
        assert md.startswith("### Table I — resnet/screen") and "### Table I — resnet/screen" in text
        assert "3.500 ± 0.500" in text and text.startswith("### Findings")  # the answers first
        assert text.index("### Findings") < text.index("### Table II") < text.index("### Table I —")
    elif fmt == "latex":
        tex = (report / "table2_best.tex").read_text()
        assert tex.count(r"\begin{tabular}") == 1 and r"3.500 $\pm$ 0.500" in tex
        assert r"\toprule" in text and "±" not in tex
    elif fmt == "html":  # the page only, its path printed
        assert text == f"HTML report: {report / 'report.html'}\n"
        assert "<table>" in (report / "report.html").read_text() and not (report / "table2_best.txt").exists()
    else:
        assert "Table I — resnet/screen" in text and "3.500 ± 0.500" in text
        assert "test-selected (paper)" in text and "final epoch (honest)" in text
        assert (report / "table2_best.txt").read_text().startswith("Table II")


def test_markdown_table_rows(outputs: Path) -> None:
    run_report(outputs, fmt="markdown", out=io.StringIO(), figure="none")
    md = (outputs / "report" / "table1_resnet_screen.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 4  # header, separator, 4 configurations
    assert "3.500 ± 0.500" in rows[2] and "*" in rows[2]


def test_compare_csv_on_stdout_parses(outputs: Path) -> None:
    out = io.StringIO()
    written = run_report(outputs, fmt="csv", compare="channels", out=out)
    assert [p.name for p in written] == ["compare_channels.csv"]  # no figure unless asked, no page
    df = pd.read_csv(io.StringIO(out.getvalue()), comment="#")
    assert set(df["scope"]) == {"others_at_best", "pooled"} and set(df["value"]) == {8, 16}
    assert set(df["space"]) == {"resnet"}


def test_the_list_of_written_files_never_splits_a_name_or_path() -> None:
    from tune_digits.report.load import Results
    from tune_digits.report.render import View, render_all

    folder = Path("/tmp/a-much-longer-folder-name/with-hyphens-in-it/report")
    written = [folder / f"table1_resnet-screen-{i}.csv" for i in range(12)]
    text = render_all([], "table", Results([], [], [f"a note about {folder}"]), written, View(width=40))
    lines = text.splitlines()
    assert max(len(line) for line in lines) > 40  # a path longer than the width stays whole
    for name in [str(folder), *(p.name for p in written)]:
        assert any(name in line for line in lines), name
