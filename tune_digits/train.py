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
# Defaults for the CNNs (SGD); a family overrides them in its registry entry (linear: Adam).
FAMILY_DEFAULTS = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5.0e-4, "batch_size": 50}
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
    # None below means the family's default (FAMILY_DEFAULTS and each model's `train_defaults`):
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
            raise ConfigError(f"unknown architecture '{self.arch}'; known: {', '.join(list_models())}")
        for name, value in vars(self).items():
            expected = _FIELD_TYPES.get(name)
            if value is not None and expected and not (isinstance(value, expected) and
                                                       (expected is bool or not isinstance(value, bool))):
                kind = "a number" if isinstance(expected, tuple) else _TYPE_WORDS[expected]
                raise ConfigError(f"{name} must be {kind}, got {value!r}")
        defaults = {**FAMILY_DEFAULTS, **train_defaults(self.arch)}
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


def build_optimizer(model, config: TrainConfig):
    if config.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
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
    device = torch.device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        # Same seed, same metrics on a GPU too: no autotuned (run-to-run varying) conv algorithms.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    seed_everything(config.seed)
    model = create_model(config.arch, **config.model_kwargs()).to(device)
    if device.type == "cpu":
        # Channels-last weights make oneDNN keep the conv/pool activations in NHWC, where max-pooling and
        # the conv kernels are vectorised: 1.3–1.7× per train epoch or eval pass in isolation; in whole
        # trials clearly ahead for LeNet, within noise for ResNet (BENCHMARKS.md §1). Only 4-D weights
        # change; the linear net is untouched. Not measured on GPU yet, so CPU only.
        model = model.to(memory_format=torch.channels_last)
    opt, sched = build_optimizer(model, config)
    # A separate generator for batch order and re-pairing keeps data order independent of dropout draws.
    shuffle = torch.Generator().manual_seed(config.seed + 1_000_003)

    # The whole (small) data set lives on the device for the run.
    tensors = [t.to(device) for t in data]
    x, y, c, x_test, y_test, c_test = tensors
    n_val = int(len(x) * config.val_fraction)
    x_val, y_val, c_val = x[len(x) - n_val:], y[len(y) - n_val:], c[len(c) - n_val:]
    x, y, c = x[:len(x) - n_val], y[:len(y) - n_val], c[:len(c) - n_val]
    n = len(x)

    start_epoch, elapsed = 1, 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        if sched is not None:
            sched.load_state_dict(resume["scheduler"])
        shuffle.set_state(resume["shuffle_rng"])
        torch.set_rng_state(resume["torch_rng"])
        if resume.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        if "train_x" in resume:  # re-paired pairs are state; otherwise the seed redraws the same data
            x, c, y = resume["train_x"].to(device), resume["train_c"].to(device), resume["train_y"].to(device)
        start_epoch, elapsed = resume["epoch"] + 1, resume["time_s"]

    metrics: dict = {}
    t0 = time.perf_counter() - elapsed
    for epoch in range(start_epoch, config.epochs + 1):
        if config.repair:
            # Re-pair the training digits: new partners, targets recomputed (ties stay 1).
            perm = torch.randperm(2 * n, generator=shuffle).to(device)
            x = x.reshape(2 * n, 14, 14)[perm].reshape(n, 2, 14, 14)
            c = c.reshape(2 * n)[perm].reshape(n, 2)
            y = compare_target(c)
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
        test_digit, test_compare = evaluate(model, x_test, c_test, y_test)
        val_digit, val_compare = evaluate(model, x_val, c_val, y_val) if n_val else (math.nan, math.nan)
        metrics = {
            "epoch": epoch,
            "train_loss": float(total) / max(steps, 1),
            "train_error": train_digit,
            "test_digit_error": test_digit,
            "test_error": test_compare,
            "val_error": val_compare,
            "val_digit_error": val_digit,
            "time_s": time.perf_counter() - t0,
        }
        if on_epoch is not None:
            def state(epoch=epoch, metrics=metrics, x=x, c=c, y=y):
                snapshot = {
                    "epoch": epoch, "time_s": metrics["time_s"], "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched else None,
                    "shuffle_rng": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
                    # Dropout on a GPU draws from the CUDA generator.
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                }
                if config.repair:  # the current pairing is state only when re-pairing changes it
                    snapshot.update(train_x=x.cpu(), train_c=c.cpu(), train_y=y.cpu())
                return snapshot
            on_epoch(metrics, state)
    return metrics


def train_once(config: TrainConfig, device=None, on_epoch=None, data_dir=None) -> dict:
    """Draw the data for `config.seed` and fit: the one-call API for scripts and `tune-digits train`."""
    device = device if device is not None else choose_device()
    return fit(config, load_data(config, data_dir), device, on_epoch=on_epoch)
