"""Figure 1: mean ± std curves over one configuration's repetitions. matplotlib is imported only to draw."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from .. import paper, results
from .analysis import Analysis, by_space
from .load import ReportError, fmt_value, value_order
from .stats import grouped_mean_std

if TYPE_CHECKING:  # matplotlib is imported only when drawing
    from matplotlib.figure import Figure

FIGURE_FORMATS = ("png", "pdf", "svg")
METRIC_LABELS = {
    "train_loss": "Training loss",
    "train_error": "Training digit error (%)",
    "test_digit_error": "Test digit error (%)",
    "test_error": "Test comparison error (%)",
}


@dataclass
class FigureTarget:
    analysis: Analysis
    config: str


def figure_target(analyses: Sequence[Analysis], spec: str | None, space: str | None = None) -> FigureTarget:
    """What Figure 1 draws. `spec` is SPACE[/NAME][:OPTION=VALUE,...]; None means ResNet's best (the paper's
    Figure 1), or the selected search space's best."""
    chosen = by_space(analyses)
    if not spec:
        pick = space if space in chosen else paper.BEST_ARCH if paper.BEST_ARCH in chosen else next(iter(chosen))
        a = chosen[pick]
        return FigureTarget(a, a.best)
    head, _, selection = spec.partition(":")
    space_name, _, exp_name = head.partition("/")
    if space_name not in chosen:
        raise ReportError(f"--figure {spec}: no results for '{space_name}' (found: {', '.join(chosen)})")
    if not exp_name:
        return _select(chosen[space_name], selection, spec)
    matches = [a for a in analyses if a.exp.space == space_name and a.exp.name == exp_name]
    if not matches:
        names = sorted(a.exp.name for a in analyses if a.exp.space == space_name)
        raise ReportError(f"--figure {spec}: no experiment '{exp_name}' for {space_name} "
                          f"(found: {', '.join(names)})")
    return _select(matches[0], selection, spec)


def _select(a: Analysis, selection: str, spec: str) -> FigureTarget:
    """The best configuration of `a` that has every OPTION=VALUE of `selection`."""
    configs = a.configs
    for item in filter(None, (s.strip() for s in selection.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in a.exp.axes:
            raise ReportError(f"--figure {spec}: '{item}' is not OPTION=VALUE with OPTION one of "
                              f"{', '.join(a.exp.axes) or '(no grid axes)'}")
        want = fmt_value(value.strip())
        hit = configs[configs[key].astype(str).str.lower() == want.lower()]
        if hit.empty:
            values = ", ".join(sorted(a.configs[key].astype(str).unique(), key=value_order))
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
    for m in results.CURVES:
        out[f"{m}_mean"], out[f"{m}_std"] = grouped_mean_std(g, m)
    return out.reset_index()


def draw_figure(curves: pd.DataFrame, title: str) -> "Figure":
    """Four panels (training loss, training error, test digit error, test comparison error): mean ± std."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    x = curves["epoch"].to_numpy()
    for ax, m in zip(axes, results.CURVES):
        mean, std = curves[f"{m}_mean"].to_numpy(float), curves[f"{m}_std"].fillna(0).to_numpy(float)
        ax.set_title(METRIC_LABELS[m])
        ax.grid(alpha=0.3)
        measured = ~np.isnan(mean)
        if not measured.any():  # e.g. strategies without digit outputs
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        if measured.all():
            ax.plot(x, mean, color="C0", label="mean")
            ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.25, linewidth=0, label="± std")
            continue
        # Some epochs only (a screen's training error, `train_eval: final`): points with error bars, no line.
        ax.errorbar(x[measured], mean[measured], yerr=std[measured], fmt="o", color="C0", capsize=3)
        ax.text(0.5, 0.5, f"measured at epoch {', '.join(str(int(e)) for e in x[measured])} only", ha="center",
                va="center", transform=ax.transAxes, color="0.4")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig


def figure_title(target: FigureTarget) -> str:
    """What Figure 1 shows: the result set, its configuration, and over how many repetitions."""
    a = target.analysis
    config = a.configs[a.configs["config"] == target.config].iloc[0]
    partial = " — PARTIAL repetitions" if config["partial"] else ""
    # A single-configuration experiment has no axes to name it by: show its settings instead.
    what = target.config if a.exp.axes else config["settings"]
    return (textwrap.fill(f"Figure 1 — {a.exp.label}: {what}", 130) + f"\nmean ± std over {config['n']} "
            f"repetitions, {config['pairs']} pairs, {config['epochs']} epochs{partial}")


def write_figure(target: FigureTarget, report_dir: Path, formats: Sequence[str]) -> list[Path]:
    """figure1_<space>.<format> for each format, and the curves drawn as figure1_<space>.csv."""
    a = target.analysis
    curves = figure_curves(target)
    fig = draw_figure(curves, figure_title(target))
    stem = f"figure1_{a.exp.space}"
    paths = []
    for fmt in formats:
        path = report_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=120, format=fmt)
        paths.append(path)
    data_path = report_dir / f"{stem}.csv"
    curves.insert(0, "config", target.config)
    curves.insert(0, "experiment", a.exp.name)
    curves.insert(0, "space", a.exp.space)
    curves.to_csv(data_path, index=False)
    return [*paths, data_path]
