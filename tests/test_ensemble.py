"""An ensemble inside a trial (`ensemble: k`): k members with their own initial weights trained on the same pairs,
each on its own loss, evaluated on their averaged probabilities; `ensemble: 1` is the plain model."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner
from train_helpers import history, replica_history, same_metrics, small_configs, small_datas

from tune_digits.cli import main
from tune_digits.models import Ensemble, PairNet, count_parameters, create_model
from tune_digits.tuning import RunOptions, SearchError, plan_search
from tune_digits.spaces import load_space
from tune_digits.train import ConfigError, InTurn, TrainConfig, evaluate, fit_replicas, pair_loss, parameter_count

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def datas():
    return small_datas(SEEDS)


def test_members_differ_in_init_and_the_first_is_the_plain_model():
    plain = InTurn([TrainConfig(network="lenet", seed=3)], torch.device("cpu")).models[0]
    ensemble = InTurn([TrainConfig(network="lenet", seed=3, ensemble=3)], torch.device("cpu")).models[0]
    assert isinstance(plain, PairNet) and isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    first, second, third = (dict(m.named_parameters()) for m in ensemble.members)
    name = next(iter(first))  # the first convolution's weights
    assert torch.equal(first[name], dict(plain.named_parameters())[name])
    assert not torch.equal(first[name], second[name]) and not torch.equal(second[name], third[name])
    one = count_parameters(plain)
    assert count_parameters(ensemble) == parameter_count(TrainConfig(network="lenet", ensemble=3)) == 3 * one


@pytest.mark.parametrize("strategy", ["digits", "prob", "pair"])
def test_evaluation_averages_the_members_probabilities(strategy, datas):
    torch.manual_seed(0)
    members = [create_model("lenet", strategy=strategy) for _ in range(3)]
    ensemble = Ensemble(members).eval()
    x, _, classes = datas[0].train_input[:40], datas[0].train_target[:40], datas[0].train_classes[:40]
    with torch.no_grad():
        outs = [m.eval()(x) for m in members]
        p = torch.stack([o.digits.softmax(-1) for o in outs]).mean(0)
        if strategy == "pair":
            p_true = torch.stack([o.compare.sigmoid() for o in outs]).mean(0)
            want = (p_true > 0.5).long()
        elif strategy == "prob":
            want = (torch.einsum("bi,ij,bj->b", p[:, 0], torch.triu(torch.ones(10, 10)), p[:, 1]) >= 0.5).long()
        else:
            d = p.argmax(-1)
            want = (d[:, 0] <= d[:, 1]).long()
        out = ensemble(x)
    assert torch.allclose(out.digits.softmax(-1), p, atol=1e-6)
    assert torch.equal(ensemble.predict(out), want)
    digit_error = 100 * (p.argmax(-1) != classes).float().mean().item()
    assert evaluate(ensemble, x, classes, want)[0] == pytest.approx(digit_error)
    assert evaluate(ensemble, x, classes, want)[1] == 0.0


def test_training_loss_is_each_members_own(datas):
    torch.manual_seed(0)
    ensemble = Ensemble([create_model("lenet", aux_loss=True) for _ in range(2)]).train()
    x, y, c = datas[0].train_input[:10], datas[0].train_target[:10], datas[0].train_classes[:10]
    config = TrainConfig(network="lenet")
    out = ensemble(x)
    assert out.digits is None and len(out.members) == 2
    assert pair_loss(out, c, y, config) == sum(pair_loss(m, c, y, config) for m in out.members)


def test_seeds_in_turn_are_each_seeds_own_run_and_differ_from_one_member(datas):
    cfgs = small_configs(SEEDS, ensemble=2)
    together = replica_history(cfgs, datas)
    for cfg, data, rows in zip(cfgs, datas, together):
        assert same_metrics(rows, history(cfg, data)), cfg.seed
    single = history(dataclasses.replace(cfgs[0], ensemble=1), datas[0])
    assert together[0][-1]["train_loss"] != single[-1]["train_loss"]


def test_default_is_absent_from_plans_and_fingerprints(tmp_path):
    plan = plan_search(load_space("best"), stage="screen", output=tmp_path)
    assert "ensemble" not in plan.trial_base() and TrainConfig().ensemble == 1


def test_bad_values_are_one_line_errors(tmp_path, datas):
    for bad in (0, 21, 2.5, True):
        with pytest.raises(ConfigError, match="ensemble must be") as err:
            TrainConfig.from_flat({"network": "lenet", "ensemble": bad})
        assert "\n" not in str(err.value)
    with pytest.raises(SearchError, match="--vectorize cannot train an ensemble inside a trial"):
        plan_search(load_space("levers"), stage="screen", output=tmp_path,
                    options=RunOptions(seeds_per_trial=3, vectorize=True))
    with pytest.raises(ConfigError, match="vectorized engine cannot train an ensemble"):
        fit_replicas(small_configs(SEEDS, ensemble=2), datas, vectorize=True)
    result = CliRunner().invoke(main, ["train", "lenet", "--set", "ensemble=0"])
    assert result.exit_code != 0 and result.stderr.strip().splitlines() == [
        "error: ensemble must be between 1 and 20 members"], result.output


def test_train_summary_counts_every_members_parameters():
    result = CliRunner().invoke(main, ["train", "lenet", "--pairs", "20", "--epochs", "1", "--set", "ensemble=2",
                                       "--set", "threads=1"])
    assert result.exit_code == 0, result.output
    one = parameter_count(TrainConfig(network="lenet"))
    assert f"{2 * one:,} parameters × 2 members" in result.output.splitlines()[0]
