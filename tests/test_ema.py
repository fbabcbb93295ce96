"""Weight averaging (`ema: decay`): an exponential moving average of the weights and batch-norm statistics, updated
after every step and evaluated in their place, in both engines, snapshotted and resumed bit for bit."""
from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from train_helpers import PAIRS, history, replica_history, same_metrics, small_configs, small_datas, snapshot_after

from tune_digits.train import ConfigError, InTurn, TrainConfig, Vectorized, evaluate, fit, fit_replicas
from tune_digits.train.engines import StackedAverage, seeded_model

SEEDS = (0, 1)
DECAY = 0.8  # short memory: 6 steps an epoch at these sizes


@pytest.fixture(scope="module")
def datas():
    return small_datas(SEEDS)


def configs(**kw) -> list[TrainConfig]:
    return small_configs(SEEDS, **{"options": {"batch_norm": True}, **kw})


def test_the_average_is_the_closed_form_ema_of_every_step(datas, monkeypatch):
    """After the steps w_1 … w_T, the average is w_1 blended forward: e_1 = w_1, e_t = d·e_(t-1) + (1 - d)·w_t,
    for the weights and the batch-norm running statistics alike."""
    seen = []
    step = InTurn.step

    def recording(self, *args):
        losses = step(self, *args)
        seen.append({k: v.clone() for k, v in self.models[0].state_dict().items() if v.is_floating_point()})
        return losses

    monkeypatch.setattr(InTurn, "step", recording)
    [cfg] = configs(epochs=1, ema=DECAY)[:1]
    snapshot = snapshot_after(1, functools.partial(fit, cfg, datas[0]))
    expected = dict(seen[0])
    for weights in seen[1:]:
        expected = {k: DECAY * e + (1 - DECAY) * weights[k] for k, e in expected.items()}
    average = {k.removeprefix("module."): v for k, v in snapshot["averages"][0].items()}
    assert average["n_averaged"] == len(seen) == math.ceil(PAIRS / cfg.batch_size)
    assert any("running_mean" in k for k in expected)  # the buffers are averaged, not copied
    for name, value in expected.items():
        assert torch.allclose(average[name], value, atol=1e-6), name
        assert not torch.equal(average[name], seen[-1][name]), name  # not the trained weights


@pytest.mark.parametrize("ensemble", [1, 2])
def test_metrics_are_the_averages_and_training_is_untouched(ensemble, datas):
    cfg = configs(epochs=2, ema=DECAY, ensemble=ensemble)[0]
    averaged, plain = history(cfg, datas[0]), history(configs(epochs=2, ensemble=ensemble)[0], datas[0])
    # The trained weights follow the same steps: the same training loss, bit for bit.
    assert [r["train_loss"] for r in averaged] == [r["train_loss"] for r in plain]
    assert not same_metrics(averaged, plain)
    # Each epoch's errors are those of the averaged model in the snapshot.
    snapshot = snapshot_after(2, functools.partial(fit, cfg, datas[0]))
    model = AveragedModel(seeded_model(cfg, torch.device("cpu")), use_buffers=True)
    model.load_state_dict(snapshot["averages"][0])
    data = datas[0]
    assert evaluate(model.module, data.test_input, data.test_classes, data.test_target) == \
        (averaged[-1]["test_digit_error"], averaged[-1]["test_error"])


def test_vectorized_metrics_are_the_averages_and_training_is_untouched(datas):
    averaged = replica_history(configs(ema=DECAY), datas, vectorize=True)
    plain = replica_history(configs(), datas, vectorize=True)
    for a, b in zip(averaged, plain):
        assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
        assert not same_metrics(a, b)


def train(cfgs, engine: str, **kw):
    if engine == "fit":
        return [history(cfgs[0], small_datas(SEEDS[:1])[0], **kw)]
    return replica_history(cfgs, small_datas(SEEDS), vectorize=engine == "vectorized", **kw)


@pytest.mark.parametrize("engine", ["fit", "in_turn", "vectorized"])
def test_a_resumed_run_is_bit_for_bit_the_uninterrupted_one(engine):
    cfgs = configs(epochs=3, ema=DECAY, options={"batch_norm": True, "dropout": True}, shift=1.0)
    if engine == "fit":
        cfgs = cfgs[:1]
    full = train(cfgs, engine)
    run = functools.partial(fit, cfgs[0], small_datas(SEEDS[:1])[0]) if engine == "fit" else \
        functools.partial(fit_replicas, cfgs, small_datas(SEEDS), vectorize=engine == "vectorized")
    snapshot = snapshot_after(1, run)
    assert ("averages" if engine != "vectorized" else "average") in snapshot
    resumed = train(cfgs, engine, resume=snapshot)
    for a, b in zip(full, resumed, strict=True):
        assert same_metrics(a[1:], b)


def test_in_turn_gives_each_seed_its_own_averaged_run(datas):
    cfgs = configs(ema=DECAY)
    for cfg, data, rows in zip(cfgs, datas, replica_history(cfgs, datas)):
        assert same_metrics(rows, history(cfg, data))


def test_the_stacked_average_is_averaged_models_update():
    """The vectorized engine's average of stacked (R, ...) tensors updates as AveragedModel does each replica's."""
    cfgs = configs(ema=DECAY)
    engine = Vectorized(cfgs, torch.device("cpu"))
    models = [seeded_model(cfg, torch.device("cpu")) for cfg in cfgs]
    averages = [AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(DECAY), use_buffers=True) for m in models]
    stacked = StackedAverage(DECAY, engine.params, engine.buffers)
    torch.manual_seed(0)
    for _ in range(3):
        with torch.no_grad():
            for j, m in enumerate(models):
                for p in (*m.parameters(), *(b for b in m.buffers() if b.is_floating_point())):
                    p.add_(torch.randn_like(p))
            for name, value in (*engine.params.items(), *engine.buffers.items()):
                value.copy_(torch.stack([dict((*m.named_parameters(), *m.named_buffers()))[name] for m in models]))
        stacked.update(engine.params, engine.buffers)
        for a, m in zip(averages, models):
            a.update_parameters(m)
    for j, a in enumerate(averages):
        own = dict((*a.module.named_parameters(), *a.module.named_buffers()))
        for name, value in (*stacked.params.items(), *stacked.buffers.items()):
            assert torch.equal(value[j], own[name]), name


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vectorized_trains_an_average_close_to_in_turn(precision, datas):
    """Without dropout the engines differ by float summation order only: their averaged models' errors agree."""
    cfgs = configs(ema=DECAY, precision=precision)
    together, alone = replica_history(cfgs, datas, vectorize=True), replica_history(cfgs, datas)
    for a_rows, b_rows in zip(together, alone):
        for a, b in zip(a_rows, b_rows):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-2 if precision == "bf16" else 1e-3)
            assert abs(a["test_error"] - b["test_error"]) <= 100 * 3 / PAIRS


def test_a_snapshot_without_an_average_starts_one(datas):
    """A checkpoint of an `ema: 0` run continues under `ema: d` (Population Based Training's exploit can do that):
    the average starts from the loaded weights."""
    snapshot = snapshot_after(1, functools.partial(fit, configs(epochs=2)[0], datas[0]))
    rows = history(configs(epochs=2, ema=DECAY)[0], datas[0], resume=snapshot)
    assert [r["epoch"] for r in rows] == [2] and math.isfinite(rows[0]["test_error"])


@pytest.mark.parametrize("value", [1.0, -0.1, 1.5])
def test_ema_is_validated_in_one_line(value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(network="lenet", ema=value)
    assert str(err.value) == "ema must be 0 (off) or a decay in (0, 1)"
