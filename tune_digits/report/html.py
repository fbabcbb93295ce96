"""The report as one self-contained HTML page: every table, Figure 1, each network's option effects and each race's
rounds, with CSS and images inline (PNG data URIs), so the file opens anywhere, offline, and can be mailed as it is."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

from .. import paper
from .analysis import Analysis
from .figure import FigureTarget, draw_figure, figure_curves, figure_title
from .plots import data_uri, draw_effects, effects
from .race_rounds import draw_race, race_rounds, race_title
from .table import Table

PAGE = "report.html"
HTML_TOP = 25  # rows of each ranking on the page (the csv files have them all)
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1240px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ccc; }
p.rule { color: #555; font-size: 13px; } ul.notes { color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; max-width: 100%; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f2f2f2; } tr.tie td { background: #eef7ee; } tr.best td { background: #d9f0d9; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
""".strip()


def write_html(path: Path, tables: Sequence[Table], analyses: Sequence[Analysis],
               target: FigureTarget | None) -> Path:
    """The page at `path`: tables in the report's order, then the figures (none when `target` is None: the
    report was asked for no figure)."""
    body = [f"<h1>tune-digits report</h1><p class='rule'>{len(tables)} tables from "
            f"{len(analyses)} result sets. Errors in %. Every table's rows are also in report/&lt;table&gt;.csv.</p>"]
    body += [_table(t) for t in tables]
    body += _figures(analyses, target)
    page = (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>tune-digits report</title>"
            f"<meta name='viewport' content='width=device-width'><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path


def _table(t: Table) -> str:
    rows = HTML_TOP if t.ranked else None
    frame = t.display_frame(rows)
    data = t.data if rows is None else t.data.head(rows)
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in frame.columns)
    lines = []
    for (_, rec), cells in zip(data.iterrows(), frame.itertuples(index=False)):
        cls = "best" if rec.get("best") is True else "tie" if rec.get("tied_with_best") is True else ""
        tds = "".join(f"<td>{html.escape(str(v))}</td>" for v in cells)
        lines.append(f"<tr class='{cls}'>{tds}</tr>" if cls else f"<tr>{tds}</tr>")
    notes = list(t.notes)
    if rows is not None and len(t.data) > rows:
        notes.append(f"top {rows} of {len(t.data)} shown; every row: report/{t.name}.csv")
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    rule = " ".join(html.escape(x) for x in (t.rule, t.conditions) if x)
    return (f"<h2 id='{t.name}'>{html.escape(t.title)}</h2><p class='rule'>{rule}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
            + (f"<ul class='notes'>{items}</ul>" if items else ""))


def _figures(analyses: Sequence[Analysis], target: FigureTarget | None) -> list[str]:
    if target is None:
        return ["<h2>Figures</h2><p class='rule'>Not drawn (--figure none).</p>"]
    title = figure_title(target)
    out = [f"<h2 id='figure1'>Figure 1 — learning curves, mean ± std</h2><p class='rule'>{html.escape(title)}</p>"
           f"<img alt='Figure 1' src='{data_uri(draw_figure(figure_curves(target), title))}'>"]
    screens = [a for a in analyses if a.exp.space in paper.TABLE_II and a.exp.axes and len(a.configs) > 1]
    if screens:
        out.append("<h2 id='effects'>Each option's effect, per network</h2><p class='rule'>Mean test comparison "
                   "error (honest epoch) of each value of an option, the other options at the best "
                   "configuration's values, with its 95% t confidence interval; red: the best configuration's "
                   "value.</p>")
    for a in screens:
        fig = draw_effects(effects(a), f"{a.exp.label}: each option at the best configuration's other values")
        out.append(f"<img alt='Effects {html.escape(a.exp.label)}' src='{data_uri(fig)}'>")
    return out + _races(analyses)


def _races(analyses: Sequence[Analysis]) -> list[str]:
    """Each raced screen's rounds as a picture: who was compared and dropped, and the winner's path."""
    raced = [(a, rounds) for a in analyses if (rounds := race_rounds(a)) is not None and not rounds.empty]
    out = ["<h2 id='races'>The races</h2><p class='rule'>Left: the configurations each round's test compared, "
           "those it dropped in red. Right: each one's mean over the round's seeds, the dropped ones as red ×, "
           "and the path of the configuration the race chose.</p>"] if raced else []
    for a, rounds in raced:
        fig = draw_race(rounds, race_title(a), a.exp.meta.get("metric", "val_error"))
        out.append(f"<img alt='Race {html.escape(a.exp.label)}' src='{data_uri(fig)}'>")
    return out
