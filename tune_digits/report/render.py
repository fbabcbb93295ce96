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

FORMATS = ("table", "markdown", "csv", "latex", "json")
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
    """How much of a table is printed: `top` rows of a ranked table (None: all), lines of at most `width`."""

    top: int | None = None
    width: int | None = None


FULL = View()


def render(t: Table, fmt: str, view: View = FULL) -> str:
    """One table in one format; with the default view, the text written to outputs/report/<name>.<ext>."""
    if fmt == "csv":
        return t.data.to_csv(index=False)
    if fmt == "json":
        return json.dumps(table_json(t), indent=2, allow_nan=False) + "\n"
    if fmt == "latex":
        return _latex(t)
    frame, left_out = _fitted(t, fmt, view)
    notes = [*t.notes, *left_out]
    if fmt == "markdown":
        body = tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        bullets = "".join(f"- {n}\n" for n in notes)
        return f"### {t.title}\n\n{t.rule}\n\n{body}\n" + (f"\n{bullets}" if bullets else "")
    wrap = view.width or 110
    lines = "".join(textwrap.fill(n, width=wrap, initial_indent="  - ", subsequent_indent="    ") + "\n"
                    for n in notes)
    return f"{t.title}\n{textwrap.fill(t.rule, width=min(wrap, 110))}\n\n{plain(frame)}\n" + (
        f"\n{lines}" if lines else "")


def _fitted(t: Table, fmt: str, view: View) -> tuple[Any, list[str]]:
    """The display frame cut to the view, and a note for each thing left out."""
    rows = view.top if t.ranked and view.top is not None else None
    frame = t.display_frame(rows)
    left_out = []
    if rows is not None and len(t.data) > rows:
        left_out.append(f"top {rows} of {len(t.data)} shown (--top N, --all); every row: report/{t.name}.csv")
    dropped = []
    for header in t.optional:
        if view.width is None or _width(frame, fmt) <= view.width:
            break
        if header in frame.columns:
            frame = frame.drop(columns=header)
            dropped.append(header)
    if dropped:
        left_out.append(f"not shown to fit {view.width} columns: {', '.join(dropped)} (in report/{t.name}.csv)")
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
               view: View = FULL) -> str:
    """What the command prints: every table (table and markdown: as `view` shows them), then skipped files,
    notes and the files written."""
    extra = [f"skipped unreadable file {s}" for s in results.skipped] + results.notes
    if fmt == "json":
        return json.dumps({"tables": [table_json(t) for t in tables], "skipped": results.skipped,
                           "notes": results.notes, "files": [str(p) for p in written]},
                          indent=2, allow_nan=False) + "\n"
    if fmt == "csv":  # one block per table; '#' lines are comments for pandas.read_csv(comment="#")
        blocks = [f"# {t.title}\n# {t.rule}\n{render(t, 'csv')}" for t in tables]
        tail = "".join(f"# {line}\n" for line in extra)
        return "\n".join(blocks) + tail
    out = "\n".join(render(t, fmt, view) for t in tables)
    if fmt == "latex":
        return out + "".join(f"% {line}\n" for line in extra) + "".join(f"% wrote {p}\n" for p in written)
    if fmt == "markdown":
        if written:
            extra.append(f"Written to `{written[0].parent}`: " + ", ".join(f"`{p.name}`" for p in written))
        return out + ("\n" + "".join(f"- {line}\n" for line in extra) if extra else "")
    wrap = view.width or 110
    out += "\n" if extra else ""
    # Paths and file names are never split across lines (a hyphen is no place to break a name to paste).
    whole = {"width": wrap, "break_on_hyphens": False, "break_long_words": False}
    for line in extra:
        out += textwrap.fill(line, initial_indent="  ", subsequent_indent="    ", **whole) + "\n"
    if written:
        out += "\n" + textwrap.fill(f"Written to {written[0].parent}: " + ", ".join(p.name for p in written),
                                    subsequent_indent="  ", **whole) + "\n"
    return out
