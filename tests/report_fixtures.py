"""Small synthetic result sets with known values for the report's tests, written through `results` (the
format's owner) as `tune-digits search` writes them — no training, no Ray."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from scipy import stats

from tune_digits import results
from tune_digits.report.racing import Race

EPOCH_SHAPE = {1: 2.0, 2: 0.0, 3: 1.0}  # offset of test_error per epoch: epoch 2 is the best, 3 the final


def metrics(base: float, scale: float) -> Callable[[int, int], dict[str, float]]:
    """test_error = base + scale·seed + EPOCH_SHAPE[epoch]: over seeds 0, 1, 2 the mean at the best epoch is
    base + scale and the sample std is scale exactly."""
    def at(seed: int, epoch: int) -> dict[str, float]:
        test = base + scale * seed + EPOCH_SHAPE.get(epoch, 1.0)
        return {"train_loss": 1.0 / epoch, "train_error": 10.0 - 3 * epoch + seed,
                "test_digit_error": 1.5 * test, "test_error": test}
    return at


def write_experiment(root: Path, space: str, name: str, configs: list[tuple[dict[str, Any], Callable]],
                     axes: list[str], seeds: tuple[int, ...] = (0, 1, 2), epochs: int = 3,
                     stage: str | None = None, fixed: dict[str, Any] | None = None,
                     short: dict[tuple[int, int], int] | None = None,
                     val: Callable[[int, int], float] | None = None,
                     val_digit: Callable[[int, int, int], float] | None = None) -> Path:
    """One experiment folder as `tune-digits search` writes it. `short[(config index, seed)] = k` stops that
    repetition after k epochs (status RUNNING)."""
    path = root / space / name
    (path / results.TRIALS_DIR).mkdir(parents=True)
    fixed = {"lr": 0.05, "batch_size": 50, "epochs": epochs, "pairs": 350, **(fixed or {})}
    trials = {}
    for i, (config, fn) in enumerate(configs):
        for seed in seeds:
            trial_id = f"t{i:02d}_{seed}"
            last = (short or {}).get((i, seed), epochs)
            rows = [results.make_row(trial_id, seed, {
                "epoch": epoch, **fn(seed, epoch), "time_s": 0.5 * epoch,
                "val_error": val(seed, epoch) if val else math.nan,
                "val_digit_error": val_digit(i, seed, epoch) if val_digit else math.nan,
            }, {"network": space, **fixed, **config}) for epoch in range(1, last + 1)]
            results.write_csv(path / results.TRIALS_DIR / f"{trial_id}.csv", rows[0], rows)
            trials[trial_id] = {"status": "TERMINATED" if last == epochs else "RUNNING",
                                "config": {**fixed, **config, "seed": seed}, "error": None}
    results.write_meta(path, results.new_meta(
        space=space, network=space, name=name, stage=stage or name, space_file=f"search_spaces/{space}.yaml",
        axes=axes, fixed=fixed, seeds=list(seeds), num_trials=len(trials), trials=trials,
        started="2026-11-26T21:00:00Z", finished="2026-11-26T21:10:00Z"))
    return path


# A raced screen (report/race_rounds.py): 8 configurations (lr), 5 seeds: two near the best, six far behind;
# seed s is harder for all by 0.5 points.
RACED_LRS = [0.1, 0.09, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002]
RACED_MEANS = np.array([10.0, 10.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0])
RACED_NOISE = np.random.default_rng(7).normal(scale=0.4, size=(8, 5))
RACED_VALUES = RACED_MEANS[:, None] + RACED_NOISE + 0.5 * np.arange(5)[None, :]


def raced_experiment(root: Path, name: str = "screen", values: np.ndarray = RACED_VALUES):
    """The experiment folder a race over `values` (configuration × seed) leaves: the runs it handed out, its
    search.json `race`."""
    race = Race(configs=8, max_seeds=5, first=2)
    while (run := race.next_run()) is not None:
        race.record(*run, float(values[run]))
    val = lambda config: lambda seed, epoch: float(values[config, seed])  # noqa: E731
    path = write_experiment(root, "linear", name, [({"lr": lr}, lambda s, e: {"test_error": 5.0}) for lr in RACED_LRS],
                            ["lr"], seeds=tuple(range(5)), epochs=2, stage="screen")
    meta = results.read_meta(path / results.SEARCH_JSON)
    for i in range(8):
        for seed in range(5):
            trial = path / results.TRIALS_DIR / f"t{i:02d}_{seed}.csv"
            if seed >= race.handed.get(i, 0):  # never handed out: no rows
                trial.unlink()
                del meta["trials"][f"t{i:02d}_{seed}"]
                continue
            rows = list(results.read_rows(trial, default_trial=trial.stem))
            for row in rows:
                row["val_error"] = str(val(i)(seed, int(row["epoch"])))
            results.write_csv(trial, rows[0], rows)
    meta.update(search="race", metric="val_error", race=race.summary([{"lr": lr} for lr in RACED_LRS],
                                                                       {"first": 2, "alpha": 0.05, "budget": None}))
    results.write_meta(path, meta)
    return path, race


def to_version1(path: Path) -> None:
    """Rewrite an experiment folder in the format's version-1 names (search.json and every row file)."""
    old = {new: name for name, new in results.CONFIG_RENAMES.items()}

    def rename(config: dict[str, Any]) -> dict[str, Any]:
        return {old.get(k, k): v for k, v in config.items()}

    meta = json.loads((path / results.SEARCH_JSON).read_text())
    del meta["format_version"]
    meta["arch"] = meta.pop("space")
    meta["axes"] = [old.get(a, a) for a in meta["axes"]]
    meta["fixed"] = rename(meta["fixed"])
    for trial in meta["trials"].values():
        trial["config"] = rename(trial["config"])
    (path / results.SEARCH_JSON).write_text(json.dumps(meta))
    for f in (path / results.TRIALS_DIR).glob("*.csv"):
        with f.open(newline="") as fh:
            lines = list(csv.reader(fh))
        with f.open("w", newline="") as fh:
            csv.writer(fh).writerows([[old.get(h, h) for h in lines[0]], *lines[1:]])


# The ResNet screen: honest (final-epoch) means 3.5, 5, 6, 9 with stds 0.5, 1, 1, 2.
RESNET = [
    ({"batch_norm": True, "channels": 16}, metrics(2.0, 0.5)),
    ({"batch_norm": True, "channels": 8}, metrics(3.0, 1.0)),
    ({"batch_norm": False, "channels": 16}, metrics(4.0, 1.0)),
    ({"batch_norm": False, "channels": 8}, metrics(6.0, 2.0)),
]


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    write_experiment(root, "resnet", "screen", RESNET, ["batch_norm", "channels"])
    return root


def hand_welch(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Welch's t-test from its textbook formulas (not through scipy's ttest_ind)."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    return ma - mb, ma - mb - half, ma - mb + half, 2 * stats.t.sf(abs(t), df)


def run_cli(*args: str) -> Any:
    """`tune-digits ARGS` through click's runner (stdout and stderr apart)."""
    from click.testing import CliRunner

    from tune_digits.cli import main

    return CliRunner().invoke(main, list(args))
