"""Tables as text: plain table, markdown, csv, latex or json; and what the command prints."""
from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tabulate import tabulate

from .load import Results
from .table import Table

FORMATS = ("table", "markdown", "csv", "latex", "json")
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


def render(t: Table, fmt: str) -> str:
    """One table in one format (the text written to outputs/report/<name>.<ext>)."""
    if fmt == "csv":
        return t.data.to_csv(index=False)
    if fmt == "json":
        return json.dumps(table_json(t), indent=2, allow_nan=False) + "\n"
    if fmt == "markdown":
        return _markdown(t)
    if fmt == "latex":
        return _latex(t)
    notes = "".join(f"  - {n}\n" for n in t.notes)
    return f"{t.title}\n{textwrap.fill(t.rule, width=110)}\n\n{plain(t.display_frame())}\n" + (
        f"\n{notes}" if notes else "")


def _markdown(t: Table) -> str:
    body = tabulate(t.display_frame(), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
    notes = "".join(f"- {n}\n" for n in t.notes)
    return f"### {t.title}\n\n{t.rule}\n\n{body}\n" + (f"\n{notes}" if notes else "")


def _latex(t: Table) -> str:
    frame = t.display_frame()
    head = " & ".join(_tex(h) for h in frame.columns) + r" \\"
    lines = [" & ".join(_tex(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    notes = "".join(f"% {n}\n" for n in t.notes)
    return ("\\begin{table}[ht]\n\\centering\n\\small\n"
            f"\\caption{{{_tex(t.title)}. {_tex(t.rule)}}}\n\\label{{tab:{t.name}}}\n"
            f"\\begin{{tabular}}{{{'l' * len(frame.columns)}}}\n\\toprule\n{head}\n\\midrule\n"
            + "\n".join(lines) + "\n\\bottomrule\n\\end{tabular}\n\\end{table}\n" + notes)


def render_all(tables: Sequence[Table], fmt: str, results: Results, written: Sequence[Path]) -> str:
    """What the command prints: every table, then skipped files and the files written."""
    extra = [f"skipped unreadable file {s}" for s in results.skipped] + results.notes
    if fmt == "json":
        return json.dumps({"tables": [table_json(t) for t in tables], "skipped": results.skipped,
                           "notes": results.notes, "files": [str(p) for p in written]},
                          indent=2, allow_nan=False) + "\n"
    if fmt == "csv":  # one block per table; '#' lines are comments for pandas.read_csv(comment="#")
        blocks = [f"# {t.title}\n# {t.rule}\n{render(t, 'csv')}" for t in tables]
        tail = "".join(f"# {line}\n" for line in extra)
        return "\n".join(blocks) + tail
    out = "\n".join(render(t, fmt) for t in tables)
    if fmt == "latex":
        return out + "".join(f"% {line}\n" for line in extra) + "".join(f"% wrote {p}\n" for p in written)
    bullet = "- " if fmt == "markdown" else "  "
    if extra:
        out += "\n" + "".join(f"{bullet}{line}\n" for line in extra)
    if written:
        out += f"\nWritten to {written[0].parent}: " + ", ".join(p.name for p in written) + "\n"
    return out
