"""Several seeds of one configuration in one call (`fit_replicas`): in turn (bit for bit `fit`'s metrics)
and vectorized (one batched model, torch.func): same data, initial weights and batch orders per seed."""
from __future__ import annotations

import functools
import math

import pytest
from train_helpers import PAIRS, history, replica_history, same_metrics, snapshot_after, small_configs, small_datas

from tune_digits.train import ConfigError, TrainConfig, fit_replicas

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def datas():
    return small_datas(SEEDS)


def configs(**kw) -> list[TrainConfig]:
    return small_configs(SEEDS, **kw)


@pytest.mark.parametrize("kw", [
    pytest.param({"options": {"dropout": True}}, id="lenet-dropout"),  # each replica its own dropout stream
    pytest.param({"network": "linear", "shift": 1.0, "repair": True}, id="linear-adam-shift-repair"),
    pytest.param({"network": "linear", "swap": True}, id="linear-swap"),
    pytest.param({"network": "linear", "rotate": 15.0, "shift": 1.0}, id="linear-rotate-shift"),
    pytest.param({"network": "linear", "elastic": 0.5, "shift": 1.0}, id="linear-elastic-shift"),
    pytest.param({"tta": True, "ensemble": 2}, id="lenet-tta-ensemble"),
])
def test_in_turn_gives_each_seed_exactly_its_own_run(kw, datas):
    cfgs = configs(**kw)
    together = replica_history(cfgs, datas)
    for cfg, data, rows in zip(cfgs, datas, together):
        assert same_metrics(rows, history(cfg, data)), cfg.seed
        assert all(r["time_s"] > 0 for r in rows)


def test_in_turn_resumes_bit_for_bit(datas):
    cfgs = configs(epochs=3, options={"dropout": True})
    full = replica_history(cfgs, datas)
    snapshot = snapshot_after(1, functools.partial(fit_replicas, cfgs, datas))
    resumed = replica_history(cfgs, datas, resume=snapshot)
    for a, b in zip(full, resumed):
        assert same_metrics(a[1:], b)
    with pytest.raises(ConfigError, match="not from an in-turn run"):
        replica_history(cfgs, datas, resume={"engine": "vectorized", "epoch": 1})


def test_vectorized_matches_separate_runs_without_dropout(datas):
    """Without dropout the only difference is float summation order (grouped vs plain convolutions)."""
    cfgs = configs(options={"dropout": False})
    together = replica_history(cfgs, datas, vectorize=True)
    for cfg, data, rows in zip(cfgs, datas, together):
        for a, b in zip(rows, history(cfg, data)):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
            for key in ("train_error", "test_error"):
                assert abs(a[key] - b[key]) <= 100 * 2 / PAIRS, (cfg.seed, key)  # at most 2 pairs apart


def test_vectorized_replicas_differ_and_learn(datas):
    rows = replica_history(configs(epochs=4), datas, vectorize=True)
    assert len({r[0]["train_loss"] for r in rows}) == len(SEEDS)  # own data and weights each
    for r in rows:
        assert r[-1]["train_loss"] < r[0]["train_loss"] and r[-1]["train_error"] < 50


@pytest.mark.parametrize("kw", [
    pytest.param({"options": {"strategy": "prob"}}, id="prob"),
    pytest.param({"digit_loss_weight": 0.5, "options": {"strategy": "pair", "weight_sharing": False}}, id="pair-unshared"),
    pytest.param({"network": "resnet", "digit_loss_weight": 0.5, "options": {"strategy": "two_channel", "channels": 4}},
                 id="resnet-two-channel"),
    pytest.param({"network": "linear", "val_fraction": 0.2, "shift": 1.0, "repair": True}, id="linear-val-shift-repair"),
    pytest.param({"network": "linear", "swap": True, "repair": True}, id="linear-swap-repair"),
    pytest.param({"label_smoothing": 0.1, "digit_loss_weight": 0.5, "options": {"strategy": "pair"}},
                 id="pair-label-smoothing"),
    pytest.param({"rotate": 15.0, "precision": "bf16"}, id="rotate-bf16"),
    pytest.param({"swap": True, "rotate": 10.0, "elastic": 0.5, "label_smoothing": 0.1, "ema": 0.9, "tta": True,
                  "precision": "bf16", "options": {"width": 2}}, id="every-lever-bf16"),
])
def test_vectorized_runs_every_strategy_and_option(kw, datas):
    for rows in replica_history(configs(**kw), datas, vectorize=True):
        for r in rows:
            assert math.isfinite(r["train_loss"]) and 0 <= r["test_error"] <= 100
            assert 0 <= r["test_digit_error"] <= 100
            assert math.isnan(r["val_error"]) != bool(kw.get("val_fraction"))


def test_vectorized_resumes_bit_for_bit(datas):
    cfgs = configs(epochs=3, options={"dropout": True}, shift=1.0)
    full = replica_history(cfgs, datas, vectorize=True)
    snapshot = snapshot_after(2, functools.partial(fit_replicas, cfgs, datas, vectorize=True))
    resumed = replica_history(cfgs, datas, vectorize=True, resume=snapshot)
    for a, b in zip(full, resumed):
        assert same_metrics(a[2:], b)
    with pytest.raises(ConfigError, match="not from a vectorized run"):
        replica_history(cfgs, datas, vectorize=True, resume={"replicas": []})


@pytest.mark.parametrize("cfgs, words", [
    ([], "no replica"),
    ([TrainConfig(network="linear", seed=0), TrainConfig(network="linear", seed=0)], "distinct seeds"),
    ([TrainConfig(network="linear", seed=0), TrainConfig(network="linear", seed=1, lr=0.1)], "every setting but the seed"),
])
def test_replicas_must_be_one_configuration(cfgs, words):
    with pytest.raises(ConfigError, match=words):
        fit_replicas(cfgs, [], "cpu")


@pytest.mark.parametrize("vectorize", [False, True], ids=["in-turn", "vectorized"])
def test_each_engine_refuses_the_others_snapshot_in_one_line(vectorize, datas):
    cfgs = configs(network="linear")
    snapshot = snapshot_after(1, functools.partial(fit_replicas, cfgs, datas, vectorize=vectorize))
    for other_cfgs, other_datas, other_vectorize in [(cfgs, datas, not vectorize),  # another engine
                                                     (cfgs[:2], datas[:2], vectorize)]:  # fewer replicas
        with pytest.raises(ConfigError) as err:
            replica_history(other_cfgs, other_datas, vectorize=other_vectorize, resume=snapshot)
        assert "the snapshot is not from" in str(err.value) and "\n" not in str(err.value)


def test_a_vectorized_snapshot_from_before_the_replica_loop_is_refused_in_one_line(datas):
    cfgs = configs(network="linear")
    snapshot = snapshot_after(1, functools.partial(fit_replicas, cfgs, datas, vectorize=True))
    del snapshot["format"]  # format 1 had none
    with pytest.raises(ConfigError, match="format 1") as err:
        replica_history(cfgs, datas, vectorize=True, resume=snapshot)
    assert "\n" not in str(err.value)
