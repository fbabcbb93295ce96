"""What the training tests share: metric histories, exact comparison (NaN == NaN) and snapshots taken the way
a trial checkpoint takes them. (tests/ is on sys.path: pytest puts the conftest's folder there.)"""
from __future__ import annotations

import io
import math
from typing import Callable

import torch

from tune_digits.data import generate_pair_sets
from tune_digits.train import TrainConfig, fit, fit_replicas

PAIRS = 60  # small but real: 60 pairs of real MNIST


def small_configs(seeds, **kw) -> list[TrainConfig]:
    """One configuration at `seeds`: LeNet, `PAIRS` pairs, 2 epochs, batches of 10, one thread; `kw` on top."""
    base = {"network": "lenet", "pairs": PAIRS, "epochs": 2, "threads": 1, "batch_size": 10}
    return [TrainConfig(**{**base, **kw}, seed=seed) for seed in seeds]


def small_datas(seeds) -> list:
    return [generate_pair_sets(PAIRS, seed) for seed in seeds]


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def metric_differences(got: list[dict], want: list[dict], rel: float = 0.0) -> list[str]:
    """Where two histories (one metrics dict per epoch) differ by more than `rel` (relative), wall-clock time
    aside; NaN equals NaN."""
    got, want = untimed(got), untimed(want)
    if len(got) != len(want):
        return [f"{len(got)} epochs, expected {len(want)}"]
    found = []
    for g, w in zip(got, want):
        if g.keys() != w.keys():
            found.append(f"epoch {w.get('epoch')}: metrics {sorted(g)}, expected {sorted(w)}")
            continue
        found += [f"epoch {w['epoch']} {k}: {g[k]!r}, expected {w[k]!r}" for k in w
                  if not (abs(g[k] - w[k]) <= rel * abs(w[k]) or (math.isnan(g[k]) and math.isnan(w[k])))]
    return found


def same_metrics(a: list[dict], b: list[dict]) -> bool:
    return not metric_differences(a, b)


def history(cfg, data, **kw) -> list[dict]:
    """`fit`'s metrics, epoch by epoch."""
    rows = []
    fit(cfg, data, "cpu", on_epoch=lambda m, _state: rows.append(m), **kw)
    return rows


def replica_history(cfgs, datas, **kw) -> list[list[dict]]:
    """`fit_replicas`' metrics: per replica, epoch by epoch."""
    per_epoch = []
    fit_replicas(cfgs, datas, "cpu", on_epoch=lambda ms, _state: per_epoch.append(ms), **kw)
    return [list(rows) for rows in zip(*per_epoch)]


def snapshot_after(epoch: int, train: Callable[..., object]) -> dict:
    """Run `train(on_epoch=...)` (fit or fit_replicas) and return its state after `epoch`, serialised at once
    as a trial checkpoint is: state() refers to live tensors."""
    saved = {}

    def checkpoint(metrics, state):
        first = metrics[0] if isinstance(metrics, list) else metrics
        if first["epoch"] == epoch:
            buffer = io.BytesIO()
            torch.save(state(), buffer)
            saved["bytes"] = buffer.getvalue()

    train(on_epoch=checkpoint)
    return torch.load(io.BytesIO(saved["bytes"]), weights_only=False)
