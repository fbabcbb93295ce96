"""The report of the committed reference results fits a terminal: led by the summary, every printed line within
120 columns, each ranking cut to its top 10, while the written files keep every row; its markdown pastes as
well-formed tables. Read from a copy, as `tune-digits report` finds it in a fresh clone (no outputs/ yet)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ROOT

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


def test_default_report_fits_120_columns_and_leads_with_the_summary(clone, monkeypatch):
    text = report(clone, monkeypatch)
    widths = [len(line) for line in text.splitlines()]
    assert max(widths) <= 120, [line for line in text.splitlines() if len(line) > 120][:3]
    assert text.startswith("Table II — best configuration per architecture vs the paper")
    assert "top 10 of 300 shown (--top N, --all)" in text and text.count("\n11   ") == 0
    assert len(pd.read_csv(clone / "reference" / "report" / "table1_resnet_screen.csv")) == 300  # files keep all
    assert "ci_low" in pd.read_csv(clone / "reference" / "report" / "table1_resnet_screen.csv").columns
    assert "Provenance" in text and "tune-digits reproduce" in text
    more = report(clone, monkeypatch, "--top", "3", "resnet")
    assert "top 3 of 300 shown" in more


def test_markdown_report_is_well_formed(clone, monkeypatch):
    text = report(clone, monkeypatch, "--format", "markdown")
    blocks = [b for b in text.split("\n\n") if b.startswith("|")]
    assert len(blocks) >= 9  # Tables II, III, IV, six Tables I, provenance
    for block in blocks:
        lines = block.strip("\n").splitlines()
        assert set(lines[1]) <= set("|-: "), "the second line is the header's separator"
        assert len({line.count("|") for line in lines}) == 1, "every row has the header's columns"
        assert max(len(line) for line in lines) <= 120
