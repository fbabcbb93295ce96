"""The epoch loop (tune_digits/train/loop.py) with one seed: learning, metrics, determinism, resuming,
the validation split, re-pairing and the loss."""
from __future__ import annotations

import functools
import math

import pytest
import torch
from train_helpers import history, replica_history, same_metrics, snapshot_after

from tune_digits.data import compare_target, generate_pair_sets
from tune_digits.models import PairOutput
from tune_digits.train import METRICS, ConfigError, TrainConfig, fit, pair_loss, train_once

# Small but real: 60 pairs of real MNIST, one thread (the suite shares 2 cores).
PAIRS = 60


@pytest.fixture(scope="module")
def pairs():
    return generate_pair_sets(PAIRS, seed=0)


def config(**kw) -> TrainConfig:
    base = {"network": "lenet", "pairs": PAIRS, "epochs": 2, "seed": 0, "threads": 1, "batch_size": 10}
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------- learning and metrics

@pytest.mark.parametrize("network", ["linear", "lenet"])
def test_short_training_lowers_the_loss(network, pairs):
    rows = history(config(network=network, epochs=4), pairs)
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
    last = fit(config(network="linear", epochs=2), pairs, on_epoch=lambda m, s: rows.append(m))
    assert last == rows[-1]


@pytest.mark.parametrize("strategy", ["prob", "pair", "two_channel"])
def test_other_strategies_train(strategy, pairs):
    rows = history(config(network="linear", epochs=2, digit_loss_weight=0.5, options={"strategy": strategy}), pairs)
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["test_error"]) for r in rows)
    assert math.isfinite(rows[-1]["test_digit_error"])


def test_separate_trunks_train(pairs):
    rows = history(config(network="linear", epochs=2, options={"weight_sharing": False}), pairs)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_train_once_draws_its_own_data():
    last = train_once(config(network="linear", pairs=20, epochs=1, test_pairs=15), device="cpu")
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


@pytest.mark.parametrize("kw", [
    pytest.param({"network": "lenet", "options": {"dropout": True}}, id="lenet-sgd-cosine-dropout"),
    pytest.param({"network": "linear", "repair": True, "lr_schedule": "constant"}, id="linear-adam-repair"),
    pytest.param({"network": "linear", "val_fraction": 0.2}, id="linear-val"),
    pytest.param({"network": "lenet", "swap": True, "repair": True}, id="lenet-swap-repair"),
    pytest.param({"network": "lenet", "rotate": 15.0, "shift": 1.0, "options": {"dropout": True}},
                 id="lenet-rotate-shift-dropout"),
])
def test_resume_from_a_snapshot_matches_an_uninterrupted_run(kw, pairs):
    cfg = config(epochs=4, **kw)
    full = history(cfg, pairs)

    snapshot = snapshot_after(2, functools.partial(fit, cfg, pairs))
    assert snapshot["epoch"] == 2
    resumed = history(cfg, pairs, resume=snapshot)
    assert [r["epoch"] for r in resumed] == [3, 4]
    assert same_metrics(full[2:], resumed)
    assert resumed[-1]["time_s"] >= snapshot["time_s"]  # the clock continues


# ---------------------------------------------------------------- validation split and re-pairing

def test_val_fraction_holds_out_the_last_train_pairs(pairs):
    n_val = int(PAIRS * 0.25)
    held_out = history(config(network="linear", epochs=2, val_fraction=0.25), pairs)
    for m in held_out:
        assert 0 <= m["val_error"] <= 100 and 0 <= m["val_digit_error"] <= 100
        assert (m["val_error"] * n_val / 100) == pytest.approx(round(m["val_error"] * n_val / 100))
    # Training on the first N - n_val pairs only is exactly the run without them.
    keep = PAIRS - n_val
    truncated = pairs._replace(train_input=pairs.train_input[:keep], train_target=pairs.train_target[:keep],
                               train_classes=pairs.train_classes[:keep])
    plain = history(config(network="linear", epochs=2, pairs=keep), truncated)
    for a, b in zip(held_out, plain):
        for key in ("train_loss", "train_error", "test_digit_error", "test_error"):
            assert a[key] == b[key], key


def test_repair_repairs_the_training_digits_every_epoch(pairs):
    states = []
    fit(config(network="linear", epochs=2, repair=True), pairs, on_epoch=lambda m, s: states.append(s()))
    digit_of = {img.numpy().tobytes(): int(d) for img, d in
                zip(pairs.train_input.reshape(-1, 14, 14), pairs.train_classes.reshape(-1))}
    previous = pairs.train_classes
    for state in states:
        # Snapshots keep the replica axis: one seed is replica 0 of 1.
        x, c, y = state["train_x"][0], state["train_c"][0], state["train_y"][0]
        # The same 2N digits, new partners, every image still carries its own class, targets recomputed.
        assert sorted(c.reshape(-1).tolist()) == sorted(pairs.train_classes.reshape(-1).tolist())
        assert [digit_of[img.numpy().tobytes()] for img in x.reshape(-1, 14, 14)] == c.reshape(-1).tolist()
        assert torch.equal(y, compare_target(c))
        assert not torch.equal(c, previous)
        previous = c


def test_swap_trains_on_pairs_swapped_afresh_every_epoch(pairs, monkeypatch):
    """Every batch the engine steps on holds the drawn pairs, some turned round, each digit with its own label and
    each pair with the target of its order; each epoch turns other pairs round."""
    from tune_digits.train.engines import InTurn

    batches = []
    step = InTurn.step
    monkeypatch.setattr(InTurn, "step", lambda self, x, c, y: batches.append((x[0], c[0], y[0])) or step(self, x, c, y))
    fit(config(network="linear", epochs=2, swap=True), pairs)
    # Each drawn image's (pair, place in the pair); MNIST's images here are distinct.
    where = {img.numpy().tobytes(): (i, k) for i, pair in enumerate(pairs.train_input) for k, img in enumerate(pair)}
    assert len(where) == 2 * PAIRS
    per_epoch = len(batches) // 2
    swapped_sets = []
    for epoch in range(2):
        swapped = set()
        for x, c, y in batches[epoch * per_epoch:(epoch + 1) * per_epoch]:
            for pair, classes in zip(x, c):
                (i, k), (j, m) = (where[img.numpy().tobytes()] for img in pair)
                assert i == j and {k, m} == {0, 1}  # the drawn partners, in one order or the other
                drawn = pairs.train_classes[i]
                assert torch.equal(classes, drawn.flip(0) if k else drawn)
                if k:
                    swapped.add(i)
            assert torch.equal(y, compare_target(c))
        swapped_sets.append(swapped)
    assert all(0.2 * PAIRS < len(s) < 0.8 * PAIRS for s in swapped_sets), swapped_sets
    assert swapped_sets[0] != swapped_sets[1]


@pytest.mark.parametrize("lever", [{"rotate": 20.0}, {"elastic": 0.5}], ids=["rotate", "elastic"])
def test_rotation_and_elastic_distortion_reach_the_loop(lever, pairs, monkeypatch):
    """The engine steps on rotated or bent digits (drawn from the replica's data-order generator); the measured
    pairs are the drawn ones."""
    from tune_digits.train.engines import InTurn

    batches = []
    step = InTurn.step
    monkeypatch.setattr(InTurn, "step", lambda self, x, c, y: batches.append(x[0]) or step(self, x, c, y))
    plain = history(config(network="linear", epochs=1), pairs)
    untouched, batches[:] = list(batches), []
    turned = history(config(network="linear", epochs=1, **lever), pairs)
    assert len(batches) == len(untouched)
    assert all(not torch.allclose(a, b) for a, b in zip(batches, untouched))
    assert turned[0]["train_loss"] != plain[0]["train_loss"]
    assert same_metrics(turned, history(config(network="linear", epochs=1, **lever), pairs))


def test_threads_follow_the_config(pairs):
    fit(config(network="linear", epochs=1, threads=1), pairs)
    assert torch.get_num_threads() == 1


# ---------------------------------------------------------------- one seed is the replica loop with R = 1

def test_fit_is_one_replica_and_their_snapshots_interchange(pairs):
    cfg = config(epochs=3, options={"dropout": True})
    alone = history(cfg, pairs)
    [one] = replica_history([cfg], [pairs])
    assert same_metrics(alone, one)
    # A snapshot of `fit` resumes `fit_replicas` of that one seed in turn: the same engine and state.
    snapshot = snapshot_after(1, functools.partial(fit, cfg, pairs))
    [resumed] = replica_history([cfg], [pairs], resume=snapshot)
    assert same_metrics(alone[1:], resumed)


@pytest.mark.parametrize("snapshot", [
    pytest.param({"engine": "vectorized", "format": 2, "epoch": 1, "shuffle_rngs": [None]}, id="vectorized"),
    pytest.param({"replicas": [{"epoch": 1}]}, id="in-turn-before-the-replica-loop"),
])
def test_fit_refuses_a_snapshot_of_another_engine_in_one_line(snapshot, pairs):
    with pytest.raises(ConfigError) as err:
        fit(config(network="linear"), pairs, resume=snapshot)
    assert "not from an in-turn run" in str(err.value) and "\n" not in str(err.value)


def test_a_fit_snapshot_from_before_the_replica_loop_still_resumes(pairs):
    """Format 1 (one model, no replica axis) is what single-seed trials checkpointed before; checked once
    against a snapshot written by that code too."""
    cfg = config(epochs=3, repair=True, options={"dropout": True})
    full = history(cfg, pairs)
    new = snapshot_after(1, functools.partial(fit, cfg, pairs))
    old = {"epoch": new["epoch"], "time_s": new["time_s"], "model": new["models"][0],
           "optimizer": new["optimizers"][0], "scheduler": new["schedulers"][0], "shuffle_rng": new["shuffle_rngs"][0],
           **new["rngs"][0], **{k: new[k][0] for k in ("train_x", "train_y", "train_c")}}
    assert same_metrics(full[1:], history(cfg, pairs, resume=old))


# ---------------------------------------------------------------- the loss

def test_pair_loss_adds_the_weighted_auxiliary_terms():
    torch.manual_seed(0)
    digits, side, compare = torch.randn(4, 2, 10), torch.randn(4, 2, 10), torch.randn(4)
    classes, target = torch.randint(0, 10, (4, 2)), torch.tensor([1, 0, 1, 1])
    digit_ce = torch.nn.functional.cross_entropy(digits.reshape(-1, 10), classes.reshape(-1))
    side_ce = torch.nn.functional.cross_entropy(side.reshape(-1, 10), classes.reshape(-1))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(compare, target.float())
    cfg = config(digit_loss_weight=0.5, side_loss_weight=0.3)
    # The digits strategy trains on the digits alone; a learned comparison adds digit_loss_weight × the digit loss.
    assert torch.allclose(pair_loss(PairOutput(digits, None, None), classes, target, cfg), digit_ce)
    assert torch.allclose(pair_loss(PairOutput(digits, compare, None), classes, target, cfg), bce + 0.5 * digit_ce)
    assert torch.allclose(pair_loss(PairOutput(digits, None, side), classes, target, cfg), digit_ce + 0.3 * side_ce)


def test_label_smoothing_moves_every_term_by_its_closed_form():
    torch.manual_seed(0)
    digits, side, compare = torch.randn(4, 2, 10), torch.randn(4, 2, 10), torch.randn(4)
    classes, target = torch.randint(0, 10, (4, 2)), torch.tensor([1, 0, 1, 1])
    eps = 0.2
    F = torch.nn.functional

    def smoothed_ce(logits):  # (1 - ε) × the plain cross-entropy + ε × the mean over classes of -log p
        logp = logits.reshape(-1, 10).log_softmax(-1)
        return (-(1 - eps) * logp.gather(1, classes.reshape(-1, 1)).squeeze(1) - eps * logp.mean(1)).mean()

    # BCE(z, t) = softplus(z) - t·z, so smoothing t = y(1 - ε) + ε/2 adds ε × mean((y - 1/2)·z).
    bce = F.binary_cross_entropy_with_logits(compare, target.float()) + eps * ((target - 0.5) * compare).mean()
    plain = config(digit_loss_weight=0.5, side_loss_weight=0.3)
    smooth = config(digit_loss_weight=0.5, side_loss_weight=0.3, label_smoothing=eps)
    out = PairOutput(digits, compare, side)
    assert torch.allclose(pair_loss(out, classes, target, smooth), bce + 0.5 * smoothed_ce(digits) + 0.3 * smoothed_ce(side))
    assert torch.allclose(pair_loss(PairOutput(digits, None, None), classes, target, smooth), smoothed_ce(digits))
    assert not torch.allclose(pair_loss(out, classes, target, smooth), pair_loss(out, classes, target, plain))
    # 0 is off: exactly the plain loss.
    assert torch.equal(pair_loss(out, classes, target, config(digit_loss_weight=0.5, side_loss_weight=0.3,
                                                              label_smoothing=0.0)), pair_loss(out, classes, target, plain))


def test_label_smoothing_reaches_the_loop(pairs):
    # A smoothed digit loss cannot reach 0: its floor is the entropy of the smoothed labels, far above the plain one's.
    plain, smooth = (history(config(network="linear", epochs=3, label_smoothing=e), pairs) for e in (0.0, 0.3))
    assert all(s["train_loss"] > p["train_loss"] for s, p in zip(smooth, plain))


def test_fixed_batch_order_trains_on_the_drawn_order_every_epoch(pairs):
    # The authors' loop: consecutive batches of the drawn pairs, the same every epoch. The shuffling generator
    # is then not drawn from, so a fixed-order run differs from a shuffled one and repeats itself exactly.
    fixed = history(config(batch_order="fixed", epochs=2), pairs)
    assert same_metrics(fixed, history(config(batch_order="fixed", epochs=2), pairs))
    assert not same_metrics(fixed, history(config(epochs=2), pairs))
    # With one batch holding every pair, order cannot matter: fixed and shuffled agree.
    whole = {"batch_size": PAIRS, "epochs": 1, "network": "linear"}
    errors = [[(m["train_error"], m["test_error"]) for m in history(config(**whole, **kw), pairs)]
              for kw in ({"batch_order": "fixed"}, {})]
    assert errors[0] == errors[1]


def test_authors_setup_trains(pairs):
    cfg = config(batch_order="fixed", standardise="split", optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
                 lr_schedule="constant", batch_size=5, side_loss_weight=1.0, options={"variant": "authors"})
    first = history(cfg, generate_pair_sets(PAIRS, seed=0, standardise="split"))
    assert first[-1]["train_loss"] < first[0]["train_loss"] and all(math.isfinite(m["train_loss"]) for m in first)
