"""Tables as text: plain table, markdown, csv, latex or json; and what the command prints.

The files under report/ hold every row and column. What the command prints in table or markdown format is a
`View`: ranked tables cut to their top rows, and optional columns left out until each line fits the width
(the rows and columns left out are named under the table, with the file that has them)."""
from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tabulate import tabulate

from .load import Results
from .table import Table

FORMATS = ("table", "markdown", "csv", "latex", "json", "html")  # html: the page only (report/report.html)
WIDTH = 120  # a terminal's width, in characters, that the printed report fits
EXTENSIONS = {"table": "txt", "markdown": "md", "csv": "csv", "latex": "tex", "json": "json"}
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "−": "-", "…": r"\ldots{}", "<": r"$<$", ">": r"$>$"}


def _clean(v: Any) -> Any:
    """A cell as plain JSON: NaN → null, numpy scalars → Python."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def table_json(t: Table) -> dict[str, Any]:
    return {"name": t.name, "title": t.title, "rule": t.rule, "notes": t.notes,
            "columns": list(t.data.columns),
            "rows": [{k: _clean(v) for k, v in rec.items()} for rec in t.data.to_dict("records")]}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(c, c) for c in str(text))


def plain(frame: Any) -> str:
    """A display frame as a plain-text table (cells already formatted)."""
    return tabulate(frame, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)


@dataclass(frozen=True)
class View:
    """How much of a table is printed: `top` rows of a ranked table (None: all), lines of at most `width`;
    `short`: only the tables of `SHORT_TABLES` (the others are named, and in the files), each one's short rows."""

    top: int | None = None
    width: int | None = None
    short: bool = False


# What a short view prints: the answers, the summary beside the paper, the head of each ranking.
SHORT_TABLES = ("findings", "table2_best", "table1_", "compare_")


FULL = View()


def render(t: Table, fmt: str, view: View = FULL, rule_shown: bool = False) -> str:
    """One table in one format; with the default view, the text written to outputs/report/<name>.<ext>.
    `rule_shown`: a table printed before had the same rule, so only this one's conditions are printed."""
    if fmt == "csv":
        return t.data.to_csv(index=False)
    if fmt == "json":
        return json.dumps(table_json(t), indent=2, allow_nan=False) + "\n"
    if fmt == "latex":
        return _latex(t)
    frame, left_out = _fitted(t, fmt, view)
    if view.short and t.ranked:  # said once for every ranking, before the first one (render_all)
        left_out = [n for n in left_out if n.startswith("'")]
    notes = [*(t.notes if not view.short or t.short_notes is None else t.short_notes), *left_out]
    rule = "" if rule_shown else t.rule
    if fmt == "markdown":
        body = tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        bullets = "".join(f"- {n}\n" for n in notes)
        head = "\n\n".join(x for x in (rule, t.conditions) if x)
        return f"### {t.title}\n\n{head}\n\n{body}\n" + (f"\n{bullets}" if bullets else "")
    wrap = view.width or 110
    lines = "".join(textwrap.fill(n, width=wrap, initial_indent="  - ", subsequent_indent="    ") + "\n"
                    for n in notes)
    head = "".join(textwrap.fill(x, width=wrap) + "\n" for x in (rule, t.conditions) if x)
    if rule_shown and t.conditions and len(f"{t.title}: {t.conditions}") <= wrap:  # one line says all
        return f"{t.title}: {t.conditions}\n{plain(frame)}\n" + (f"\n{lines}" if lines else "")
    return f"{t.title}\n{head}\n{plain(frame)}\n" + (f"\n{lines}" if lines else "")


def _fitted(t: Table, fmt: str, view: View) -> tuple[Any, list[str]]:
    """The display frame cut to the view, and a note for each thing left out."""
    rows = view.top if t.ranked and view.top is not None else None
    frame = t.display_frame(rows, short=view.short)
    left_out = []
    if rows is not None and len(t.data) > rows:
        left_out.append(f"top {rows} of {len(t.data)} shown (--top N, --all); every row: report/{t.name}.csv")
    elif view.short and len(frame) < len(t.data):
        left_out.append(f"{len(frame)} of {len(t.data)} rows shown (--all; every row in report/{t.name}.csv)")
    dropped = []
    for header in t.optional:
        if view.width is None or _width(frame, fmt) <= view.width:
            break
        if header in frame.columns:
            frame = frame.drop(columns=header)
            dropped.append(header)
    if dropped:
        left_out.append(f"columns not shown (in report/{t.name}.csv): {', '.join(dropped)}")
    excess = 0 if view.width is None else _width(frame, fmt) - view.width
    last = frame.columns[-1] if len(frame.columns) and len(frame) else None
    keep = 0 if last is None else max(12, max(len(v) for v in frame[last]) - excess)
    if excess > 0 and last is not None and any(len(v) > keep for v in frame[last]):
        # Still too wide: shorten the last column's longest cells (a command, say).
        frame[last] = [v if len(v) <= keep else v[:keep - 1] + "…" for v in frame[last]]
        left_out.append(f"'{last}' shortened to fit (whole in report/{t.name}.csv)")
    return frame, left_out


def _width(frame: Any, fmt: str) -> int:
    text = tabulate(frame, headers="keys", tablefmt="github" if fmt == "markdown" else "simple", showindex=False,
                    disable_numparse=True)
    return max(len(line) for line in text.splitlines())


def _latex(t: Table) -> str:
    frame = t.display_frame()
    head = " & ".join(_tex(h) for h in frame.columns) + r" \\"
    lines = [" & ".join(_tex(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    notes = "".join(f"% {n}\n" for n in t.notes)
    return ("\\begin{table}[ht]\n\\centering\n\\small\n"
            f"\\caption{{{_tex(t.title)}. {_tex(t.rule)}}}\n\\label{{tab:{t.name}}}\n"
            f"\\begin{{tabular}}{{{'l' * len(frame.columns)}}}\n\\toprule\n{head}\n\\midrule\n"
            + "\n".join(lines) + "\n\\bottomrule\n\\end{tabular}\n\\end{table}\n" + notes)


def render_all(tables: Sequence[Table], fmt: str, results: Results, written: Sequence[Path],
               view: View = FULL, html: Path | None = None) -> str:
    """What the command prints: every table (table and markdown: as `view` shows them), then skipped files,
    notes and the files written; last, the HTML page's path."""
    extra = [f"skipped unreadable file {s}" for s in results.skipped] + results.notes
    if fmt == "json":
        return json.dumps({"tables": [table_json(t) for t in tables], "skipped": results.skipped,
                           "notes": results.notes, "files": [str(p) for p in written],
                           "html": str(html) if html else None}, indent=2, allow_nan=False) + "\n"
    page = f"HTML report: {html}" if html else ""
    if fmt == "html":
        return "".join(f"{line}\n" for line in [*extra, page] if line)
    if fmt == "csv":  # one block per table; '#' lines are comments for pandas.read_csv(comment="#")
        blocks = [f"# {t.title}\n# {t.rule}\n{render(t, 'csv')}" for t in tables]
        tail = "".join(f"# {line}\n" for line in [*extra, page] if line)
        return "\n".join(blocks) + tail
    # A short view leaves out a ranking of one configuration (nothing ranked) unless it has a status to tell.
    printed = [t for t in tables if not view.short or (t.name.startswith(SHORT_TABLES) and
                                                        (not t.ranked or len(t.data) > 1 or t.short_notes))]
    ranked = [i for i, t in enumerate(printed) if t.ranked]
    # A short view states the rankings' shared rule once, before the first, and each one's conditions only.
    preface = ranked[0] if view.short and view.top is not None and ranked else None
    blocks = [render(t, fmt, view, rule_shown=any(u.rule == t.rule for u in printed[:i])
                     or (preface is not None and t.ranked and t.rule == printed[preface].rule))
              for i, t in enumerate(printed)]
    if preface is not None:
        said = (f"Table I, one per ranked experiment: {printed[preface].rule} Shown: the top {view.top} "
                f"(--top N, --all) and the columns that fit; all in report/table1_*.csv.")
        said = said if fmt == "markdown" else textwrap.fill(said, width=view.width or 110)
        blocks[preface] = f"{said}\n\n" + blocks[preface]
    out = "\n".join(blocks)
    rest = [t.title.split(" — ")[0] for t in tables if t not in printed and not t.ranked]
    if rest:
        extra.insert(0, f"Also in report/, and --all: {', '.join(dict.fromkeys(rest))}")
    if fmt == "latex":
        return (out + "".join(f"% {line}\n" for line in extra) + "".join(f"% wrote {p}\n" for p in written)
                + (f"% {page}\n" if page else ""))
    if fmt == "markdown":
        if written:
            extra.append(f"Written to `{written[0].parent}`: " + _files(written, view, "`"))
        if page:
            extra.append(f"HTML report: `{html}`")
        return out + ("\n" + "".join(f"- {line}\n" for line in extra) if extra else "")
    wrap = view.width or 110
    out += "\n" if extra else ""
    # Paths and file names are never split across lines (a hyphen is no place to break a name to paste).
    whole = {"width": wrap, "break_on_hyphens": False, "break_long_words": False}
    for line in extra:
        out += textwrap.fill(line, initial_indent="  ", subsequent_indent="    ", **whole) + "\n"
    if written:
        out += "\n" + textwrap.fill(f"Written to {written[0].parent}: " + _files(written, view),
                                    subsequent_indent="  ", **whole) + "\n"
    return out + (f"{page}\n" if page else "")


def _files(written: Sequence[Path], view: View, quote: str = "") -> str:
    """The files written, by name; a short view counts the tables' files and names the others."""
    if not view.short:
        return ", ".join(f"{quote}{p.name}{quote}" for p in written)
    tables = [p for p in written if not p.name.startswith("figure")]
    others = [p for p in written if p.name.startswith("figure")]
    kinds = ", ".join(dict.fromkeys(f".{p.suffix.lstrip('.')}" for p in tables))
    return (f"{len(tables)} table files ({kinds})"
            + "".join(f", {quote}{p.name}{quote}" for p in others))
