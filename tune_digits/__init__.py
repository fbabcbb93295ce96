"""tune-digits: reproduce and scale out 'Classification, weight sharing, auxiliary losses' with Ray Tune.

The Python API (tune_digits/api.py), imported on first use so that `import tune_digits` loads neither torch,
Ray nor pandas:

    import tune_digits as td
    rows = td.search("lenet", stage="screen")      # run a search; its rows, one per seed and epoch
    rows = td.load_results("reference/lenet")      # any results on disk, as a tidy DataFrame
    tables = td.report_tables("reference")         # the report's tables as DataFrames
"""
from __future__ import annotations

from typing import Any

__all__ = ["load_results", "report_tables", "search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'tune_digits' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
