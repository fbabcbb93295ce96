"""What one repetition needs before its first step: the typed config, seeding and the device."""
from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data import SPLIT_SIZES, STANDARDISE
from ..errors import UserError
from ..models import NETWORKS, count_parameters, create_ensemble, create_model, model_options, train_defaults
from ..results import CONFIG_RENAMES

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
# fp32: the exact path (tests/test_golden.py). bf16: forward passes under autocast (convolutions and matmuls in
# bfloat16, AVX-512 BF16 on this CPU), master weights and optimiser state in float32 (BENCHMARKS.md §7).
PRECISIONS = ("fp32", "bf16")
# When the training set's error is measured: every epoch (docs/protocol.md §3, Figure 1), or at the final epoch only (a
# screen ranks on the final epoch; the pass over the training digits is ≈ 1/4 of an epoch's work).
TRAIN_EVALS = ("every", "final")
BATCH_ORDERS = ("shuffled", "fixed")
MAX_ENSEMBLE = 20


class ConfigError(UserError, ValueError):
    """An impossible or unknown configuration value; the message is one line for the user."""


@dataclass
class TrainConfig:
    """Everything one repetition needs. `options` holds the model's own options (see `tune-digits models`)."""

    network: str = "lenet"
    pairs: int = 1000  # train pairs; test pairs too unless test_pairs is set (docs/protocol.md §2)
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
    side_loss_weight: float = 0.3  # weight of LeNet's side-classifier loss (GoogLeNet used 0.3)
    digit_loss_weight: float = 0.0  # weight of the digit loss for the `pair` and `two_channel` strategies
    repair: bool = False  # re-pair the training digits at random every epoch (targets recomputed)
    shift: float = 0.0  # augmentation: random translation of each training digit, up to this many pixels
    rotate: float = 0.0  # augmentation: random rotation of each training digit, up to this many degrees either way
    elastic: float = 0.0  # augmentation: a smooth random field bends each training digit, this many pixels RMS
    # Augmentation: every epoch each training pair (a, b) becomes (b, a) with probability 1/2, its digit labels
    # swapped with it and its target recomputed from them (ties stay 1: a swap is not `1 - target`).
    swap: bool = False
    # Label smoothing ε of every loss term (loss.py): the comparison target y becomes y(1 - ε) + ε/2, the digit and
    # side classifiers' one-hot labels (1 - ε)·one-hot + ε/10 (F.cross_entropy's label_smoothing). 0: off.
    label_smoothing: float = 0.0
    # Decay of an exponential moving average of the weights, batch-norm statistics included (engines.py), updated
    # after every optimiser step and evaluated in their place: every epoch's errors are the average's, the
    # training loss stays the trained weights'. 0: off; e.g. 0.99 weighs the last ≈ 100 steps.
    ema: float = 0.0
    # Test-time augmentation: every pair is evaluated as the mean of 5 views (as is, and moved one pixel up, down,
    # left and right: augment.TEST_SHIFTS), their probabilities averaged as an ensemble's members are. Training is
    # unchanged; evaluation costs 5 forward passes.
    tta: bool = False
    val_fraction: float = 0.0  # share of the train pairs held out for model selection
    # The authors' code: the drawn order every epoch ("fixed"), and the whole train split's mean and std
    # ("split", data.py) instead of the drawn pairs'.
    batch_order: str = "shuffled"
    standardise: str = "pairs"
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    precision: str = "fp32"  # PRECISIONS
    train_eval: str = "every"  # TRAIN_EVALS: train_error every epoch, or NaN but at the final epoch
    # Members of an ensemble inside the trial: each its own initial weights and loss, the same pairs and batches;
    # evaluated on their averaged probabilities (models/ensemble.py). 1: the plain model.
    ensemble: int = 1
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        NETWORKS.get(self.network, error=ConfigError)  # an unknown one fails with the known ones
        for name, value in vars(self).items():
            expected = _FIELD_TYPES.get(name)
            if value is not None and expected and not (isinstance(value, expected) and
                                                       (expected is bool or not isinstance(value, bool))):
                kind = "a number" if isinstance(expected, tuple) else _TYPE_WORDS[expected]
                raise ConfigError(f"{name} must be {kind}, got {value!r}")
        defaults = train_defaults(self.network)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        known = model_options(self.network)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(f"unknown option {', '.join(unknown)} for {self.network}; "
                              f"known: {', '.join(sorted(set(known) | set(_FIELDS)))}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {list(choices)}")
        checks = [
            (self.pairs >= 2, "pairs must be at least 2"),
            (self.test_pairs is None or self.test_pairs >= 1, "test_pairs must be positive"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.side_loss_weight >= 0 and self.digit_loss_weight >= 0, "auxiliary loss weights must be >= 0"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (0 <= self.shift <= 4, "shift must be between 0 and 4 pixels"),
            (0 <= self.rotate <= 30, "rotate must be between 0 and 30 degrees"),
            (0 <= self.elastic <= 3, "elastic must be between 0 and 3 pixels"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.ema < 1, "ema must be 0 (off) or a decay in (0, 1)"),
            (self.threads is None or self.threads >= 1, "threads must be at least 1"),
            (1 <= self.ensemble <= MAX_ENSEMBLE, f"ensemble must be between 1 and {MAX_ENSEMBLE} members"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        # Build the model on the meta device (no memory, no compute) so bad model options fail here,
        # before any data or Ray work starts.
        try:
            with torch.device("meta"):
                create_model(self.network, **self.options)
        except UserError as err:  # one exception type for every config mistake
            raise ConfigError(str(err)) from None
        # Each pair takes two digits of its split (docs/protocol.md §2): MNIST's train split holds 60,000, its test split 10,000.
        for n, split, name in ((self.pairs, "train", "pairs"), (self.test_pairs or self.pairs, "test", "test pairs")):
            if 2 * n > SPLIT_SIZES[split]:
                hint = " (set test_pairs to draw fewer)" if split == "test" and self.test_pairs is None else ""
                raise ConfigError(f"{n:,} {name} need {2 * n:,} digits but MNIST's {split} split has "
                                  f"{SPLIT_SIZES[split]:,}: at most {SPLIT_SIZES[split] // 2:,}{hint}")
        if self.val_fraction and int(self.pairs * self.val_fraction) < 1:
            raise ConfigError(f"val_fraction {self.val_fraction} of {self.pairs} pairs holds out no pair")

    @classmethod
    def from_flat(cls, flat: dict) -> "TrainConfig":
        """Rebuild from the flat dict used at the Ray boundary: training fields plus model options."""
        flat = modern_names(flat)
        train = {k: flat.pop(k) for k in list(flat) if k in _FIELDS}
        return cls(**train, options=flat)

    def to_flat(self) -> dict:
        flat = dataclasses.asdict(self)
        return {**flat.pop("options"), **flat}

    def model_kwargs(self) -> dict:
        return dict(self.options)


def parameter_count(config: TrainConfig) -> int:
    """The trained parameters of one repetition: every member of an ensemble (built on the meta device)."""
    with torch.device("meta"):
        return count_parameters(create_ensemble(config.network, config.ensemble, **config.options))


def modern_names(flat: dict, where: str = "") -> dict:
    """Settings under their old names (`arch`, `aux_loss_weight`, `aux_weight`) keep working: each is renamed,
    with a one-line note on stderr the first time a process meets it."""
    renamed = {}
    for key, value in flat.items():
        new = CONFIG_RENAMES.get(key, key)
        if new != key:
            if new in flat:
                raise ConfigError(f"{where}{key} and {where}{new} are the same setting; keep only {new}")
            if key not in _NOTED:
                _NOTED.add(key)
                print(f"note: {where}{key} is now called {new}; the old name still works", file=sys.stderr)
        renamed[new] = value
    return renamed


_NOTED: set[str] = set()
_TYPE_WORDS = {int: "an integer", bool: "true or false", str: "a string", dict: "a mapping"}
_FIELD_TYPES = {
    **dict.fromkeys(("pairs", "test_pairs", "epochs", "seed", "batch_size", "threads", "ensemble"), int),
    **dict.fromkeys(("lr", "momentum", "weight_decay", "side_loss_weight", "digit_loss_weight", "val_fraction", "shift",
                     "rotate", "elastic", "label_smoothing", "ema"), (int, float)),
    **dict.fromkeys(("network", "optimizer", "lr_schedule", "batch_order", "standardise", "precision", "train_eval"),
                    str), "repair": bool, "swap": bool, "tta": bool, "options": dict,
}
# The settings that take one word out of a fixed few.
_CHOICES = {"optimizer": OPTIMIZERS, "lr_schedule": SCHEDULES, "batch_order": BATCH_ORDERS,
            "standardise": STANDARDISE, "precision": PRECISIONS, "train_eval": TRAIN_EVALS}
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"options"}


# ---------------------------------------------------------------------------------------------------
# Seeding: the global generators (initial weights, dropout) and each replica's own data-order generator


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch in one place at the start of each repetition."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def shuffle_generator(seed: int) -> torch.Generator:
    """A separate generator for batch order, shifts and re-pairing keeps data order independent of dropout."""
    return torch.Generator().manual_seed(seed + 1_000_003)


def rng_state(device: torch.device) -> dict:
    """The global generators' state: what dropout draws from (on a GPU, the CUDA generator)."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


# ---------------------------------------------------------------------------------------------------
# Device: chosen once and passed down


def choose_device(gpu: bool | None = None) -> torch.device:
    """CUDA when available (or asked); chosen once and passed down."""
    if gpu is None:
        gpu = torch.cuda.is_available()
    if gpu and not torch.cuda.is_available():
        raise ConfigError("a GPU was asked for but torch sees none (torch.cuda.is_available() is False)")
    return torch.device("cuda" if gpu else "cpu")


def prepare_device(config: TrainConfig, device: torch.device) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        # Same seed, same metrics on a GPU too: no autotuned (run-to-run varying) conv algorithms.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def autocast(config: TrainConfig, device: torch.device):
    """The context of a forward pass: bf16 autocast for `precision: bf16` (float32 weights, gradients and
    optimiser state; losses in float32, as autocast runs them), nothing at all for fp32 (the exact path)."""
    if config.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
