"""Model registry. `create_model(name, **options)` returns a PairNet built on the named backbone.

Every module of this package registers its backbone with `@register_model` when imported, and all of them
are imported here: a new network is one new model file (plus its search space), nothing else to edit.
"""
import importlib
import pkgutil

from .ensemble import Ensemble, mean_output
from .pair import STRATEGIES, PairNet, PairOutput
from .registry import (BASE_TRAINING, NETWORKS, NetworkSpec, backbone_options, create_backbone, is_builtin, list_models,
                       network_spec, paper_models, register_model, register_spec, train_defaults, unregister_model)

_NOT_MODELS = {"common", "ensemble", "pair", "registry"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_MODELS:
        importlib.import_module(f"{__name__}.{_module.name}")

PAIR_OPTIONS = {"strategy": "digits", "weight_sharing": True}


def create_model(name: str, **options) -> PairNet:
    """A pair model: backbone `name` with its options, combined by `strategy` (default: the paper's)."""
    return PairNet(name, **options)


def create_ensemble(name: str, members: int = 1, **options) -> PairNet | Ensemble:
    """`members` pair models drawn one after another from the global generators; one member is the plain
    model (the same weights as `create_model`), more are an Ensemble whose first member has those weights."""
    if members == 1:
        return create_model(name, **options)
    return Ensemble([create_model(name, **options) for _ in range(members)])


def model_options(name: str) -> dict[str, object]:
    """Every option `create_model(name, ...)` takes, with its default."""
    return {**backbone_options(name), **PAIR_OPTIONS}


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["BASE_TRAINING", "NETWORKS", "STRATEGIES", "Ensemble", "create_ensemble", "mean_output", "NetworkSpec", "PairNet", "PairOutput", "backbone_options", "count_parameters",
           "create_backbone", "create_model", "is_builtin", "list_models", "model_options", "network_spec", "paper_models",
           "register_model", "register_spec", "train_defaults", "unregister_model"]
