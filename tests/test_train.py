"""The pure training loop: learning, determinism, resuming, config validation, val split and re-pairing."""
from __future__ import annotations

import io
import math

import pytest
import torch

from tune_digits.data import compare_target, generate_pair_sets
from tune_digits.errors import UserError
from tune_digits.train import (
    METRICS, ConfigError, TrainConfig, choose_device, fit, seed_everything, train_once,
)

# Small but real: 60 pairs of real MNIST, one thread (the suite shares 2 cores).
PAIRS = 60


@pytest.fixture(scope="module")
def pairs():
    return generate_pair_sets(PAIRS, seed=0)


def config(**kw) -> TrainConfig:
    base = {"arch": "lenet", "pairs": PAIRS, "epochs": 2, "seed": 0, "threads": 1, "batch_size": 10}
    return TrainConfig(**{**base, **kw})


def history(cfg: TrainConfig, data, **kw) -> list[dict]:
    rows = []
    fit(cfg, data, "cpu", on_epoch=lambda m, _state: rows.append(m), **kw)
    return rows


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def same_metrics(a: list[dict], b: list[dict]) -> bool:
    """Equal epoch by epoch (NaN == NaN, as for the unused validation columns)."""
    a, b = without_time(a), without_time(b)
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k])) for k in x)
        for x, y in zip(a, b))


# ---------------------------------------------------------------- learning and metrics

@pytest.mark.parametrize("arch", ["linear", "lenet"])
def test_short_training_lowers_the_loss(arch, pairs):
    rows = history(config(arch=arch, epochs=4), pairs)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["train_error"] < 50  # far below chance (90 %) on the digits it saw


def test_metrics_are_the_spec_four_per_epoch(pairs):
    rows = history(config(epochs=1), pairs)
    m = rows[0]
    assert set(METRICS) | {"epoch", "time_s"} == set(m)
    for key in ("train_error", "test_digit_error", "test_error"):
        assert 0 <= m[key] <= 100
    # Error rates are counts over 2N digits or N pairs.
    assert (m["test_error"] * PAIRS / 100) == pytest.approx(round(m["test_error"] * PAIRS / 100))
    assert (m["test_digit_error"] * 2 * PAIRS / 100) == pytest.approx(round(m["test_digit_error"] * 2 * PAIRS / 100))
    assert math.isnan(m["val_error"]) and math.isnan(m["val_digit_error"])
    assert m["time_s"] > 0 and m["train_loss"] > 0


def test_fit_returns_the_last_epoch(pairs):
    rows = []
    last = fit(config(arch="linear", epochs=2), pairs, on_epoch=lambda m, s: rows.append(m))
    assert last == rows[-1]


@pytest.mark.parametrize("strategy", ["prob", "pair", "two_channel"])
def test_other_strategies_train(strategy, pairs):
    rows = history(config(arch="linear", epochs=2, aux_weight=0.5, options={"strategy": strategy}), pairs)
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["test_error"]) for r in rows)
    assert math.isfinite(rows[-1]["test_digit_error"])


def test_separate_trunks_train(pairs):
    rows = history(config(arch="linear", epochs=2, options={"weight_sharing": False}), pairs)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_train_once_draws_its_own_data():
    last = train_once(config(arch="linear", pairs=20, epochs=1, test_pairs=15), device="cpu")
    # 15 test pairs: the comparison error is a multiple of 100/15.
    assert (last["test_error"] * 15 / 100) == pytest.approx(round(last["test_error"] * 15 / 100))


# ---------------------------------------------------------------- determinism and resuming

def test_same_seed_same_metrics_epoch_by_epoch(pairs):
    cfg = config(epochs=3, options={"dropout": True})  # dropout also draws from the RNG
    first, second = history(cfg, pairs), history(cfg, pairs)
    assert same_metrics(first, second)


def test_different_seed_different_metrics(pairs):
    a = history(config(epochs=1, seed=0), pairs)
    b = history(config(epochs=1, seed=1), pairs)
    assert a[0]["train_loss"] != b[0]["train_loss"]


def test_seed_everything_fixes_global_rngs():
    import random

    import numpy as np

    seed_everything(42)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(42)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


@pytest.mark.parametrize("kw", [
    pytest.param({"arch": "lenet", "options": {"dropout": True}}, id="lenet-sgd-cosine-dropout"),
    pytest.param({"arch": "linear", "repair": True, "lr_schedule": "constant"}, id="linear-adam-repair"),
    pytest.param({"arch": "linear", "val_fraction": 0.2}, id="linear-val"),
])
def test_resume_from_a_snapshot_matches_an_uninterrupted_run(kw, pairs):
    cfg = config(epochs=4, **kw)
    full = history(cfg, pairs)

    saved = {}

    def checkpoint(metrics, state):
        if metrics["epoch"] == 2:
            # Serialise at once, as a checkpoint does: state() refers to live tensors.
            buffer = io.BytesIO()
            torch.save(state(), buffer)
            saved["bytes"] = buffer.getvalue()

    fit(config(epochs=4, **kw), pairs, on_epoch=checkpoint)
    snapshot = torch.load(io.BytesIO(saved["bytes"]), weights_only=False)
    assert snapshot["epoch"] == 2
    resumed = history(cfg, pairs, resume=snapshot)
    assert [r["epoch"] for r in resumed] == [3, 4]
    assert same_metrics(full[2:], resumed)
    assert resumed[-1]["time_s"] >= snapshot["time_s"]  # the clock continues


# ---------------------------------------------------------------- validation split and re-pairing

def test_val_fraction_holds_out_the_last_train_pairs(pairs):
    n_val = int(PAIRS * 0.25)
    held_out = history(config(arch="linear", epochs=2, val_fraction=0.25), pairs)
    for m in held_out:
        assert 0 <= m["val_error"] <= 100 and 0 <= m["val_digit_error"] <= 100
        assert (m["val_error"] * n_val / 100) == pytest.approx(round(m["val_error"] * n_val / 100))
    # Training on the first N - n_val pairs only is exactly the run without them.
    keep = PAIRS - n_val
    truncated = pairs._replace(train_input=pairs.train_input[:keep], train_target=pairs.train_target[:keep],
                               train_classes=pairs.train_classes[:keep])
    plain = history(config(arch="linear", epochs=2, pairs=keep), truncated)
    for a, b in zip(held_out, plain):
        for key in ("train_loss", "train_error", "test_digit_error", "test_error"):
            assert a[key] == b[key], key


def test_repair_repairs_the_training_digits_every_epoch(pairs):
    states = []
    fit(config(arch="linear", epochs=2, repair=True), pairs, on_epoch=lambda m, s: states.append(s()))
    digit_of = {img.numpy().tobytes(): int(d) for img, d in
                zip(pairs.train_input.reshape(-1, 14, 14), pairs.train_classes.reshape(-1))}
    previous = pairs.train_classes
    for state in states:
        x, c, y = state["train_x"], state["train_c"], state["train_y"]
        # The same 2N digits, new partners, every image still carries its own class, targets recomputed.
        assert sorted(c.reshape(-1).tolist()) == sorted(pairs.train_classes.reshape(-1).tolist())
        assert [digit_of[img.numpy().tobytes()] for img in x.reshape(-1, 14, 14)] == c.reshape(-1).tolist()
        assert torch.equal(y, compare_target(c))
        assert not torch.equal(c, previous)
        previous = c


# ---------------------------------------------------------------- configuration

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


def test_threads_follow_the_config(pairs):
    fit(config(arch="linear", epochs=1, threads=1), pairs)
    assert torch.get_num_threads() == 1
