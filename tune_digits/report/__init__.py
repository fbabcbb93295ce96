"""`tune-digits report`: the paper's tables and Figure 1 from what `tune-digits search` wrote.

Reads `outputs/<space>/<name>/{search.json, trials/*.csv, epochs.csv}` (schema: outputs/README.md) through
`tune_digits.results`, with pandas — never torch or ray, so it starts fast and runs anywhere. matplotlib is
imported only when a figure is drawn, scipy only when a difference is tested.

Vocabulary used throughout:
- a *search space* is an experiment's first-level folder (`outputs/<space>/`), e.g. `lenet` or `best`;
- a *repetition* is one (configuration, seed): its epochs are one curve;
- a *configuration* is one combination of the experiment's grid axes;
- the two epoch *views* of a repetition: `best_epoch` (the first epoch with the lowest test digit error,
  where the comparison error is read — the paper's rule as its authors' code applies it, optimistic because
  it selects on the test set) and the honest one: `val_epoch` (lowest
  val_error, when the search carved a validation split) or else `final_epoch` (the last epoch).
- statistics are over repetitions: mean and sample std (n − 1); differences come with a 95 % Welch
  confidence interval and a Welch t-test p-value.

Modules: load (folders → rows), analysis (rows → ranked configurations), stats, table (the Table type and
the registry), ranking (Tables I, II), ablation (--compare, Tables III, IV), tables (the registered tables,
in order), figure, render, run (the entry points).
"""
from __future__ import annotations

from .ablation import compare_table
from .analysis import Analysis, analyse, choose_best
from .figure import FIGURE_FORMATS, draw_figure, figure_curves, figure_target
from .load import (OUTPUTS_DIR, REFERENCE_DIR, REPORT_DIR, Experiment, ReportError, Results, default_results_dir,
                   load_results)
from .ranking import best_table, ranking_table
from .render import EXTENSIONS, FORMATS, WIDTH, View, render, render_all
from .run import best_configuration, run_report, top_configurations
from .stats import mean_std, welch
from .table import NotBuilt, Table, register_table, table_names, unregister_table
from .tables import build_tables

__all__ = [
    "FIGURE_FORMATS", "FORMATS", "EXTENSIONS", "OUTPUTS_DIR", "REFERENCE_DIR", "REPORT_DIR", "Analysis",
    "Experiment", "NotBuilt", "ReportError", "Results", "Table", "View", "WIDTH", "analyse", "best_configuration",
    "best_table", "build_tables", "choose_best", "compare_table", "default_results_dir", "draw_figure",
    "figure_curves", "figure_target", "load_results", "mean_std", "ranking_table", "register_table", "render",
    "render_all", "run_report", "table_names", "top_configurations", "unregister_table", "welch",
]
