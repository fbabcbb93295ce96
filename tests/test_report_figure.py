"""Figure 1: which configuration it draws, its four panels, and the curves written beside it."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import outputs  # noqa: F401 (a fixture)

from tune_digits.report import ReportError, analyse, draw_figure, figure_curves, figure_target, load_results, run_report


def test_figure_png_with_four_panels(outputs: Path) -> None:
    written = run_report(outputs, out=io.StringIO(), figure_formats=("png", "svg"))
    png = outputs / "report" / "figure1_resnet.png"
    assert png in written and (outputs / "report" / "figure1_resnet.svg") in written
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(outputs / "report" / "figure1_resnet.csv")
    assert list(curves.columns[:5]) == ["space", "experiment", "config", "epoch", "n"]
    assert list(curves["epoch"]) == [1, 2, 3] and list(curves["n"]) == [3, 3, 3]
    assert list(curves["test_error_mean"]) == pytest.approx([4.5, 2.5, 3.5])  # the best config, per epoch
    assert list(curves["test_error_std"]) == pytest.approx([0.5, 0.5, 0.5])
    analyses = [analyse(e) for e in load_results(outputs).experiments]
    fig = draw_figure(figure_curves(figure_target(analyses, None)), "t")
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["Training loss", "Training digit error (%)",
                                                    "Test digit error (%)", "Test comparison error (%)"]


def test_figure_choice(outputs: Path) -> None:
    analyses = [analyse(e) for e in load_results(outputs).experiments]
    target = figure_target(analyses, "resnet/screen:batch_norm=false,channels=8")
    assert target.config == "batch_norm=False, channels=8"
    assert figure_target(analyses, "resnet:channels=8").config == "batch_norm=True, channels=8"  # best match
    with pytest.raises(ReportError, match="no configuration of resnet/screen has channels=3 .it takes 8, 16"):
        figure_target(analyses, "resnet:channels=3")
    with pytest.raises(ReportError, match="no results for 'alexnet'"):
        figure_target(analyses, "alexnet")
    with pytest.raises(ReportError, match="no experiment 'final' for resnet .found: screen"):
        figure_target(analyses, "resnet/final")
    with pytest.raises(ReportError, match="'depth=2' is not OPTION=VALUE with OPTION one of batch_norm, channels"):
        figure_target(analyses, "resnet:depth=2")
