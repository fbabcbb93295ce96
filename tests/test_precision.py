"""Training options that trade exactness or measurements for speed: `precision` (fp32 | bf16 autocast) and
`train_eval` (the training set's error every epoch | at the final epoch only), from the loop to the rows.
fp32 staying bit for bit what it was is tests/test_golden.py's job."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from report_fixtures import write_experiment
from train_helpers import history, replica_history, small_configs, small_datas

from tune_digits import reproduce as reproduce_module, results
from tune_digits.cli import main
from tune_digits.report import analyse, draw_figure, figure_curves
from tune_digits.report.load import load_experiment
from tune_digits.report.ablation import group_rows
from tune_digits.report.figure import FigureTarget
from tune_digits.reproduce import network_precision, protocol_space
from tune_digits.tuning import plan_search
from tune_digits.spaces import SpaceError, apply_overrides, load_space, parse_space
from tune_digits.train import ConfigError, TrainConfig, fit

REFERENCE = Path(__file__).resolve().parents[1] / "reference"

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def datas():
    return small_datas(SEEDS)


def configs(**kw) -> list[TrainConfig]:
    return small_configs(SEEDS, **kw)


class ConvDtypes:
    """The dtypes of every convolution's output while active (a global forward hook: it sees the models that
    the engines build, and the vmapped calls of the vectorized engine)."""

    def __enter__(self):
        self.seen = set()

        def hook(module, args, output):
            if isinstance(module, torch.nn.Conv2d):
                self.seen.add(output.dtype)

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def train(cfgs, datas, engine: str):
    """Per replica, its metrics epoch by epoch: alone (`fit`), or with the other replicas in one engine."""
    if engine == "fit":
        return [history(cfgs[0], datas[0])]
    return replica_history(cfgs, datas, vectorize=engine == "vectorized")


@pytest.mark.parametrize("engine", ["fit", "in_turn", "vectorized"])
def test_bf16_reaches_the_loop_and_stays_close_to_fp32(engine, datas):
    """Convolutions run in bfloat16 under bf16 (float32 otherwise); the numbers move, but only a little:
    after 2 epochs the training loss agrees to better than 1 %."""
    with ConvDtypes() as fp32:
        exact = train(configs(), datas, engine)
    with ConvDtypes() as bf16:
        mixed = train(configs(precision="bf16"), datas, engine)
    assert fp32.seen == {torch.float32} and bf16.seen == {torch.bfloat16}
    for a, b in zip(exact, mixed):
        losses = [(x["train_loss"], y["train_loss"]) for x, y in zip(a, b)]
        assert all(x != y for x, y in losses), losses  # the option really changed the arithmetic
        assert all(abs(x - y) < 0.01 * x for x, y in losses), losses


def test_bf16_keeps_float32_weights_and_optimiser_state(datas):
    states = []  # the snapshot a checkpoint stores
    fit(configs(precision="bf16", epochs=1)[0], datas[0], on_epoch=lambda m, state: states.append(state()))
    snapshot = states[-1]
    weights = [t for t in snapshot["models"][0].values() if t.is_floating_point()]
    momenta = [s["momentum_buffer"] for s in snapshot["optimizers"][0]["state"].values()]
    assert weights and momenta and {t.dtype for t in weights + momenta} == {torch.float32}


@pytest.mark.parametrize("engine", ["in_turn", "vectorized"])
def test_final_only_train_eval_leaves_every_other_number_as_it_was(engine, datas):
    every = train(configs(network="linear", epochs=3), datas, engine)
    final = train(configs(network="linear", epochs=3, train_eval="final"), datas, engine)
    for a, b in zip(every, final):
        assert [math.isnan(r["train_error"]) for r in b] == [True, True, False]
        for x, y in zip(a, b):
            for key in ("train_loss", "test_error", "test_digit_error"):
                assert x[key] == y[key]
        assert a[-1]["train_error"] == b[-1]["train_error"]


@pytest.mark.parametrize("field, value, words", [
    ("precision", "fp16", r"precision must be one of \['fp32', 'bf16'\]"),
    ("train_eval", "sometimes", r"train_eval must be one of \['every', 'final'\]"),
    ("precision", 16, "precision must be a string"),
])
def test_bad_values_are_one_clear_error(field, value, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**{field: value})


def test_the_cli_takes_the_options_and_refuses_bad_ones():
    ok = CliRunner().invoke(main, ["train", "linear", "--pairs", "20", "--epochs", "1", "--cpu",
                                   "--set", "precision=bf16", "--set", "train_eval=final"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, ["search", "lenet", "--set", "precision=fp8", "--dry-run"])
    assert bad.exit_code != 0 and "precision must be one of" in bad.output and "Traceback" not in bad.output


# ---------------------------------------------------------------- the protocol: screens lean, finals whole

def test_screens_measure_the_training_error_at_the_final_epoch_only(tmp_path):
    space = load_space("lenet")
    screen, final = (plan_search(space, stage=s, output=tmp_path) for s in ("screen", "final"))
    assert screen.fixed["train_eval"] == "final" and "train_eval" not in final.fixed
    every = plan_search(apply_overrides(space, {"train_eval": "every"}), stage="screen", output=tmp_path)
    assert every.fixed["train_eval"] == "every"
    # What is measured, not what is trained: a screen started before the option keeps its fingerprint.
    assert every.fingerprint() == screen.fingerprint()
    raw = {"network": "lenet", "stages": {"screen": {"pairs": 50, "seeds": 1, "train_eval": "every"}}}
    assert "train_eval" not in plan_search(parse_space(raw, tmp_path / "x.yaml"), stage="screen",
                                           output=tmp_path).fixed
    raw["stages"]["screen"]["train_eval"] = "never"
    with pytest.raises(SpaceError, match="stages.screen.train_eval: must be one of every, final"):
        parse_space(raw, tmp_path / "x.yaml")


def test_reproduce_precision_is_a_fixed_value_of_every_stage(tmp_path):
    assert "precision" not in protocol_space("resnet").fixed  # fp32: the committed experiments still resume
    space = protocol_space("resnet", quick=True, precision="bf16")
    assert space.fixed["precision"] == "bf16" and space.grid["kernel_size"] == [5, 7]
    plan = plan_search(space, stage="final", output=tmp_path)
    assert plan.fixed["precision"] == "bf16"
    bad = CliRunner().invoke(main, ["reproduce", "--precision", "fp16"])
    assert bad.exit_code != 0 and "fp16" in bad.output


def test_reproduce_auto_precision_is_bf16_where_measured_faster_and_resumes_what_started(tmp_path, monkeypatch):
    networks = ("linear", "lenet", "resnet", "alexnet", "mine")
    monkeypatch.setattr(reproduce_module, "cpu_does_bf16", lambda: True)
    assert [network_precision(n, "auto", tmp_path) for n in networks] == ["fp32", "bf16", "bf16", "bf16", "fp32"]
    monkeypatch.setattr(reproduce_module, "cpu_does_bf16", lambda: False)  # emulated bf16: slower than fp32
    assert {network_precision(n, "auto", tmp_path) for n in networks} == {"fp32"}
    assert network_precision("resnet", "auto", tmp_path, on_gpu=True) == "bf16"
    assert network_precision("resnet", "fp32", tmp_path) == "fp32"
    # A screen started in fp32 (the committed one has no precision: fp32) resumes in fp32, not as another search.
    started = tmp_path / "resnet" / "screen"
    started.mkdir(parents=True)
    meta = json.loads((REFERENCE / "resnet" / "screen" / "search.json").read_text())
    (started / "search.json").write_text(json.dumps(meta))
    assert network_precision("resnet", "auto", tmp_path) == "fp32"
    meta["fixed"]["precision"] = "bf16"
    (started / "search.json").write_text(json.dumps(meta))
    assert network_precision("resnet", "auto", tmp_path) == "bf16"
    assert network_precision("resnet", "fp32", tmp_path) == "fp32"  # asked for: the search says if it conflicts


# ---------------------------------------------------------------- rows and the report

def test_rows_without_the_new_columns_read_as_fp32_every_epoch(tmp_path):
    path = tmp_path / "old.csv"
    row = results.make_row("t0", 0, {"epoch": 1, "train_loss": 1.0, "train_error": 2.0, "test_digit_error": 3.0,
                                     "test_error": 4.0}, {"lr": 0.05})
    results.write_csv(path, row, [row])
    (rec,) = results.read_rows(path)
    assert (rec["precision"], rec["train_eval"]) == ("fp32", "every")


def test_report_and_figure_take_a_screen_without_per_epoch_training_error(tmp_path):
    """Train error at the final epoch only: Table I shows it (final epoch), the best-epoch view has none (no
    mean over the seeds whose best epoch happens to be the final: seed 2's), Figure 1 draws the one point."""
    def at(seed, epoch):
        test = 3.0 + seed + {1: 2.0, 2: 0.0, 3: 1.0}[epoch] - (1.5 if (seed, epoch) == (2, 3) else 0.0)
        return {"train_loss": 1.0 / epoch, "train_error": 5.0 + seed if epoch == 3 else math.nan,
                "test_digit_error": 1.5 * test, "test_error": test}

    path = write_experiment(tmp_path, "lenet", "screen", [({"kernel_size": 3}, at), ({"kernel_size": 5}, at)],
                            ["kernel_size"], fixed={"train_eval": "final"})
    a = analyse(load_experiment(path, "lenet"))
    best = a.configs.iloc[0]
    assert best["train_error_mean"] == pytest.approx(6.0) and math.isnan(best["best_epoch_train_error_mean"])
    # Tables III/IV and --compare group repetitions the same way (report/ablation.py).
    for view, has_train in (("honest", True), ("best_epoch", False)):
        rows = group_rows(a, "kernel_size", "pooled", view, a.configs)
        assert [not math.isnan(r["train_error_mean"]) for r in rows] == [has_train, has_train]
    curves = figure_curves(FigureTarget(a, a.best))
    assert curves["train_error_mean"].isna().tolist() == [True, True, False]
    fig = draw_figure(curves, "t")
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts == ["measured at epoch 3 only"]
