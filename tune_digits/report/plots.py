"""The HTML report's plots: each option's effect per network (means with 95 % CIs), and any figure as a PNG
data URI so the page needs no other file. matplotlib is imported only to draw."""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import pandas as pd

from .ablation import slice_at_best
from .analysis import Analysis
from .inference import mean_ci
from .load import value_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def effects(a: Analysis) -> pd.DataFrame:
    """Per option and value (the other options at the best configuration's values): n, mean test comparison
    error at the honest epoch and its 95 % CI; `best` marks the best configuration's value."""
    best = a.configs.iloc[0]
    rows = []
    for ax in a.exp.axes:
        at_best = slice_at_best(a, ax)
        for _, c in sorted(at_best.iterrows(), key=lambda item: value_order(str(item[1][ax]))):
            values = a.values(str(c["config"]), "honest")
            mean, lo, hi = mean_ci(values)
            rows.append({"option": ax, "value": str(c[ax]), "n": len(values), "mean": mean, "ci_low": lo,
                         "ci_high": hi, "best": c[ax] == best[ax]})
    return pd.DataFrame(rows, columns=["option", "value", "n", "mean", "ci_low", "ci_high", "best"])


def draw_effects(data: pd.DataFrame, title: str) -> "Figure":
    """One panel per option: the mean error of each value with its 95 % CI, the best configuration's in colour."""
    from matplotlib.figure import Figure

    options = list(dict.fromkeys(data["option"]))
    fig = Figure(figsize=(2.4 * max(len(options), 2), 2.6), layout="constrained")
    axes = fig.subplots(1, len(options), squeeze=False, sharey=True)[0]
    for ax, option in zip(axes, options):
        part = data[data["option"] == option].reset_index(drop=True)
        x = range(len(part))
        lower = (part["mean"] - part["ci_low"]).fillna(0).clip(lower=0)
        upper = (part["ci_high"] - part["mean"]).fillna(0).clip(lower=0)
        colors = ["C3" if b else "C0" for b in part["best"]]
        for i, row in part.iterrows():
            ax.errorbar([i], [row["mean"]], yerr=[[lower[i]], [upper[i]]], fmt="o", color=colors[i], capsize=3)
        ax.set_xticks(list(x), part["value"].tolist(), fontsize=8)
        ax.set_xlim(-0.5, len(part) - 0.5)
        ax.set_title(option, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test cmp error (%)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def data_uri(fig: Any, dpi: int = 90) -> str:
    """A matplotlib figure as an inline PNG (`data:image/png;base64,…`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
