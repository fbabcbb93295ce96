"""Several seeds of one configuration in one call (`fit_replicas`): in turn (bit for bit `fit`'s metrics)
and vectorized (one batched model, torch.func): same data, initial weights and batch orders per seed."""
from __future__ import annotations

import io
import math

import pytest
import torch

from tune_digits.data import generate_pair_sets
from tune_digits.train import ConfigError, TrainConfig, fit, fit_replicas

PAIRS = 60
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def datas():
    return [generate_pair_sets(PAIRS, seed) for seed in SEEDS]


def configs(**kw) -> list[TrainConfig]:
    base = {"arch": "lenet", "pairs": PAIRS, "epochs": 2, "threads": 1, "batch_size": 10}
    return [TrainConfig(**{**base, **kw}, seed=seed) for seed in SEEDS]


def replica_history(cfgs, datas, **kw) -> list[list[dict]]:
    """Per replica, its metrics epoch by epoch."""
    per_epoch = []
    fit_replicas(cfgs, datas, "cpu", on_epoch=lambda ms, _state: per_epoch.append(ms), **kw)
    return [list(rows) for rows in zip(*per_epoch)]


def single_history(cfg, data) -> list[dict]:
    rows = []
    fit(cfg, data, "cpu", on_epoch=lambda m, _s: rows.append(m))
    return rows


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def equal(a: list[dict], b: list[dict]) -> bool:
    a, b = untimed(a), untimed(b)
    return len(a) == len(b) and all(x.keys() == y.keys() and all(
        x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k])) for k in x) for x, y in zip(a, b))


@pytest.mark.parametrize("kw", [
    pytest.param({"options": {"dropout": True}}, id="lenet-dropout"),  # each replica its own dropout stream
    pytest.param({"arch": "linear", "shift": 1.0, "repair": True}, id="linear-adam-shift-repair"),
])
def test_in_turn_gives_each_seed_exactly_its_own_run(kw, datas):
    cfgs = configs(**kw)
    together = replica_history(cfgs, datas)
    for cfg, data, rows in zip(cfgs, datas, together):
        assert equal(rows, single_history(cfg, data)), cfg.seed
        assert all(r["time_s"] > 0 for r in rows)


def test_in_turn_resumes_bit_for_bit(datas):
    cfgs = configs(epochs=3, options={"dropout": True})
    full = replica_history(cfgs, datas)
    saved = {}

    def checkpoint(metrics, state):
        if metrics[0]["epoch"] == 1:
            buffer = io.BytesIO()
            torch.save(state(), buffer)  # serialised at once, as a trial checkpoint is
            saved["bytes"] = buffer.getvalue()

    fit_replicas(cfgs, datas, on_epoch=checkpoint)
    snapshot = torch.load(io.BytesIO(saved["bytes"]), weights_only=False)
    resumed = replica_history(cfgs, datas, resume=snapshot)
    for a, b in zip(full, resumed):
        assert equal(a[1:], b)
    with pytest.raises(ConfigError, match="not from an in-turn run"):
        replica_history(cfgs, datas, resume={"engine": "vectorized", "epoch": 1})


def test_vectorized_matches_separate_runs_without_dropout(datas):
    """Without dropout the only difference is float summation order (grouped vs plain convolutions)."""
    cfgs = configs(options={"dropout": False})
    together = replica_history(cfgs, datas, vectorize=True)
    for cfg, data, rows in zip(cfgs, datas, together):
        for a, b in zip(rows, single_history(cfg, data)):
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
    pytest.param({"aux_weight": 0.5, "options": {"strategy": "pair", "weight_sharing": False}}, id="pair-unshared"),
    pytest.param({"arch": "resnet", "aux_weight": 0.5, "options": {"strategy": "two_channel", "channels": 4}},
                 id="resnet-two-channel"),
    pytest.param({"arch": "linear", "val_fraction": 0.2, "shift": 1.0, "repair": True}, id="linear-val-shift-repair"),
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
    saved = {}

    def checkpoint(metrics, state):
        if metrics[0]["epoch"] == 2:
            buffer = io.BytesIO()
            torch.save(state(), buffer)
            saved["bytes"] = buffer.getvalue()

    fit_replicas(cfgs, datas, on_epoch=checkpoint, vectorize=True)
    snapshot = torch.load(io.BytesIO(saved["bytes"]), weights_only=False)
    resumed = replica_history(cfgs, datas, vectorize=True, resume=snapshot)
    for a, b in zip(full, resumed):
        assert equal(a[2:], b)
    with pytest.raises(ConfigError, match="not from a vectorized run"):
        replica_history(cfgs, datas, vectorize=True, resume={"replicas": []})


@pytest.mark.parametrize("cfgs, words", [
    ([], "no replica"),
    ([TrainConfig(arch="linear", seed=0), TrainConfig(arch="linear", seed=0)], "distinct seeds"),
    ([TrainConfig(arch="linear", seed=0), TrainConfig(arch="linear", seed=1, lr=0.1)], "every setting but the seed"),
])
def test_replicas_must_be_one_configuration(cfgs, words):
    with pytest.raises(ConfigError, match=words):
        fit_replicas(cfgs, [], "cpu")
