"""Model registry. `create_model(name, **options)` returns a PairNet built on the named backbone."""
from . import alexnet, lenet, linear, resnet  # noqa: F401  (registers the backbones)
from .pair import STRATEGIES, PairNet, PairOutput
from .registry import (BASE_TRAINING, NetworkSpec, backbone_options, create_backbone, list_models, network_spec,
                       paper_models, register_model, train_defaults, unregister_model)

PAIR_OPTIONS = {"strategy": "digits", "weight_sharing": True}


def create_model(name: str, **options) -> PairNet:
    """A pair model: backbone `name` with its options, combined by `strategy` (default: the paper's)."""
    return PairNet(name, **options)


def model_options(name: str) -> dict[str, object]:
    """Every option `create_model(name, ...)` takes, with its default."""
    return {**backbone_options(name), **PAIR_OPTIONS}


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["BASE_TRAINING", "STRATEGIES", "NetworkSpec", "PairNet", "PairOutput", "backbone_options", "count_parameters",
           "create_backbone", "network_spec", "paper_models", "unregister_model",
           "create_model", "list_models", "model_options", "register_model", "train_defaults"]
