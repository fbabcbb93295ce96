"""Retrain one seed of a committed result set with today's code and compare every epoch with its rows.

A committed result set is only worth its numbers if the current code makes them again. The test
(test_reference.py) checks one LeNet seed; before committing a result set, check one seed of each:
    PYTHONPATH=$PWD:tests .venv/bin/python tests/reference_check.py reference/*/* [reference/best/final@11]

Rows are compared to 2 parts in a million, as tests/test_golden.py does: float32 kernels sum in a different
order on CPUs of different vector widths, which moves a loss in its 7th digit; any real change moves an error
rate by a whole misclassified pair (0.1 point at 1,000 pairs) and a loss by far more.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from train_helpers import metric_differences

from tune_digits import results
from tune_digits.train import TrainConfig, train_once

RELATIVE = 2e-6
METRICS = ("epoch", *results.METRICS)


def committed_history(experiment_dir: Path, seed: int, trial_id: str) -> list[dict]:
    """The committed rows of one (trial, seed), as metric dicts (NaN for empty cells), by epoch."""
    rows = results.read_rows(experiment_dir / results.EPOCHS_CSV)
    mine = [r for r in rows if r["trial_id"] == trial_id and int(r["seed"]) == seed]
    mine.sort(key=lambda r: int(r["epoch"]))
    return [{k: float(r[k]) if r.get(k, "").strip() else float("nan") for k in METRICS} for r in mine]


def retrained_history(experiment_dir: Path, seed: int, trial_id: str) -> list[dict]:
    """Train the trial's recorded configuration for `seed` on 1 thread, as a trial does with 1 CPU."""
    meta = results.read_meta(experiment_dir / results.SEARCH_JSON)
    config = results.trial_config(meta["trials"][trial_id])
    flat = {k: v for k, v in config.items() if k not in results.BOOKKEEPING}
    torch.set_num_threads(1)
    out: list[dict] = []
    train_once(TrainConfig.from_flat({**flat, "seed": seed, "threads": 1}), device=torch.device("cpu"),
               on_epoch=lambda m, _state: out.append({k: float(m.get(k, float("nan"))) for k in METRICS}))
    return out


def trial_of(experiment_dir: Path, seed: int | None = None) -> tuple[str, int]:
    """The trial that trained `seed` (default: the first trial listed in search.json, and its first seed)."""
    meta = results.read_meta(experiment_dir / results.SEARCH_JSON)
    for trial_id, entry in meta["trials"].items():
        config = entry["config"]
        seeds = [int(s) for s in config["seeds"]] if "seeds" in config else [int(config["seed"])]
        if seed is None or seed in seeds:
            return trial_id, seeds[0] if seed is None else seed
    raise ValueError(f"{experiment_dir}: no trial trained seed {seed}")


def check(experiment_dir: Path, seed: int | None = None) -> list[str]:
    trial_id, seed = trial_of(experiment_dir, seed)
    return metric_differences(retrained_history(experiment_dir, seed, trial_id),
                              committed_history(experiment_dir, seed, trial_id), rel=RELATIVE)


if __name__ == "__main__":
    bad = 0
    for arg in sys.argv[1:]:  # FOLDER or FOLDER@SEED
        folder, _, seed = arg.partition("@")
        differences = check(Path(folder), int(seed) if seed else None)
        bad += bool(differences)
        print(f"{folder}: {'reproduced' if not differences else '; '.join(differences[:3])}", flush=True)
    sys.exit(1 if bad else 0)
