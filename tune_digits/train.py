"""Seeding, device choice and the epoch loop. Pure PyTorch: nothing here knows about Ray.

`fit(config, data, device, on_epoch=callback)` trains one repetition and hands the metrics of SPEC §3
to `on_epoch` after every epoch; tests, benchmarks, `tune-digits train` and the Ray trainable all call it.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .data import PairSet, compare_target, generate_pair_sets
from .models import create_model, list_models, model_options, train_defaults

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
METRICS = ("train_loss", "train_error", "test_digit_error", "test_error", "val_error", "val_digit_error")


class ConfigError(UserError, ValueError):
    """An impossible or unknown configuration value; the message is one line for the user."""


@dataclass
class TrainConfig:
    """Everything one repetition needs. `options` holds the model's own options (see `tune-digits models`)."""

    arch: str = "lenet"
    pairs: int = 1000  # train pairs; test pairs too unless test_pairs is set (SPEC §2)
    test_pairs: int | None = None
    epochs: int = 25
    seed: int = 0  # fixes the pairs drawn, the initial weights and the batch order
    # None below means the network's default (`train_defaults`: models/registry.py):
    # the paper's SGD for the CNNs, Adam for the linear net; values chosen in benchmarks/quality.py.
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9  # SGD only
    weight_decay: float | None = None
    batch_size: int | None = None  # in pairs, i.e. twice as many digits per step
    lr_schedule: str = "cosine"  # a decayed lr makes the final epoch a stable, honest pick
    aux_loss_weight: float = 0.3  # weight of LeNet's side-classifier loss (GoogLeNet used 0.3)
    aux_weight: float = 0.0  # weight of the digit loss for the `pair` and `two_channel` strategies
    repair: bool = False  # re-pair the training digits at random every epoch (targets recomputed)
    shift: float = 0.0  # augmentation: random translation of each training digit, up to this many pixels
    val_fraction: float = 0.0  # share of the train pairs held out for model selection
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.arch not in list_models():
            raise ConfigError(f"unknown network '{self.arch}'; known: {', '.join(list_models())}")
        for name, value in vars(self).items():
            expected = _FIELD_TYPES.get(name)
            if value is not None and expected and not (isinstance(value, expected) and
                                                       (expected is bool or not isinstance(value, bool))):
                kind = "a number" if isinstance(expected, tuple) else _TYPE_WORDS[expected]
                raise ConfigError(f"{name} must be {kind}, got {value!r}")
        defaults = train_defaults(self.arch)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        known = model_options(self.arch)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(f"unknown option {', '.join(unknown)} for {self.arch}; "
                              f"known: {', '.join(sorted(set(known) | set(_FIELDS)))}")
        checks = [
            (self.pairs >= 2, "pairs must be at least 2"),
            (self.test_pairs is None or self.test_pairs >= 1, "test_pairs must be positive"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {list(OPTIMIZERS)}"),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {list(SCHEDULES)}"),
            (self.lr > 0, "lr must be positive"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.aux_loss_weight >= 0 and self.aux_weight >= 0, "auxiliary loss weights must be >= 0"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (0 <= self.shift <= 4, "shift must be between 0 and 4 pixels"),
            (self.threads is None or self.threads >= 1, "threads must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        # Build the model on the meta device (no memory, no compute) so bad model options fail here,
        # before any data or Ray work starts.
        try:
            with torch.device("meta"):
                create_model(self.arch, **self.options)
        except UserError as err:  # one exception type for every config mistake
            raise ConfigError(str(err)) from None
        if self.val_fraction and int(self.pairs * self.val_fraction) < 1:
            raise ConfigError(f"val_fraction {self.val_fraction} of {self.pairs} pairs holds out no pair")

    @classmethod
    def from_flat(cls, flat: dict) -> "TrainConfig":
        """Rebuild from the flat dict used at the Ray boundary: training fields plus model options."""
        flat = dict(flat)
        train = {k: flat.pop(k) for k in list(flat) if k in _FIELDS}
        return cls(**train, options=flat)

    def to_flat(self) -> dict:
        flat = dataclasses.asdict(self)
        return {**flat.pop("options"), **flat}

    def model_kwargs(self) -> dict:
        return dict(self.options)


_TYPE_WORDS = {int: "an integer", bool: "true or false", str: "a string", dict: "a mapping"}
_FIELD_TYPES = {
    **dict.fromkeys(("pairs", "test_pairs", "epochs", "seed", "batch_size", "threads"), int),
    **dict.fromkeys(("lr", "momentum", "weight_decay", "aux_loss_weight", "aux_weight", "val_fraction", "shift"),
                    (int, float)),
    **dict.fromkeys(("arch", "optimizer", "lr_schedule"), str), "repair": bool, "options": dict,
}
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"options"}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch in one place at the start of each repetition."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_device(gpu: bool | None = None) -> torch.device:
    """CUDA when available (or asked); chosen once and passed down."""
    if gpu is None:
        gpu = torch.cuda.is_available()
    if gpu and not torch.cuda.is_available():
        raise ConfigError("a GPU was asked for but torch sees none (torch.cuda.is_available() is False)")
    return torch.device("cuda" if gpu else "cpu")


def load_data(config: TrainConfig, data_dir=None) -> PairSet:
    return generate_pair_sets(config.pairs, config.seed, data_dir=data_dir, n_test=config.test_pairs)


@torch.inference_mode()  # no autograd bookkeeping at all (a little cheaper than no_grad)
def evaluate(model, inputs, classes, target, chunk: int = 1000) -> tuple[float, float]:
    """(digit error %, comparison error %) in eval mode; digit error is NaN without digit outputs."""
    model.eval()
    digit_wrong = compare_wrong = 0
    has_digits = True
    for i in range(0, len(inputs), chunk):
        out = model(inputs[i:i + chunk])
        compare_wrong += (model.predict(out) != target[i:i + chunk]).sum()
        if out.digits is None:
            has_digits = False
        else:
            digit_wrong += (out.digits.argmax(-1) != classes[i:i + chunk]).sum()
    n = len(inputs)
    digit = 100.0 * float(digit_wrong) / (2 * n) if has_digits else math.nan
    return digit, 100.0 * float(compare_wrong) / n


def random_shift(x: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each digit of (B, 2, 14, 14) independently by up to `pixels` (bilinear, zero padding
    in standardised units is the background's value, so borders stay background-like)."""
    b = x.shape[0]
    digits = x.reshape(2 * b, 1, 14, 14)
    offsets = (torch.rand(2 * b, 2, generator=generator) * 2 - 1) * (2 * pixels / 14)  # in [-1, 1] grid units
    theta = torch.zeros(2 * b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = offsets
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(digits.shape), align_corners=False)
    background = x.min()
    shifted = F.grid_sample(digits - background, grid, padding_mode="zeros", align_corners=False) + background
    return shifted.reshape(b, 2, 14, 14)


def _loss(out, classes, target, config: TrainConfig) -> torch.Tensor:
    digit_loss = F.cross_entropy(out.digits.reshape(-1, 10), classes.reshape(-1)) if out.digits is not None else 0
    if out.compare is not None:
        loss = F.binary_cross_entropy_with_logits(out.compare, target.float()) + config.aux_weight * digit_loss
    else:
        loss = digit_loss
    if out.side is not None and config.aux_loss_weight:
        loss = loss + config.aux_loss_weight * F.cross_entropy(out.side.reshape(-1, 10), classes.reshape(-1))
    return loss


def build_optimizer(parameters, config: TrainConfig):
    parameters = list(parameters)
    if config.optimizer == "adam":
        opt = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs) \
        if config.lr_schedule == "cosine" else None
    return opt, sched


def fit(config: TrainConfig, data: PairSet, device: torch.device | str = "cpu",
        on_epoch: Callable[[dict, Callable[[], dict]], None] | None = None,
        resume: dict | None = None) -> dict:
    """Train one repetition; returns the last epoch's metrics.

    `on_epoch(metrics, state)` is called after every epoch; `state()` builds a resumable snapshot
    (model, optimiser, RNG) that `fit(..., resume=snapshot)` continues from, bit for bit. The snapshot holds
    live tensors: serialise it (torch.save) before training goes on.
    """
    metrics: dict = {}
    for metrics, state in train_epochs(config, data, device, resume):
        if on_epoch is not None:
            on_epoch(metrics, state)
    return metrics


def _shuffle_generator(seed: int) -> torch.Generator:
    """A separate generator for batch order, shifts and re-pairing keeps data order independent of dropout."""
    return torch.Generator().manual_seed(seed + 1_000_003)


def _prepare_device(config: TrainConfig, device: torch.device) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        # Same seed, same metrics on a GPU too: no autotuned (run-to-run varying) conv algorithms.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _split_val(tensors, val_fraction: float):
    """(train x, y, c), (val x, y, c), (test x, y, c): the validation pairs are the train pairs' tail."""
    x, y, c, x_test, y_test, c_test = tensors
    n_val = int(x.shape[-4] * val_fraction)
    cut = x.shape[-4] - n_val
    return (x[..., :cut, :, :, :], y[..., :cut], c[..., :cut, :]), \
        (x[..., cut:, :, :, :], y[..., cut:], c[..., cut:, :]), (x_test, y_test, c_test)


def _repair(x, c, generator: torch.Generator):
    """New partners for the training digits, targets recomputed (ties stay 1)."""
    n = len(x)
    perm = torch.randperm(2 * n, generator=generator).to(x.device)
    x = x.reshape(2 * n, 14, 14)[perm].reshape(n, 2, 14, 14)
    c = c.reshape(2 * n)[perm].reshape(n, 2)
    return x, c, compare_target(c)


def _epoch_metrics(epoch, train_loss, train_digit, test, val, time_s) -> dict:
    return {"epoch": epoch, "train_loss": train_loss, "train_error": train_digit, "test_digit_error": test[0],
            "test_error": test[1], "val_error": val[1], "val_digit_error": val[0], "time_s": time_s}


def train_epochs(config: TrainConfig, data: PairSet, device: torch.device | str = "cpu",
                 resume: dict | None = None):
    """`fit` as a generator: yields (metrics, state) after each epoch, so that callers can interleave
    several repetitions (see `fit_replicas`). `metrics["time_s"]` counts only this repetition's own
    training and evaluation, not the time spent outside the generator between epochs."""
    device = torch.device(device)
    _prepare_device(config, device)
    seed_everything(config.seed)
    model = create_model(config.arch, **config.model_kwargs()).to(device)
    if device.type == "cpu":
        # Channels-last weights make oneDNN keep the conv/pool activations in NHWC, where max-pooling and
        # the conv kernels are vectorised: 1.3–1.7× per train epoch or eval pass in isolation; in whole
        # trials clearly ahead for LeNet, within noise for ResNet (BENCHMARKS.md §1). Only 4-D weights
        # change; the linear net is untouched. Not measured on GPU yet, so CPU only.
        model = model.to(memory_format=torch.channels_last)
    opt, sched = build_optimizer(model.parameters(), config)
    shuffle = _shuffle_generator(config.seed)

    # The whole (small) data set lives on the device for the run.
    (x, y, c), (x_val, y_val, c_val), (x_test, y_test, c_test) = _split_val([t.to(device) for t in data],
                                                                             config.val_fraction)
    n, n_val = len(x), len(x_val)

    start_epoch, elapsed = 1, 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        if sched is not None:
            sched.load_state_dict(resume["scheduler"])
        shuffle.set_state(resume["shuffle_rng"])
        _set_rng_state(resume, device)
        if "train_x" in resume:  # re-paired pairs are state; otherwise the seed redraws the same data
            x, c, y = resume["train_x"].to(device), resume["train_c"].to(device), resume["train_y"].to(device)
        start_epoch, elapsed = resume["epoch"] + 1, resume["time_s"]

    for epoch in range(start_epoch, config.epochs + 1):
        tick = time.perf_counter()
        if config.repair:
            x, c, y = _repair(x, c, shuffle)
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        total = torch.zeros((), device=device)
        steps = 0
        for i in range(0, n, config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2 and n > 1:  # batch norm cannot train on a single pair
                continue
            xb = x[idx]  # (B, 2, 14, 14)
            if config.shift:
                xb = random_shift(xb, config.shift, shuffle)
            out = model(xb)
            loss = _loss(out, c[idx], y[idx], config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()  # no host sync inside the epoch
            steps += 1
        if sched is not None:
            sched.step()
        train_digit, _ = evaluate(model, x, c, y)
        test = evaluate(model, x_test, c_test, y_test)
        val = evaluate(model, x_val, c_val, y_val) if n_val else (math.nan, math.nan)
        elapsed += time.perf_counter() - tick
        metrics = _epoch_metrics(epoch, float(total) / max(steps, 1), train_digit, test, val, elapsed)

        def state(epoch=epoch, elapsed=elapsed, x=x, c=c, y=y):
            snapshot = {
                "epoch": epoch, "time_s": elapsed, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None,
                "shuffle_rng": shuffle.get_state(), **_rng_state(device),
            }
            if config.repair:  # the current pairing is state only when re-pairing changes it
                snapshot.update(train_x=x.cpu(), train_c=c.cpu(), train_y=y.cpu())
            return snapshot
        yield metrics, state


def _rng_state(device: torch.device) -> dict:
    # Dropout on a GPU draws from the CUDA generator.
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


# ---------------------------------------------------------------------------------------------------
# Replicas: several seeds of one configuration in one call (one Ray trial)


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
                 on_epoch: Callable[[list[dict], Callable[[], dict]], None] | None = None,
                 resume: dict | None = None, vectorize: bool = False) -> list[dict]:
    """Train the repetitions `configs` (one configuration, several seeds) epoch by epoch together.

    `on_epoch(metrics_per_replica, state)` is called once per epoch with one metrics dict per replica, in
    the order of `configs`. Two engines:
    - in turn (default): each replica's epoch runs with its own RNG state swapped in, so every replica's
      metrics are bit for bit those of `fit` on its own. Saves the per-trial cost of a search, not compute.
    - `vectorize=True`: the replicas become one batched model (torch.func.vmap over stacked parameters:
      batched matmuls, grouped convolutions), one optimiser step for all. Same data draws, initial weights,
      batch orders and shifts per seed as `fit`; dropout masks come from one shared generator, and float
      summation order differs, so metrics match `fit`'s in distribution, not bit for bit.
    """
    check_replicas(configs)
    if len(datas) != len(configs):
        raise ConfigError(f"{len(configs)} replicas but {len(datas)} data sets")
    device = torch.device(device)
    epochs = _vectorized_epochs(configs, datas, device, resume) if vectorize \
        else _epochs_in_turn(configs, datas, device, resume)
    metrics: list[dict] = []
    for metrics, state in epochs:
        if on_epoch is not None:
            on_epoch(metrics, state)
    return metrics


def _epochs_in_turn(configs, datas, device, resume):
    resumes = resume.get("replicas") if resume is not None else [None] * len(configs)
    if resumes is None or len(resumes) != len(configs):
        raise ConfigError("the snapshot is not from an in-turn run of these replicas")
    runs = [train_epochs(cfg, data, device, r) for cfg, data, r in zip(configs, datas, resumes)]
    rngs: list[dict | None] = [None] * len(runs)
    for _ in range(configs[0].epochs - (resumes[0]["epoch"] if resumes[0] else 0)):
        metrics, states = [], []
        for i, run in enumerate(runs):
            if rngs[i] is not None:
                _set_rng_state(rngs[i], device)  # this replica's dropout stream continues where it stopped
            m, state = next(run)
            rngs[i] = _rng_state(device)
            metrics.append(m)
            states.append((state, rngs[i]))

        def state(states=states):
            # Each replica's RNG as it was at the end of its own epoch, not the global one now.
            return {"replicas": [{**s(), **rng} for s, rng in states]}
        yield metrics, state


def _vectorized_epochs(configs, datas, device, resume):
    from torch.func import functional_call, stack_module_state, vmap

    config = configs[0]
    _prepare_device(config, device)
    models = []
    for cfg in configs:  # each replica's initial weights exactly as `fit` draws them
        seed_everything(cfg.seed)
        models.append(create_model(cfg.arch, **cfg.model_kwargs()).to(device))
    params, buffers = stack_module_state(models)  # (R, ...) leaves that the optimiser steps
    net = models[0]  # the module's code and flags; functional_call swaps in the stacked tensors
    opt, sched = build_optimizer(params.values(), config)
    seed_everything(config.seed)  # the shared dropout stream
    shuffles = [_shuffle_generator(cfg.seed) for cfg in configs]
    stacked = [torch.stack([t[i] for t in datas]).to(device) for i in range(6)]
    (x, y, c), (x_val, y_val, c_val), (x_test, y_test, c_test) = _split_val(stacked, config.val_fraction)
    r, n, n_val = len(configs), x.shape[1], x_val.shape[1]
    rows = torch.arange(r, device=device)[:, None]

    start_epoch, elapsed = 1, 0.0
    if resume is not None:
        if resume.get("engine") != "vectorized" or len(resume["shuffle_rngs"]) != r:
            raise ConfigError("the snapshot is not from a vectorized run of these replicas")
        with torch.no_grad():
            for name, value in resume["params"].items():
                params[name].copy_(value)
            for name, value in resume["buffers"].items():
                buffers[name].copy_(value)
        opt.load_state_dict(resume["optimizer"])
        if sched is not None:
            sched.load_state_dict(resume["scheduler"])
        for g, s in zip(shuffles, resume["shuffle_rngs"]):
            g.set_state(s)
        _set_rng_state(resume, device)
        if "train_x" in resume:
            x, c, y = resume["train_x"].to(device), resume["train_c"].to(device), resume["train_y"].to(device)
        start_epoch, elapsed = resume["epoch"] + 1, resume["time_s"]

    def replica_loss(p, b, xb, cb, yb):
        return _loss(functional_call(net, (p, b), (xb,)), cb, yb, config)

    has_digits = [True]

    def replica_errors(p, b, xs, cs, ys):
        out = functional_call(net, (p, b), (xs,))
        has_digits[0] = out.digits is not None  # plain Python: runs once per call, not per replica
        digit_wrong = (out.digits.argmax(-1) != cs).sum() if has_digits[0] else torch.zeros((), device=device)
        return digit_wrong, (net.predict(out) != ys).sum()

    batched_loss = vmap(replica_loss, randomness="different")  # each replica its own dropout masks
    batched_errors = vmap(replica_errors, randomness="different")

    @torch.no_grad()
    def evaluate_all(xs, cs, ys) -> list[tuple[float, float]]:
        net.eval()
        m = xs.shape[1]
        digit, compare = torch.zeros(r, device=device), torch.zeros(r, device=device)
        chunk = max(1, 4000 // r)  # pairs per replica per forward pass: bounded activation memory
        for i in range(0, m, chunk):
            d, k = batched_errors(params, buffers, xs[:, i:i + chunk], cs[:, i:i + chunk], ys[:, i:i + chunk])
            digit += d
            compare += k
        return [(100.0 * float(d) / (2 * m) if has_digits[0] else math.nan, 100.0 * float(k) / m)
                for d, k in zip(digit, compare)]

    for epoch in range(start_epoch, config.epochs + 1):
        tick = time.perf_counter()
        if config.repair:
            pairs = [_repair(x[i], c[i], g) for i, g in enumerate(shuffles)]
            x, c, y = (torch.stack(t) for t in zip(*pairs))
        net.train()
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)
        total = torch.zeros(r, device=device)
        steps = 0
        for i in range(0, n, config.batch_size):
            idx = order[:, i:i + config.batch_size]  # (R, B): each replica its own batch
            if idx.shape[1] < 2 and n > 1:
                continue
            xb = x[rows, idx]
            if config.shift:
                xb = torch.stack([random_shift(xb[j], config.shift, g) for j, g in enumerate(shuffles)])
            losses = batched_loss(params, buffers, xb, c[rows, idx], y[rows, idx])
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # each replica's gradient is that of its own loss
            opt.step()
            total += losses.detach()
            steps += 1
        if sched is not None:
            sched.step()
        train = evaluate_all(x, c, y)
        test = evaluate_all(x_test, c_test, y_test)
        val = evaluate_all(x_val, c_val, y_val) if n_val else [(math.nan, math.nan)] * r
        elapsed += time.perf_counter() - tick
        losses = (total / max(steps, 1)).tolist()
        # Each replica's time is its share of the batched run's.
        metrics = [_epoch_metrics(epoch, losses[j], train[j][0], test[j], val[j], elapsed / r) for j in range(r)]

        def state(epoch=epoch, elapsed=elapsed, x=x, c=c, y=y):
            snapshot = {
                "engine": "vectorized", "epoch": epoch, "time_s": elapsed,
                "params": {k: v.detach() for k, v in params.items()}, "buffers": dict(buffers),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None,
                "shuffle_rngs": [g.get_state() for g in shuffles], **_rng_state(device),
            }
            if config.repair:
                snapshot.update(train_x=x.cpu(), train_c=c.cpu(), train_y=y.cpu())
            return snapshot
        yield metrics, state


def train_once(config: TrainConfig, device=None, on_epoch=None, data_dir=None) -> dict:
    """Draw the data for `config.seed` and fit: the one-call API for scripts and `tune-digits train`."""
    device = device if device is not None else choose_device()
    return fit(config, load_data(config, data_dir), device, on_epoch=on_epoch)
