"""TrainConfig (defaults, flat round trip, one-line errors), seeding and device choice: tune_digits/train/config.py."""
from __future__ import annotations

import pytest
import torch

from tune_digits.errors import UserError
from tune_digits.train import ConfigError, TrainConfig, choose_device, seed_everything


def test_family_defaults():
    lin, cnn = TrainConfig(arch="linear"), TrainConfig(arch="resnet")
    assert lin.optimizer == "adam" and cnn.optimizer == "sgd"  # the paper's optimisers
    assert all(v is not None for v in (lin.lr, lin.batch_size, lin.weight_decay, cnn.lr, cnn.batch_size))
    assert TrainConfig(arch="linear", lr=0.5).lr == 0.5  # an explicit value wins


def test_flat_round_trip():
    cfg = TrainConfig(arch="resnet", pairs=350, lr=0.01, repair=True, options={"blocks": 3, "dropout": True})
    flat = cfg.to_flat()
    assert flat["blocks"] == 3 and flat["arch"] == "resnet" and "options" not in flat
    assert TrainConfig.from_flat(flat) == cfg


@pytest.mark.parametrize("flat,fragment", [
    ({"arch": "vgg"}, "unknown network"),
    ({"arch": "lenet", "lrr": 0.1}, "lrr"),  # a misspelt key fails loudly
    ({"arch": "lenet", "layers": 2}, "layers"),  # an option of another net
    ({"arch": "lenet", "epochs": "5"}, "epochs"),
    ({"arch": "lenet", "epochs": 2.5}, "epochs"),
    ({"arch": "lenet", "pairs": True}, "pairs"),
    ({"arch": "lenet", "lr": "fast"}, "lr"),
    ({"arch": "lenet", "lr": None, "momentum": "high"}, "momentum"),
    ({"arch": "lenet", "repair": "yes"}, "repair"),
    ({"arch": "lenet", "repair": 1}, "repair"),
    ({"arch": "lenet", "optimizer": 3}, "optimizer"),
    ({"arch": "lenet", "pairs": 1}, "pairs"),
    ({"arch": "lenet", "test_pairs": 0}, "test_pairs"),
    ({"arch": "lenet", "epochs": 0}, "epochs"),
    ({"arch": "lenet", "lr": 0}, "lr"),
    ({"arch": "lenet", "lr": -0.1}, "lr"),
    ({"arch": "lenet", "momentum": 1.0}, "momentum"),
    ({"arch": "lenet", "weight_decay": -1e-4}, "weight_decay"),
    ({"arch": "lenet", "batch_size": 0}, "batch_size"),
    ({"arch": "lenet", "optimizer": "rmsprop"}, "optimizer"),
    ({"arch": "lenet", "lr_schedule": "step"}, "lr_schedule"),
    ({"arch": "lenet", "aux_loss_weight": -1}, "auxiliary"),
    ({"arch": "lenet", "val_fraction": 1.0}, "val_fraction"),
    ({"arch": "lenet", "val_fraction": -0.1}, "val_fraction"),
    ({"arch": "lenet", "pairs": 10, "val_fraction": 0.05}, "val_fraction"),
    ({"arch": "lenet", "threads": 0}, "threads"),
    ({"arch": "lenet", "strategy": "siamese"}, "strategy"),
])
def test_bad_config_raises_config_error(flat, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_flat(flat)
    message = str(err.value)
    assert fragment in message and "\n" not in message, message


@pytest.mark.parametrize("options", [{"kernel_size": 4}, {"dropout": "yes"}, {"batch_norm": 1}])
def test_bad_model_option_in_config_fails_before_training(options):
    # Model options are checked when the config is built (on the meta device), as a one-line user error.
    with pytest.raises(UserError) as err:
        TrainConfig(arch="lenet", options=options)
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)


def test_direct_constructor_checks_types_too():
    with pytest.raises(ConfigError):
        TrainConfig(arch="lenet", seed="0")
    with pytest.raises(ConfigError):
        TrainConfig(arch="lenet", options=[("dropout", True)])


def test_gpu_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert choose_device() == torch.device("cpu")
    with pytest.raises(ConfigError):
        choose_device(gpu=True)


# ---------------------------------------------------------------- seeding

def test_seed_everything_fixes_global_rngs():
    import random

    import numpy as np

    seed_everything(42)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(42)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
