"""Every registered model × option: output shapes, no NaN, parameter counts and real weight sharing."""
from __future__ import annotations

import pytest
import torch

from tune_digits.errors import UserError
from tune_digits.models import (
    STRATEGIES, PairNet, PairOutput, count_parameters, create_backbone, create_model, list_models, model_options,
    paper_models,
)

# The values each option is exercised with: the paper's Table I grid where it has one (docs/protocol.md §4).
# A new option without an entry here fails test_every_option_has_test_values, so none goes untested.
OPTION_VALUES = {
    "layers": [1, 2, 3, 5],
    "nodes": [16, 32, 64, 128, 264],
    "dropout": [True, False],
    "batch_norm": [True, False],
    "kernel_size": {"lenet": [3, 5], "resnet": [3, 5, 7]},
    "aux_loss": [True, False],
    "blocks": [1, 2, 3, 4, 5],
    "channels": [1, 2, 4, 8, 16],
    "dropout_rate": [0.0, 0.5],
    "strategy": list(STRATEGIES),
    "weight_sharing": [True, False],
    "width": [1, 2, 4],
    # The authors' AlexNet needs dropout=False (test_authors_alexnet_refuses_options_it_lacks).
    "variant": {"linear": ["ours", "authors"], "lenet": ["ours", "authors"], "resnet": ["ours", "authors"],
                "alexnet": ["ours"]},
}
# The paper's best configuration of each net and its size (docs/protocol.md §4), within ±25 %.
BEST = {
    "linear": ({"layers": 2, "nodes": 128, "dropout": False}, 42_000),
    "lenet": ({"batch_norm": True, "dropout": False, "kernel_size": 5, "aux_loss": True}, 60_000),
    "resnet": ({"batch_norm": True, "dropout": False, "blocks": 2, "channels": 16, "kernel_size": 7}, 50_000),
    "alexnet": ({}, 1_800_000),
}
BATCH = 3


def values_for(network: str, option: str) -> list:
    values = OPTION_VALUES[option]
    return values[network] if isinstance(values, dict) else values


def option_cases():
    for network in list_models():
        for option in model_options(network):
            if option in OPTION_VALUES:
                for value in values_for(network, option):
                    yield pytest.param(network, option, value, id=f"{network}-{option}={value}")


def check_output(model: PairNet, out: PairOutput, batch: int = BATCH) -> None:
    assert isinstance(out, PairOutput)
    assert out.digits is not None and out.digits.shape == (batch, 2, 10)
    if model.strategy in ("pair", "two_channel"):
        assert out.compare is not None and out.compare.shape == (batch,)
    else:
        assert out.compare is None
    for t in out:
        if t is not None:
            assert torch.isfinite(t).all()
    predicted = model.predict(out)
    assert predicted.shape == (batch,) and predicted.dtype == torch.int64
    assert set(predicted.tolist()) <= {0, 1}


def run_both_modes(model: PairNet, batch: int = BATCH) -> None:
    torch.manual_seed(0)
    x = torch.randn(batch, 2, 14, 14)
    model.train()
    out = model(x)
    check_output(model, out, batch)
    # Gradients flow and stay finite.
    loss = out.digits.logsumexp(-1).sum() + (out.compare.sum() if out.compare is not None else 0)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        out = model(x)
    check_output(model, out, batch)
    assert out.side is None  # the side classifier is for training only


def test_registry_lists_the_four_nets():
    assert list_models() == ["linear", "lenet", "resnet", "alexnet"]  # the paper's Table II order
    assert paper_models() == list_models()


def test_every_option_has_test_values():
    for network in list_models():
        missing = set(model_options(network)) - set(OPTION_VALUES)
        assert not missing, f"{network}: add test values for {sorted(missing)}"
        for option, default in model_options(network).items():
            assert default in values_for(network, option) or option == "dropout_rate", (network, option)


@pytest.mark.parametrize("network,option,value", list(option_cases()))
def test_forward_for_every_option_value(network, option, value):
    run_both_modes(create_model(network, **{option: value}))


@pytest.mark.parametrize("weight_sharing", [True, False])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("network", ["linear", "lenet", "resnet", "alexnet"])
def test_forward_for_every_strategy(network, strategy, weight_sharing):
    run_both_modes(create_model(network, strategy=strategy, weight_sharing=weight_sharing))


@pytest.mark.parametrize("network", ["linear", "lenet", "resnet"])
def test_forward_with_every_option_off_and_on_at_once(network):
    # Combinations matter too (e.g. batch norm + dropout + aux); try all-booleans-on and all-off.
    bools = [k for k, v in model_options(network).items() if isinstance(v, bool)]
    for flag in (True, False):
        run_both_modes(create_model(network, **dict.fromkeys(bools, flag)))


@pytest.mark.parametrize("batch", [1, 2])
def test_small_batches_in_eval_mode(batch):
    model = create_model("resnet").eval()
    with torch.no_grad():
        check_output(model, model(torch.randn(batch, 2, 14, 14)), batch)


def test_lenet_side_classifier_only_with_aux_loss():
    x = torch.randn(4, 2, 14, 14)
    with_aux, without = create_model("lenet", aux_loss=True).train(), create_model("lenet", aux_loss=False).train()
    side = with_aux(x).side
    assert side is not None and side.shape == (4, 2, 10) and torch.isfinite(side).all()
    assert without(x).side is None
    assert count_parameters(with_aux) > count_parameters(without)


@pytest.mark.parametrize("network", list(BEST))
def test_best_configurations_match_the_paper_size(network):
    options, paper = BEST[network]
    n = count_parameters(create_model(network, **options))
    assert 0.75 * paper <= n <= 1.25 * paper, f"{network}: {n:,} parameters vs the paper's ≈{paper:,}"


@pytest.mark.parametrize("network", list(BEST))
def test_defaults_are_the_paper_best(network):
    options, _ = BEST[network]
    defaults = model_options(network)
    assert {k: defaults[k] for k in options} == options
    assert defaults["strategy"] == "digits" and defaults["weight_sharing"] is True


@pytest.mark.parametrize("network", ["linear", "lenet", "resnet", "alexnet"])
def test_weight_sharing_is_one_trunk_reused(network):
    shared, separate = create_model(network, weight_sharing=True), create_model(network, weight_sharing=False)
    assert len(shared.trunks) == 1 and len(separate.trunks) == 2
    one = count_parameters(create_backbone(network))
    assert count_parameters(shared) == one and count_parameters(separate) == 2 * one
    # Separate trunks hold separate tensors.
    p0, p1 = (next(t.parameters()) for t in separate.trunks)
    assert p0.data_ptr() != p1.data_ptr()


@pytest.mark.parametrize("sharing", [True, False])
def test_shared_trunk_treats_both_digits_alike(sharing):
    torch.manual_seed(1)
    model = create_model("lenet", weight_sharing=sharing).eval()
    x = torch.randn(5, 2, 14, 14)
    with torch.no_grad():
        out, swapped = model(x).digits, model(x.flip(1)).digits
    # One trunk: swapping the images swaps the digit logits; two independent trunks do not.
    assert torch.allclose(out.flip(1), swapped, atol=1e-5) == sharing


def test_shared_trunk_gets_gradients_from_both_digits():
    model = create_model("linear")
    x = torch.zeros(1, 2, 14, 14)
    x[:, 1] = torch.randn(14, 14)  # only the second digit is non-zero
    model(x).digits[:, 1].sum().backward()
    first = model.trunks[0].body[1].weight.grad  # (nodes, 196): non-zero only through the second digit
    assert first is not None and first.abs().sum() > 0


def test_two_channel_uses_one_backbone_on_both_images():
    model = create_model("lenet", strategy="two_channel")
    assert len(model.trunks) == 1
    conv = model.trunks[0].block1[0]
    assert conv.in_channels == 2


def test_prediction_rules():
    model = create_model("linear")
    big = 20.0

    def onehot(d1, d2):
        logits = torch.zeros(len(d1), 2, 10)
        logits[torch.arange(len(d1)), 0, torch.tensor(d1)] = big
        logits[torch.arange(len(d1)), 1, torch.tensor(d2)] = big
        return logits

    out = PairOutput(onehot([1, 4, 7], [3, 4, 2]), None, None)
    assert model.predict(out).tolist() == [1, 1, 0]  # ties count as 1

    prob = create_model("linear", strategy="prob")
    # First digit: 5 (p=0.45) or 9 (p=0.55); second digit surely 6. argmax says 9 > 6 → 0;
    # P(d1 <= d2) = 0.45 < 0.5 → 0 too. Move mass: 5 w.p. 0.6 → argmax 5 ≤ 6 and P = 0.6 → 1.
    def two_way(p5):
        logits = torch.full((1, 2, 10), -1e4)
        logits[0, 0, 5], logits[0, 0, 9] = torch.tensor(p5).log(), torch.tensor(1 - p5).log()
        logits[0, 1, 6] = 0.0
        return PairOutput(logits, None, None)

    assert prob.predict(two_way(0.45)).tolist() == [0]
    assert prob.predict(two_way(0.6)).tolist() == [1]
    # Where argmax and probabilities disagree: d1 spread over 0..4 (each 0.15) and 9 (0.25); d2 = 5.
    logits = torch.full((1, 2, 10), -1e4)
    logits[0, 0, :5] = torch.tensor(0.15).log()
    logits[0, 0, 9] = torch.tensor(0.25).log()
    logits[0, 1, 5] = 0.0
    out = PairOutput(logits, None, None)
    assert model.predict(out).tolist() == [0] and prob.predict(out).tolist() == [1]

    learned = create_model("linear", strategy="pair")
    out = PairOutput(onehot([9], [0]), torch.tensor([2.0]), None)
    assert learned.predict(out).tolist() == [1]  # the learned head decides, not the digits


@pytest.mark.parametrize("network,options,fragment", [
    ("vgg", {}, "use one of linear, lenet, resnet, alexnet"),
    ("lenet", {"kernel_size": 7}, "kernel_size"),
    ("resnet", {"kernel_size": 4}, "kernel_size"),
    ("resnet", {"blocks": 0}, "blocks"),
    ("resnet", {"channels": 0}, "channels"),
    ("linear", {"layers": 0}, "layers"),
    ("linear", {"nodes": True}, "nodes"),
    ("lenet", {"dropout": "yes"}, "dropout"),
    ("lenet", {"kernel_size": 5.0}, "kernel_size"),
    ("lenet", {"depth": 3}, "depth"),
    ("lenet", {"width": 0}, "width"),
    ("lenet", {"width": 2, "variant": "authors"}, "width is an option of our LeNet"),
    ("linear", {"strategy": "siamese"}, "strategy"),
])
def test_bad_options_fail_with_one_line(network, options, fragment):
    with pytest.raises(UserError) as err:
        create_model(network, **options)
    message = str(err.value)
    assert fragment in message and "\n" not in message
    assert isinstance(err.value, ValueError)


# The authors' networks (github.com/Arturjssln/DeepLearningProject, Proj1/src/net.py) at their Table I bold
# configuration: the parameter counts of their code, instantiated.
AUTHORS = {
    "linear": ({"layers": 2, "nodes": 128, "dropout": False}, 43_018),
    "lenet": ({"batch_norm": True, "dropout": False, "kernel_size": 5, "aux_loss": True}, 66_000),
    "resnet": ({"batch_norm": True, "dropout": False, "blocks": 2, "channels": 16, "kernel_size": 7}, 51_370),
    "alexnet": ({"dropout": False}, 1_771_018),
}


@pytest.mark.parametrize("network", list(AUTHORS))
def test_authors_networks_have_their_parameter_counts(network):
    options, count = AUTHORS[network]
    model = create_model(network, variant="authors", **options)
    assert count_parameters(model) == count
    run_both_modes(model)


def test_authors_layers():
    lenet = create_model("lenet", variant="authors").trunks[0]
    convs = [m for m in lenet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 6), (6, 16), (16, 120)]
    assert lenet.side[1].in_features == 16 * 5 * 5  # one linear layer on the second conv block's output
    resnet = create_model("resnet", variant="authors").trunks[0]
    assert all(m.bias is not None for m in resnet.modules() if isinstance(m, torch.nn.Conv2d))
    alexnet = create_model("alexnet", variant="authors", dropout=False).trunks[0].features
    kinds = [type(m).__name__ for m in alexnet]
    assert kinds[6:9] == ["Conv2d", "Conv2d", "Conv2d"]  # no ReLU after the third and fourth convs
    assert [m.out_channels for m in alexnet if isinstance(m, torch.nn.Conv2d)] == [32, 64, 128, 256, 256]
    assert not any(isinstance(m, torch.nn.Dropout) for m in alexnet.modules())


def test_authors_dropout_placement():
    linear = create_model("linear", variant="authors", layers=3, dropout=True).trunks[0]
    # After hidden layers 2 and 3 only (ours: after all three).
    assert sum(isinstance(m, torch.nn.Dropout) for m in linear.body) == 2
    ours = create_model("linear", layers=3, dropout=True).trunks[0]
    assert sum(isinstance(m, torch.nn.Dropout) for m in ours.body) == 3
    resnet = create_model("resnet", variant="authors", dropout=True).trunks[0]
    assert isinstance(resnet.stem[1], torch.nn.Dropout) and not isinstance(resnet.head[2], torch.nn.Dropout)
    torch.manual_seed(0)
    lenet = create_model("lenet", variant="authors", dropout=True, dropout_rate=0.5).train()
    out = lenet(torch.randn(50, 2, 14, 14))
    assert (out.digits == 0).float().mean() > 0.3  # their dropout acts on the logits too


def test_authors_alexnet_refuses_options_it_lacks():
    for options in ({}, {"batch_norm": True, "dropout": False}):
        with pytest.raises(UserError, match="authors' AlexNet has no batch norm and no dropout"):
            create_model("alexnet", variant="authors", **options)
    with pytest.raises(UserError, match="variant"):
        create_model("lenet", variant="theirs")


def test_lenet_width_multiplies_its_conv_channels_only():
    wide = create_model("lenet", width=2).trunks[0]
    convs = [m for m in wide.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 64)]
    linears = [m for m in wide.classifier if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 9, 120), (120, 84), (84, 10)]
    assert count_parameters(create_model("lenet", width=1)) < count_parameters(wide) < \
        3 * count_parameters(create_model("lenet", width=1))
