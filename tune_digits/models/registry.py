"""Model registry: one name everywhere (`resnet` is the registry key, the YAML file and the CLI word)."""
from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from .common import ModelOptionError

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}
_DEFAULTS: dict[str, dict] = {}


def register_model(train_defaults: dict | None = None):
    """Register a backbone factory under its function name.

    A backbone maps (B, in_channels, 14, 14) to `Backbone.forward` outputs: (logits, side_logits or None).
    `train_defaults` are the paper's optimiser for that family (SGD for CNNs, Adam for the MLP).
    """
    def wrap(fn):
        _BACKBONES[fn.__name__] = fn
        _DEFAULTS[fn.__name__] = dict(train_defaults or {})
        return fn
    return wrap


def list_models() -> list[str]:
    return sorted(_BACKBONES)


def _lookup(name: str):
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ModelOptionError(f"unknown architecture '{name}'; known: {', '.join(list_models())}") from None


def backbone_options(name: str) -> dict[str, object]:
    """The constructor options of a backbone with their defaults (in_channels/num_classes excluded)."""
    params = inspect.signature(_lookup(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("in_channels", "num_classes")}


def train_defaults(name: str) -> dict:
    _lookup(name)
    return dict(_DEFAULTS[name])


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
