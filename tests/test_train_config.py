"""TrainConfig (defaults, flat round trip, one-line errors), seeding and device choice: tune_digits/train/config.py."""
from __future__ import annotations

import pytest
import torch

from tune_digits.errors import UserError
from tune_digits.train import ConfigError, TrainConfig, choose_device, modern_names, seed_everything


def test_family_defaults():
    lin, cnn = TrainConfig(network="linear"), TrainConfig(network="resnet")
    assert lin.optimizer == "adam" and cnn.optimizer == "sgd"  # the paper's optimisers
    assert all(v is not None for v in (lin.lr, lin.batch_size, lin.weight_decay, cnn.lr, cnn.batch_size))
    assert TrainConfig(network="linear", lr=0.5).lr == 0.5  # an explicit value wins


def test_flat_round_trip():
    cfg = TrainConfig(network="resnet", pairs=350, lr=0.01, repair=True, swap=True, rotate=10.0, label_smoothing=0.1,
                      ema=0.99, options={"blocks": 3, "dropout": True})
    flat = cfg.to_flat()
    assert flat["blocks"] == 3 and flat["network"] == "resnet" and "options" not in flat
    assert TrainConfig.from_flat(flat) == cfg


def test_old_setting_names_still_work_with_one_note(capsys):
    """`arch`, `aux_loss_weight` and `aux_weight` were renamed after what they are; old configs keep working."""
    import tune_digits.train.config as config_module

    config_module._NOTED.clear()
    old = {"arch": "lenet", "aux_loss_weight": 0.5, "aux_weight": 0.25}
    cfg = TrainConfig.from_flat(old)
    assert (cfg.network, cfg.side_loss_weight, cfg.digit_loss_weight) == ("lenet", 0.5, 0.25)
    TrainConfig.from_flat(old)  # the note is given once per process, not per trial
    notes = capsys.readouterr().err.splitlines()
    assert notes == ["note: arch is now called network; the old name still works",
                     "note: aux_loss_weight is now called side_loss_weight; the old name still works",
                     "note: aux_weight is now called digit_loss_weight; the old name still works"]
    with pytest.raises(ConfigError, match="aux_weight and digit_loss_weight are the same setting"):
        modern_names({"aux_weight": 1.0, "digit_loss_weight": 1.0})


@pytest.mark.parametrize("flat,fragment", [
    ({"network": "vgg"}, "unknown network"),
    ({"network": "lenet", "lrr": 0.1}, "lrr"),  # a misspelt key fails loudly
    ({"network": "lenet", "layers": 2}, "layers"),  # an option of another net
    ({"network": "lenet", "epochs": "5"}, "epochs"),
    ({"network": "lenet", "epochs": 2.5}, "epochs"),
    ({"network": "lenet", "pairs": True}, "pairs"),
    ({"network": "lenet", "lr": "fast"}, "lr"),
    ({"network": "lenet", "lr": None, "momentum": "high"}, "momentum"),
    ({"network": "lenet", "repair": "yes"}, "repair"),
    ({"network": "lenet", "repair": 1}, "repair"),
    ({"network": "lenet", "swap": "yes"}, "swap must be true or false"),
    ({"network": "lenet", "swap": 1}, "swap must be true or false"),
    ({"network": "lenet", "label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
    ({"network": "lenet", "label_smoothing": -0.1}, "label_smoothing must be in [0, 1)"),
    ({"network": "lenet", "label_smoothing": "some"}, "label_smoothing must be a number"),
    ({"network": "lenet", "ema": 1.0}, "ema must be 0 (off) or a decay in (0, 1)"),
    ({"network": "lenet", "ema": True}, "ema must be a number"),
    ({"network": "lenet", "rotate": 31.0}, "rotate must be between 0 and 30 degrees"),
    ({"network": "lenet", "rotate": -1}, "rotate must be between 0 and 30 degrees"),
    ({"network": "lenet", "rotate": "small"}, "rotate must be a number"),
    ({"network": "lenet", "optimizer": 3}, "optimizer"),
    ({"network": "lenet", "pairs": 1}, "pairs"),
    ({"network": "lenet", "test_pairs": 0}, "test_pairs"),
    ({"network": "lenet", "epochs": 0}, "epochs"),
    ({"network": "lenet", "lr": 0}, "lr"),
    ({"network": "lenet", "lr": -0.1}, "lr"),
    ({"network": "lenet", "momentum": 1.0}, "momentum"),
    ({"network": "lenet", "weight_decay": -1e-4}, "weight_decay"),
    ({"network": "lenet", "batch_size": 0}, "batch_size"),
    ({"network": "lenet", "optimizer": "rmsprop"}, "optimizer must be one of ['sgd', 'adam']"),
    ({"network": "lenet", "lr_schedule": "step"}, "lr_schedule must be one of ['constant', 'cosine']"),
    ({"network": "lenet", "side_loss_weight": -1}, "auxiliary"),
    ({"network": "lenet", "val_fraction": 1.0}, "val_fraction"),
    ({"network": "lenet", "val_fraction": -0.1}, "val_fraction"),
    ({"network": "lenet", "pairs": 10, "val_fraction": 0.05}, "val_fraction"),
    ({"network": "lenet", "threads": 0}, "threads"),
    ({"network": "lenet", "strategy": "siamese"}, "strategy"),
    ({"network": "lenet", "batch_order": "sorted"}, "batch_order must be one of ['shuffled', 'fixed']"),
    ({"network": "lenet", "standardise": "digits"}, "standardise must be one of ['pairs', 'split']"),
    ({"network": "lenet", "standardise": True}, "standardise"),
    ({"network": "lenet", "variant": "theirs"}, "variant"),
    ({"network": "alexnet", "variant": "authors"}, "authors' AlexNet"),
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
        TrainConfig(network="lenet", options=options)
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)


def test_direct_constructor_checks_types_too():
    with pytest.raises(ConfigError):
        TrainConfig(network="lenet", seed="0")
    with pytest.raises(ConfigError):
        TrainConfig(network="lenet", options=[("dropout", True)])


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
