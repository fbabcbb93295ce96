"""The report of the committed reference results fits a terminal: led by the findings, then Table II and the head
of each ranking, within 150 lines of 120 columns, while the written files keep every row; its markdown pastes
as well-formed tables. Read from a copy, as `tune-digits report` finds it in a fresh clone (no outputs/ yet)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import ROOT

from tune_digits.cli import main


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A folder holding a copy of reference/ and no outputs/, like a fresh clone."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "reference", root / "reference", ignore=shutil.ignore_patterns("report", ".*"))
    return root


def report(clone: Path, monkeypatch, *args: str) -> str:
    monkeypatch.chdir(clone)
    result = CliRunner().invoke(main, ["report", "--figure", "none", *args])
    assert result.exit_code == 0, result.output
    assert "committed reference results in reference/" in result.stderr  # no outputs/ yet: says what it shows
    return result.stdout


@pytest.mark.slow
def test_default_report_is_short_and_leads_with_the_findings(clone, monkeypatch):
    text = report(clone, monkeypatch)
    lines = text.splitlines()
    # 149 lines with the paper's networks and four studies; each further study adds its Table I head (≈ 10 lines)
    # and its findings rows: 164 with `regularisers`, 201 with `distortions` (three raced screens and a final).
    assert len(lines) <= 210 and max(len(line) for line in lines) <= 120, (len(lines), max(map(len, lines)))
    assert text.startswith("Findings — the study's questions")
    assert text.index("Findings") < text.index("Table II — best configuration") < text.index("Table I — resnet/screen")
    assert lines[-1] == f"HTML report: {Path('reference') / 'report' / 'report.html'}"
    # Each ranking's head only, its shared rule said once; the files keep every row.
    assert text.count("Ranked by mean val_error") == 1 and "\n4   " not in text
    assert len(pd.read_csv(clone / "reference" / "report" / "table1_resnet_screen.csv")) == 300
    assert {"ci_low", "p_holm", "tied_with_best"} <= set(pd.read_csv(clone / "reference" / "report" /
                                                                      "table1_resnet_screen.csv").columns)
    assert "Provenance" not in text.split("Also in report/")[0] and "tune-digits reproduce" not in text
    findings = pd.read_csv(clone / "reference" / "report" / "findings.csv")
    assert {"options: resnet/screen", "networks", "studies"} <= set(findings["family"])
    assert f"{findings['shown'].sum()} of {len(findings)} rows shown" in text
    every = report(clone, monkeypatch, "--all")
    assert "Provenance" in every and "tune-digits reproduce" in every and "\n300 " in every
    more = report(clone, monkeypatch, "--top", "5", "resnet")
    assert "\n5   " in more and "\n6   " not in more


def test_markdown_report_is_well_formed(clone, monkeypatch):
    text = report(clone, monkeypatch, "--format", "markdown")
    blocks = [b for b in text.split("\n\n") if b.startswith("|")]
    assert len(blocks) >= 9  # the findings, Table II, seven Tables I
    for block in blocks:
        lines = block.strip("\n").splitlines()
        assert set(lines[1]) <= set("|-: "), "the second line is the header's separator"
        assert len({line.count("|") for line in lines}) == 1, "every row has the header's columns"
        assert max(len(line) for line in lines) <= 120
