"""The network registry: one spec per network, declared beside its model with `@register_model`.

One name everywhere: `resnet` is the registry key, the model file, the search space and the CLI word.
Everything else that needs the list of networks (the CLI's choices, `reproduce`, the report's order,
the tests) derives it from here, so adding a network is one model file plus one search-space YAML.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .. import paper
from ..registry import Registry
from .common import ModelOptionError

# Training values every network starts from (SGD, as the paper's CNNs); a spec's `train_defaults` override
# them (the linear net: Adam). Chosen in benchmarks/quality.py.
BASE_TRAINING = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5.0e-4, "batch_size": 50}


@dataclass(frozen=True)
class NetworkSpec:
    """A network's facts: its factory (options = keyword arguments with defaults), training defaults and
    whether it is one of the paper's four (then `paper.TABLE_II` holds its published row)."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    train_defaults: dict = field(default_factory=dict)

    @property
    def in_paper(self) -> bool:
        return self.name in paper.TABLE_II

    @property
    def paper_row(self) -> dict | None:
        return paper.TABLE_II.get(self.name)

    def options(self) -> dict[str, object]:
        """The factory's options with their defaults (in_channels/num_classes excluded)."""
        params = inspect.signature(self.factory).parameters
        return {k: p.default for k, p in params.items() if k not in ("in_channels", "num_classes")}

    def training(self) -> dict:
        """Training defaults: BASE_TRAINING with this network's own on top."""
        return {**BASE_TRAINING, **self.train_defaults}


NETWORKS: Registry[NetworkSpec] = Registry("network", ModelOptionError, order=paper.order)


def register_model(train_defaults: dict | None = None):
    """Register a backbone factory under its function name; its docstring's first line describes it.

    A backbone maps (B, in_channels, 14, 14) to (logits, side_logits or None)."""
    def wrap(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        NETWORKS.register(fn.__name__, NetworkSpec(fn.__name__, fn, doc[0] if doc else "", dict(train_defaults or {})))
        return fn
    return wrap


def register_spec(spec: NetworkSpec) -> None:
    """Register a spec made elsewhere: a Ray worker receiving a network defined outside this package (a worker
    that ran a trial of it before, or imported its module, has it already)."""
    if spec.name not in NETWORKS:
        NETWORKS.register(spec.name, spec)


def is_builtin(name: str) -> bool:
    """Whether the network is defined in tune_digits/models (every process imports it) rather than in a
    user's module or a test, which a Ray worker does not import."""
    return network_spec(name).factory.__module__.startswith(__package__ + ".")


def unregister_model(name: str) -> None:
    """Remove a network (tests that register a network of their own clean up with this)."""
    NETWORKS.pop(name)


def list_models() -> list[str]:
    """Registered networks in display order: the paper's, in its Table II order, then the others by name."""
    return NETWORKS.names()


def paper_models() -> list[str]:
    """The registered networks that the paper studies (what `tune-digits reproduce` runs)."""
    return [spec.name for spec in NETWORKS.values() if spec.in_paper]


def network_spec(name: str) -> NetworkSpec:
    return NETWORKS.get(name)


def _lookup(name: str):
    return network_spec(name).factory


def backbone_options(name: str) -> dict[str, object]:
    """The constructor options of a backbone with their defaults (in_channels/num_classes excluded)."""
    return network_spec(name).options()


def train_defaults(name: str) -> dict:
    """The training values a TrainConfig of this network starts from."""
    return network_spec(name).training()


def create_backbone(name: str, in_channels: int = 1, num_classes: int = 10, **options) -> nn.Module:
    known = backbone_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ModelOptionError(f"{name} has no option {', '.join(unknown)}; its options: {', '.join(known)}")
    for key, value in options.items():
        _check_type(f"{name}.{key}", value, known[key])
    return _lookup(name)(in_channels=in_channels, num_classes=num_classes, **options)


def _check_type(key: str, value, default) -> None:
    """Options take the type of their default: a YAML typo such as `dropout: yes please` fails here."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        word = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
        raise ModelOptionError(f"{key} must be {word}, got {value!r}")
