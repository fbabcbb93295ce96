"""Retrain one seed of a committed result set with today's code and compare it with the set's rows.

A committed result set is only worth its numbers if the current code makes them again. What can be promised
depends on the CPU (search.json's `machine.hardware`, tune_digits/provenance.py):
- **bit for bit** on a CPU like the one that made the set (vendor, family, model where recorded, instruction
  sets, no setting capping them): every metric of every epoch to 2 parts in a million, as
  tests/test_golden.py allows;
- **the same distribution** on another CPU. Its float32 kernels (torch's for its vector width, oneDNN's and
  MKL's for its instruction sets and caches) add in another order; the 1e-7 differences that makes grow,
  epoch by epoch, into another run from the same distribution (measured here: an AVX2-only AMD EPYC retraining
  sets made on an AVX-512 one, every set diverges somewhere in epochs 1–6). No setting removes that
  (`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA` and `MKL_CBWR` were tried: a vector width the CPU lacks cannot
  be chosen, and the same width on another vendor still diverges). Then the retrained run must start as the
  committed one did (epoch 1's training loss within START_RELATIVE of it) and end inside the set's spread: its
  final-epoch test error within the 99.9 % prediction interval of the configuration's committed seeds.
Any real change moves an error rate by whole misclassified pairs and the first epoch's loss by far more.

Check one seed of each set before committing it, and on a new machine:
    PYTHONPATH=$PWD:tests .venv/bin/python tests/reference_check.py reference/*/* [reference/best/final@11]
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from train_helpers import metric_differences

from tune_digits import provenance, results

RELATIVE = 2e-6
# Epoch 1's training loss on another CPU, by precision. Measured against the AVX-512 EPYC that made the sets: on an
# AVX2 EPYC at most 6.1e-4 in float32 (the Linear net), 1.8e-3 under bf16 autocast (LeNet); on an AVX-512/AMX Xeon
# 3.1e-3 in float32 (reference/authors_lenet/final seed 10: lr 0.1 and batches of 5, 200 SGD steps in its first
# epoch; every other set within 2e-3). A 10 % lower learning rate moves a LeNet's by 4.8e-3 and momentum 0.85 for
# 0.9 by 5.2e-3 (caught); weight decay off (4.8e-4) or a constant schedule (9.7e-5) change epoch 1 less than another
# CPU does, and only the bit-for-bit tier sees them.
START_RELATIVE = {"fp32": 4e-3, "bf16": 5e-3}
COVERAGE = 0.999  # of the prediction interval for a new seed's final test error
METRICS = ("epoch", *results.METRICS)


@dataclass(frozen=True)
class Verdict:
    folder: str
    seed: int
    exact: bool  # compared bit for bit (bit_for_bit), else for the same distribution
    problems: tuple[str, ...]

    def line(self) -> str:
        how = "bit for bit" if self.exact else "same distribution"
        state = "reproduced" if not self.problems else "NOT reproduced: " + "; ".join(self.problems[:3])
        return f"{self.folder} seed {self.seed}: {state} [{how}]"


def committed_history(experiment_dir: Path, seed: int, trial_id: str) -> list[dict]:
    """The committed rows of one (trial, seed), as metric dicts (NaN for empty cells), by epoch."""
    rows = results.read_rows(experiment_dir / results.EPOCHS_CSV)
    mine = [r for r in rows if r["trial_id"] == trial_id and int(r["seed"]) == seed]
    mine.sort(key=lambda r: int(r["epoch"]))
    return [_metrics(r) for r in mine]


def retrained_history(experiment_dir: Path, seed: int, trial_id: str) -> list[dict]:
    """Train the trial's recorded configuration for `seed` on 1 thread, as a trial does with 1 CPU."""
    import torch

    from tune_digits.train import TrainConfig, train_once

    config = _trial_config(experiment_dir, trial_id)
    torch.set_num_threads(1)
    out: list[dict] = []
    train_once(TrainConfig.from_flat({**config, "seed": seed, "threads": 1}), device=torch.device("cpu"),
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


def bit_for_bit(experiment_dir: Path) -> bool:
    """Whether a one-seed retraining here must give the set's rows bit for bit: this CPU is the one the set
    records, and the set trained its seeds one by one (a vectorized set's batched seeds match a one-seed run
    in distribution only: README, --vectorize)."""
    meta = results.read_meta(experiment_dir / results.SEARCH_JSON)
    machine = meta.get("machine") if isinstance(meta.get("machine"), dict) else {}
    return provenance.same_hardware(machine.get("hardware"), provenance.hardware()) and not meta.get("vectorize")


def final_errors(experiment_dir: Path, trial_id: str) -> list[float]:
    """The final-epoch test error of every committed seed of the trial's configuration (its sibling trials
    hold the configuration's other seeds)."""
    config = _trial_config(experiment_dir, trial_id)
    meta = results.read_meta(experiment_dir / results.SEARCH_JSON)
    siblings = {t for t in meta["trials"] if _trial_config(experiment_dir, t, meta) == config}
    last = int(config["epochs"])
    return [_metrics(r)["test_error"] for r in results.read_rows(experiment_dir / results.EPOCHS_CSV)
            if r["trial_id"] in siblings and int(r["epoch"]) == last]


def distribution_problems(got: list[dict], want: list[dict], finals: list[float],
                          start_relative: float = START_RELATIVE["fp32"], test_pairs: int = 1000) -> list[str]:
    """What makes a run retrained on another CPU not a draw from the committed set's distribution: another
    number of epochs, another start (epoch 1's training loss), or a final test error outside the prediction
    interval of the committed seeds' (`finals`, measured on `test_pairs` pairs). A NaN final is in the
    distribution where a committed seed diverged too (e.g. reference/authors_alexnet)."""
    if len(got) != len(want):
        return [f"{len(got)} epochs, expected {len(want)}"]
    problems = []
    start, expected = got[0]["train_loss"], want[0]["train_loss"]
    if not abs(start - expected) <= start_relative * abs(expected):
        problems.append(f"epoch 1 train_loss {start:.6g}, expected {expected:.6g} (± {start_relative:.1%})")
    final = got[-1]["test_error"]
    low, high = prediction_interval([f for f in finals if not math.isnan(f)], floor=error_noise(finals, test_pairs))
    if math.isnan(final):
        if not any(math.isnan(f) for f in finals):
            problems.append("final test_error is NaN; no committed seed diverged")
    elif not low <= final <= high:
        problems.append(f"final test_error {final:.3f} outside [{low:.3f}, {high:.3f}], the {COVERAGE:.1%} "
                        f"prediction interval of its {len(finals)} committed seeds")
    return problems


def error_noise(finals: list[float], test_pairs: int) -> float:
    """The standard deviation, in points, of an error rate like the finals' measured on `test_pairs` pairs
    (binomial): the least spread a seed's error can have. Two committed seeds that both end at 2.600 % say
    nothing about where a third lands (reference/quick/alexnet/final: the third ended at 2.800)."""
    rates = [f / 100 for f in finals if not math.isnan(f)]
    if not rates:
        return 0.0
    p = sum(rates) / len(rates)
    return 100 * math.sqrt(p * (1 - p) / test_pairs)


def prediction_interval(values: list[float], coverage: float = COVERAGE, floor: float = 0.0) -> tuple[float, float]:
    """Where a new draw from the normal distribution the values come from falls with probability `coverage`:
    mean ± t(n−1) · s · √(1 + 1/n), s at least `floor`. Unbounded below 2 values."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return -math.inf, math.inf
    mean = sum(values) / n
    s = max(floor, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)))
    half = stats.t.ppf(0.5 + coverage / 2, n - 1) * s * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def check(experiment_dir: Path, seed: int | None = None) -> Verdict:
    trial_id, seed = trial_of(experiment_dir, seed)
    got, want = retrained_history(experiment_dir, seed, trial_id), committed_history(experiment_dir, seed, trial_id)
    exact = bit_for_bit(experiment_dir)
    config = _trial_config(experiment_dir, trial_id)
    problems = metric_differences(got, want, rel=RELATIVE) if exact \
        else distribution_problems(got, want, final_errors(experiment_dir, trial_id),
                                   START_RELATIVE[config.get("precision", "fp32")], int(config.get("test_pairs", 1000)))
    return Verdict(str(experiment_dir), seed, exact, tuple(problems))


def _trial_config(experiment_dir: Path, trial_id: str, meta: dict | None = None) -> dict:
    meta = meta or results.read_meta(experiment_dir / results.SEARCH_JSON)
    config = results.trial_config(meta["trials"][trial_id])
    return {k: v for k, v in config.items() if k not in results.BOOKKEEPING}


def _metrics(row: dict) -> dict:
    return {k: float(row[k]) if row.get(k, "").strip() else float("nan") for k in METRICS}


if __name__ == "__main__":
    bad = 0
    for arg in sys.argv[1:]:  # FOLDER or FOLDER@SEED
        folder, _, seed = arg.partition("@")
        verdict = check(Path(folder), int(seed) if seed else None)
        bad += bool(verdict.problems)
        print(verdict.line(), flush=True)
    sys.exit(1 if bad else 0)
