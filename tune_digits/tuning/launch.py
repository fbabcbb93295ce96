"""How a plan is run, beside what runs (the SearchPlan): which Ray, what a local one gets, what the driver
prints and records. `tune-digits search`, `tune-digits reproduce`, `td.search` and `reproduce()` each build one
`Launch`; `run_search` and `ray_session` read it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Launch:
    address: str | None = None  # a running Ray cluster to join; None: start a local Ray (or use the running one)
    num_cpus: int | None = None  # the local Ray's CPUs (None: all)
    num_gpus: int | None = None  # the local Ray's GPUs (None: Ray's count)
    connect_timeout: float | None = None  # seconds `address` has to answer (connect.py)
    require_gpu: bool = False  # no GPU for --gpus-per-trial: fail (local) or wait (cluster), not fall back to CPU
    restart: bool = False  # archive an earlier experiment of the same name and start afresh
    verbose: bool = False  # Ray's own output
    progress: bool = True  # the driver's progress line
    data_dir: str | Path | None = None  # the MNIST IDX files to use instead of the embedded copy
    command: str = ""  # what search.json records as the command
    echo: Callable[[str], None] = print  # where notes and the failed trials are said
