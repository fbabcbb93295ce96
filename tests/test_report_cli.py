"""`tune-digits report`: json and figure formats, --compare, and errors in one line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import outputs, run_cli  # noqa: F401 (outputs: a fixture)


def test_cli_report_json_and_figure_formats(outputs: Path) -> None:
    result = run_cli("report", "resnet", "--output", str(outputs), "--format", "json",
                     "--figure-format", "pdf", "--figure-format", "png")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [t["name"] for t in doc["tables"]] == ["findings", "table2_best", "table1_resnet_screen", "provenance"]
    assert doc["html"].endswith("report.html")
    assert (outputs / "report" / "figure1_resnet.pdf").read_bytes()[:5] == b"%PDF-"
    assert (outputs / "report" / "figure1_resnet.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_prints_only_that_table(outputs: Path) -> None:
    result = run_cli("report", "--output", str(outputs), "--compare", "batch_norm", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("### Comparison — batch_norm") and "Table II" not in result.stdout
    assert not (outputs / "report" / "figure1_resnet.png").exists()


@pytest.mark.parametrize("args, message", [
    (["lenet"], "error: no results for 'lenet'"),
    (["--compare", "depth"], "error: no experiment varies 'depth'"),
    (["--figure", "resnet:channels=3"], "error: --figure resnet:channels=3: no configuration"),
])
def test_cli_errors_are_one_line(outputs: Path, args: list[str], message: str) -> None:
    result = run_cli("report", "--output", str(outputs), *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_cli_corrupt_search_json_is_one_line(outputs: Path) -> None:
    (outputs / "resnet" / "screen" / "search.json").write_text("[1, 2")
    result = run_cli("report", "--output", str(outputs))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "search.json: not valid JSON" in result.stderr


def test_cli_help_names_the_search_space() -> None:
    result = run_cli("report", "--help")
    assert result.exit_code == 0 and "[SPACE]" in result.stdout and "ARCH" not in result.stdout
