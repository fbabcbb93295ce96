"""Which code and command made each result set: search.json's provenance (tune_digits/provenance.py), one row
per experiment, so a table of numbers always comes with how to make it again."""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from .analysis import Analysis
from .table import Column, Table

ORIGIN_COLUMNS = ["space", "experiment", "command", "version", "git_commit", "git_dirty", "python", "torch", "ray",
                  "driver_cpu", "started", "finished"]


def origin_table(analyses: Sequence[Analysis]) -> Table:
    data = pd.DataFrame([_origin(a) for a in analyses], columns=ORIGIN_COLUMNS)
    rule = ("Per result set, the command that made it (as typed), the code (package version, and the git commit "
            "when run from a checkout; * = uncommitted changes) and when it finished. search.json has the rest: "
            "package versions, the machine, every command that resumed it.")
    display: list[Column] = [
        ("result set", lambda r: f"{r['space']}/{r['experiment']}"),
        ("code", _code), ("finished", lambda r: str(r["finished"] or "—")[:10]),
        ("command", lambda r: str(r["command"] or "—")),  # last: a narrow view shortens it
    ]
    return Table("provenance", "Provenance — the code and command of each result set", rule, data, display)


def _origin(a: Analysis) -> dict[str, Any]:
    meta = a.exp.meta
    code = meta.get("code") if isinstance(meta.get("code"), dict) else {}
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    machine = meta.get("machine") if isinstance(meta.get("machine"), dict) else {}
    return {"space": a.exp.space, "experiment": a.exp.name, "command": meta.get("command"),
            "version": code.get("version", versions.get("tune-digits")), "git_commit": code.get("git_commit"),
            "git_dirty": code.get("git_dirty"), "python": versions.get("python"), "torch": versions.get("torch"),
            "ray": versions.get("ray"), "driver_cpu": machine.get("driver_cpu"), "started": meta.get("started"),
            "finished": meta.get("finished")}


def _code(r: pd.Series) -> str:
    version = r["version"] if isinstance(r["version"], str) else "?"
    if not isinstance(r["git_commit"], str):
        return f"{version} (no commit)"
    return f"{version} {r['git_commit'][:8]}{'*' if r['git_dirty'] is True else ''}"

