"""THE epoch loop, over a replica axis: R repetitions of one configuration (R seeds); one seed is R = 1.

Every tensor of the data carries the replica axis first: (R, N, 2, 14, 14) inputs, (R, N) targets,
(R, N, 2) classes. The loop owns what is the same for every engine (engines.py): re-pairing, swaps, batch order,
shifts, rotations and elastic fields, the epoch's metrics, snapshots and resuming; each replica draws them from its
own generator.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, Iterator

import torch

from ..data import PairSet, generate_pair_sets
from .augment import random_affine, random_swap, repair
from .config import ConfigError, TrainConfig, choose_device, prepare_device, shuffle_generator
from .engines import Engine, InTurn, Vectorized

# 2: the replica loop (engine, replica axis on every per-replica entry). 1: before it, three layouts: fit's
# (one model), in turn's (a list of fit's) and vectorized; fit's is upgraded, the others are refused.
SNAPSHOT_FORMAT = 2
State = Callable[[], dict]


def fit(config: TrainConfig, data: PairSet, device: torch.device | str = "cpu",
        on_epoch: Callable[[dict, State], None] | None = None, resume: dict | None = None) -> dict:
    """Train one repetition; returns the last epoch's metrics.

    `on_epoch(metrics, state)` is called after every epoch; `state()` builds a resumable snapshot
    (model, optimiser, RNG) that `fit(..., resume=snapshot)` continues from, bit for bit. The snapshot holds
    live tensors: serialise it (torch.save) before training goes on.
    """
    return _drive(train_epochs(config, data, device, resume), on_epoch)


def train_epochs(config: TrainConfig, data: PairSet, device: torch.device | str = "cpu",
                 resume: dict | None = None) -> Iterator[tuple[dict, State]]:
    """`fit` as a generator: yields (metrics, state) after each epoch. `metrics["time_s"]` counts only this
    repetition's own training and evaluation, not the time spent outside the generator between epochs."""
    for metrics, state in replica_epochs(InTurn, [config], [data], device, resume):
        yield metrics[0], state


def check_replicas(configs: list[TrainConfig]) -> None:
    """Replicas differ by their seed only."""
    if not configs:
        raise ConfigError("no replica to train")
    first = dataclasses.replace(configs[0], seed=0)
    if any(dataclasses.replace(c, seed=0) != first for c in configs[1:]):
        raise ConfigError("replicas must share every setting but the seed")
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"replicas need distinct seeds, got {seeds}")


def fit_replicas(configs: list[TrainConfig], datas: list[PairSet], device: torch.device | str = "cpu",
                 on_epoch: Callable[[list[dict], State], None] | None = None,
                 resume: dict | None = None, vectorize: bool = False) -> list[dict]:
    """Train the repetitions `configs` (one configuration, several seeds) epoch by epoch together.

    `on_epoch(metrics_per_replica, state)` is called once per epoch with one metrics dict per replica, in
    the order of `configs`; each replica's `time_s` is its share of the run's. Two engines (engines.py):
    - in turn (default): each replica's steps run with its own RNG state swapped in, so every replica's
      metrics are bit for bit those of `fit` on its own. Saves the per-trial cost of a search, not compute.
    - `vectorize=True`: the replicas become one batched model (torch.func.vmap over stacked parameters:
      batched matmuls, grouped convolutions), one optimiser step for all. Same data draws, initial weights,
      batch orders and shifts per seed as `fit`; dropout masks come from one shared generator, and float
      summation order differs, so metrics match `fit`'s in distribution, not bit for bit.
    """
    check_replicas(configs)
    if len(datas) != len(configs):
        raise ConfigError(f"{len(configs)} replicas but {len(datas)} data sets")
    if vectorize and configs[0].ensemble > 1:
        raise ConfigError("the vectorized engine cannot train an ensemble inside a trial (ensemble > 1)")
    engine = Vectorized if vectorize else InTurn
    return _drive(replica_epochs(engine, configs, datas, device, resume), on_epoch)


def _drive(epochs: Iterator, on_epoch: Callable | None):
    metrics = None
    for metrics, state in epochs:
        if on_epoch is not None:
            on_epoch(metrics, state)
    return metrics


def replica_epochs(engine_type: type[Engine], configs: list[TrainConfig], datas: list[PairSet],
                   device: torch.device | str = "cpu", resume: dict | None = None
                   ) -> Iterator[tuple[list[dict], State]]:
    """The epoch loop: yields (metrics per replica, state) after each epoch."""
    config, r = configs[0], len(configs)
    device = torch.device(device)
    prepare_device(config, device)
    engine = engine_type(configs, device)
    shuffles = [shuffle_generator(c.seed) for c in configs]
    # The whole (small) data set lives on the device for the run.
    train, val, test = _split_val([torch.stack(t).to(device) for t in zip(*datas)], config.val_fraction)
    start_epoch, elapsed = 1, 0.0
    if resume is not None:
        train, start_epoch, elapsed = _resume(engine, shuffles, train, resume)

    for epoch in range(start_epoch, config.epochs + 1):
        tick = time.perf_counter()
        if config.repair:
            train = _redraw(repair, train, shuffles)
        # Swaps are this epoch's view of the pairs, drawn afresh from the unswapped ones (not state to snapshot).
        seen = _redraw(random_swap, train, shuffles) if config.swap else train
        losses = _train_epoch(engine, seen, shuffles, config)
        # (digit, comparison) error per replica on each split; the comparison error on train is not reported,
        # and with `train_eval: final` the training digits are measured at the final epoch only (NaN before).
        measure_train = config.train_eval == "every" or epoch == config.epochs
        train_err, test_err, val_err = [engine.errors(x, c, y) if x.shape[1] and wanted else [(math.nan, math.nan)] * r
                                        for (x, y, c), wanted in ((train, measure_train), (test, True), (val, True))]
        elapsed += time.perf_counter() - tick
        metrics = [{"epoch": epoch, "train_loss": losses[j], "train_error": train_err[j][0],
                    "test_digit_error": test_err[j][0], "test_error": test_err[j][1],
                    "val_error": val_err[j][1], "val_digit_error": val_err[j][0], "time_s": elapsed / r}
                   for j in range(r)]
        yield metrics, functools.partial(_snapshot, engine, shuffles, epoch, elapsed,
                                         train if config.repair else None)


def _train_epoch(engine: Engine, train, shuffles: list[torch.Generator], config: TrainConfig) -> list[float]:
    """One pass over each replica's training pairs in its own order; the mean loss per replica."""
    x, y, c = train
    r, n = x.shape[:2]
    device = x.device
    rows = torch.arange(r, device=device)[:, None]
    engine.train()
    if config.batch_order == "fixed":  # the drawn order every epoch, as the authors' code
        order = torch.arange(n, device=device).expand(r, n)
    else:
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)  # (R, N)
    total = torch.zeros(r, device=device)
    steps = 0
    for i in range(0, n, config.batch_size):
        idx = order[:, i:i + config.batch_size]  # (R, B): each replica its own batch
        if idx.shape[1] < 2 and n > 1:  # batch norm cannot train on a single pair
            continue
        xb = x[rows, idx]  # (R, B, 2, 14, 14)
        if config.shift or config.rotate or config.elastic:
            xb = torch.stack([random_affine(xb[j], g, config.shift, config.rotate, config.elastic)
                              for j, g in enumerate(shuffles)])
        total += engine.step(xb, c[rows, idx], y[rows, idx])  # no host sync inside the epoch
        steps += 1
    engine.end_epoch()
    return engine.mean_loss(total, steps)


def _split_val(tensors, val_fraction: float):
    """(train x, y, c), (val x, y, c), (test x, y, c): the validation pairs are the train pairs' tail."""
    x, y, c, x_test, y_test, c_test = tensors
    n_val = int(x.shape[-4] * val_fraction)
    cut = x.shape[-4] - n_val
    return (x[..., :cut, :, :, :], y[..., :cut], c[..., :cut, :]), \
        (x[..., cut:, :, :, :], y[..., cut:], c[..., cut:, :]), (x_test, y_test, c_test)


def _redraw(change, train, shuffles: list[torch.Generator]):
    """`change` (repair, random_swap: x, c, generator → x, c, target) applied to each replica's training pairs
    with its own generator: (x, y, c) stacked again."""
    x, _, c = train
    pairs = [change(x[j], c[j], g) for j, g in enumerate(shuffles)]
    x, c, y = (torch.stack(t) for t in zip(*pairs))
    return x, y, c


def _snapshot(engine: Engine, shuffles, epoch: int, elapsed: float, train) -> dict:
    snapshot = {"engine": engine.name, "format": SNAPSHOT_FORMAT, "epoch": epoch, "time_s": elapsed,
                "shuffle_rngs": [g.get_state() for g in shuffles], **engine.state_dict()}
    if train is not None:  # the current pairing is state only when re-pairing changes it
        snapshot.update(train_x=train[0].cpu(), train_y=train[1].cpu(), train_c=train[2].cpu())
    return snapshot


def _resume(engine: Engine, shuffles, train, snapshot: dict):
    """Load a snapshot of the same engine and replica count: (train pairs, first epoch, time so far)."""
    if "engine" not in snapshot and "model" in snapshot:
        snapshot = _upgrade_fit_snapshot(snapshot)
    r = len(shuffles)
    if snapshot.get("engine") != engine.name or len(snapshot.get("shuffle_rngs", ())) != r:
        raise ConfigError(f"the snapshot is not from {engine.label} run of these {r} replica{'s' * (r > 1)}")
    if snapshot.get("format") != SNAPSHOT_FORMAT:
        raise ConfigError(f"the snapshot has format {snapshot.get('format', 1)}, which this version cannot resume "
                          f"(format {SNAPSHOT_FORMAT}); start the run again")
    engine.load_state_dict(snapshot)
    for g, state in zip(shuffles, snapshot["shuffle_rngs"]):
        g.set_state(state)
    if "train_x" in snapshot:  # re-paired pairs are state; otherwise the seed redraws the same data
        device = train[0].device
        train = tuple(snapshot[k].to(device) for k in ("train_x", "train_y", "train_c"))
    return train, snapshot["epoch"] + 1, snapshot["time_s"]


def _upgrade_fit_snapshot(old: dict) -> dict:
    """A format-1 snapshot of `fit` as one in-turn replica: single-seed trials checkpointed before the replica
    loop still resume, bit for bit."""
    new = {"engine": InTurn.name, "format": SNAPSHOT_FORMAT, "epoch": old["epoch"], "time_s": old["time_s"],
           "shuffle_rngs": [old["shuffle_rng"]], "models": [old["model"]], "optimizers": [old["optimizer"]],
           "schedulers": [old["scheduler"]], "rngs": [{"torch_rng": old["torch_rng"], "cuda_rng": old["cuda_rng"]}]}
    new.update({k: old[k][None] for k in ("train_x", "train_y", "train_c") if k in old})  # the replica axis
    return new


def load_data(config: TrainConfig, data_dir=None) -> PairSet:
    return generate_pair_sets(config.pairs, config.seed, data_dir=data_dir, n_test=config.test_pairs,
                              standardise=config.standardise)


def train_once(config: TrainConfig, device=None, on_epoch=None, data_dir=None) -> dict:
    """Draw the data for `config.seed` and fit: the one-call API for scripts and `tune-digits train`."""
    device = device if device is not None else choose_device()
    # Threads first: drawing the pairs on more threads than the run later uses changes float rounding, and so
    # every metric (`--set threads=1` then matches a 1-CPU trial, whose process starts with 1 thread).
    prepare_device(config, torch.device(device))
    return fit(config, load_data(config, data_dir), device, on_epoch=on_epoch)
