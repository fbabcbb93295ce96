"""The entry points: `run_report` (the `tune-digits report` command), and the small views of one experiment
that `tune-digits search` shows (through the CLI: search itself never imports the report)."""
from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Sequence

from .. import results, storage
from .analysis import analyse
from .html import PAGE, write_html
from .figure import FIGURE_FORMATS, FigureTarget, figure_target, write_figure
from .load import REPORT_DIR, ReportError, load_experiment, load_results
from .race_rounds import write_race_figures
from .ranking import ranking_table
from .render import EXTENSIONS, FORMATS, WIDTH, View, plain, render, render_all
from .table import Table
from .tables import build_tables

TOP = 3  # configurations of each ranking that the printed report shows


def run_report(output_dir: str | Path = "outputs", space: str | None = None, fmt: str = "table",
               compare: str | None = None, figure: str | None = None,
               figure_formats: Sequence[str] = ("png",), out: IO[str] | None = None,
               view: View = View(top=TOP, width=WIDTH, short=True)) -> list[Path]:
    """Print the report of `output_dir`'s results in `fmt` and write each table (as `fmt` and as csv), Figure 1
    and the whole report as one HTML page (report.html, its path printed last) under `output_dir/report/`. `figure`: None = the default figure (none with `compare`),
    "none" = no figure, else SPACE[/NAME][:OPTION=VALUE,...]. What is printed in table or markdown format is
    cut to `view` (the top rows of each ranking, lines that fit its width); the files hold everything.
    Returns the paths written.

    `output_dir` may be a search's --storage: a folder, a file:// URI (read in place) or remote storage
    (s3://, gs://: the tables are read into a temporary folder, the report is written back to URI/report/)."""
    out = sys.stdout if out is None else out
    folder = storage.local_path(output_dir)
    if folder is None:
        return _report_remote(str(output_dir), out, space=space, fmt=fmt, compare=compare, figure=figure,
                              figure_formats=figure_formats, view=view)
    output_dir = folder
    if fmt not in FORMATS:
        raise ReportError(f"unknown format '{fmt}' (choose one of {', '.join(FORMATS)})")
    if fmt == "html" and compare:
        raise ReportError("--format html writes the whole report as one page; --compare prints one table: "
                          "choose another format for it")
    bad = [f for f in figure_formats if f not in FIGURE_FORMATS]
    if bad:
        raise ReportError(f"unknown figure format '{bad[0]}' (choose from {', '.join(FIGURE_FORMATS)})")
    found = load_results(output_dir, space)
    analyses = [analyse(e) for e in found.experiments]
    tables, notes = build_tables(analyses, compare)
    found.notes += notes
    wanted = figure is not None and figure.lower() != "none"
    draw = wanted or (figure is None and not compare)
    target = figure_target(analyses, figure if wanted else None, space) if draw else None
    report_dir = Path(output_dir) / REPORT_DIR
    written = _write(report_dir, tables, fmt, target, figure_formats, races=analyses if draw and not compare else ())
    if compare:  # one table asked for: the whole report's page stays as the last report wrote it
        out.write(render_all(tables, fmt, found, written, view))
        return written
    try:
        page = write_html(report_dir / PAGE, tables, analyses, target)
    except OSError as e:
        raise ReportError(f"{report_dir}: cannot write the report ({e.strerror or e})") from None
    out.write(render_all(tables, fmt, found, written, view, html=page))
    return [*written, page]


def _report_remote(uri: str, out: IO[str], **options) -> list[Path]:
    """The report of results on remote storage, read through a temporary folder; what it prints and raises
    names the storage's files, not the temporary ones."""
    with tempfile.TemporaryDirectory(prefix="tune-digits-report-") as tmp:
        local = io.StringIO()
        try:
            storage.fetch_tables(uri, Path(tmp))
            written = run_report(tmp, out=local, **options)
            storage.upload_folder(Path(tmp) / REPORT_DIR, storage.join(uri, REPORT_DIR))
        except ReportError as err:
            raise ReportError(str(err).replace(tmp, uri.rstrip("/"))) from None
        out.write(local.getvalue().replace(tmp, uri.rstrip("/")))
    return [storage.join(uri, REPORT_DIR, p.name) for p in written]


def _write(report_dir: Path, tables: Sequence[Table], fmt: str, target: FigureTarget | None,
           figure_formats: Sequence[str], races: Sequence = ()) -> list[Path]:
    """Each table as csv (the tidy, stable form) and as `fmt`, then the figure and the figures of the raced
    experiments among `races` (analyses); the paths written."""
    formats = list(dict.fromkeys(figure_formats)) or ["png"]
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for t in tables:
            for f in dict.fromkeys(("csv", fmt if fmt != "html" else "csv")):
                path = report_dir / f"{t.name}.{EXTENSIONS[f]}"
                path.write_text(render(t, f), encoding="utf-8")
                written.append(path)
        if target is not None:
            written += write_figure(target, report_dir, formats)
        written += write_race_figures(races, report_dir, formats)
    except OSError as e:
        raise ReportError(f"{report_dir}: cannot write the report ({e.strerror or e})") from None
    return written


def best_configuration(experiment_dir: str | Path, space: str) -> dict[str, Any] | None:
    """The grid values of an experiment's best configuration (Table I's rank 1), typed as the search
    wrote them in search.json (in today's option names); None when the experiment has no results yet."""
    path = Path(experiment_dir)
    if not (path / results.SEARCH_JSON).is_file():
        return None
    exp = load_experiment(path, space)
    if exp.rows.empty:
        return None
    race = exp.meta.get("race") or {}
    if race.get("winner_config"):  # a raced screen: the race's winner, on the seeds every survivor has
        return {ax: race["winner_config"][ax] for ax in exp.axes}
    a = analyse(exp)
    trial_id = a.reps.loc[a.reps["config"] == a.best, "trial_id"].iloc[0]
    config = results.trial_config(exp.meta.get("trials", {}).get(trial_id)) or {}
    missing = [ax for ax in exp.axes if ax not in config]
    if missing:
        raise ReportError(f"{path / results.SEARCH_JSON}: trial {trial_id} has no value for {', '.join(missing)}")
    return {ax: config[ax] for ax in exp.axes}


def top_configurations(experiment_dir: str | Path, space: str, top: int = 5) -> str:
    """A short ranked table of one experiment (mean ± std over seeds), for the end of a search."""
    exp = load_experiment(Path(experiment_dir), space)
    if exp.rows.empty:
        return "no epoch was reported"
    table = ranking_table(analyse(exp))
    frame = table.display_frame().head(top)
    more = len(table.data) - len(frame)
    return plain(frame) + (f"\n… {more} more configuration(s): tune-digits report {space}" if more > 0 else "")

