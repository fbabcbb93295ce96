"""Beyond the paper: pair strategies, re-pairing, shift augmentation, validation split, the
shipped studies, and searches beyond the grid (random sampling, ASHA, Optuna) on a real local Ray."""
from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from tune_digits.data import compare_target, generate_pair_sets
from tune_digits.models import STRATEGIES, create_model
from tune_digits.spaces import load_space
from tune_digits.train import ConfigError, TrainConfig, fit, random_affine, random_shift, random_swap
from tune_digits.train.augment import elastic_field, tta_views


def test_prob_strategy_is_the_exact_probability_of_less_or_equal():
    model = create_model("linear", strategy="prob").eval()
    torch.manual_seed(0)
    logits = torch.randn(64, 2, 10) * 3
    out = model.forward(torch.zeros(1, 2, 14, 14))._replace(digits=logits)
    p = logits.softmax(-1)
    # Brute force: P(d1 <= d2) = Σ_{i <= j} p1(i) p2(j).
    expected = torch.tensor([sum(p[b, 0, i] * p[b, 1, j] for i, j in itertools.product(range(10), repeat=2)
                                 if i <= j) for b in range(64)])
    assert torch.equal(model.predict(out), (expected >= 0.5).long())


def test_prob_and_digits_strategies_can_disagree():
    """Argmax comparison and probability comparison are different rules, not two names for one."""
    model = create_model("linear", strategy="prob").eval()
    # First digit: 40 % a 9, 30 % each a 0 or a 1 → argmax 9 > 5, yet P(d1 <= 5) = 0.6.
    p1 = torch.zeros(10); p1[9], p1[0], p1[1] = 0.4, 0.3, 0.3
    p2 = torch.zeros(10); p2[5] = 1.0
    logits = torch.stack([p1, p2]).clamp_min(1e-9).log().unsqueeze(0)
    out = model.forward(torch.zeros(1, 2, 14, 14))._replace(digits=logits)
    assert model.predict(out).item() == 1
    digits = create_model("linear", strategy="digits").eval()
    assert digits.predict(out).item() == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_learns_on_a_small_set(strategy):
    data = generate_pair_sets(200, seed=0)
    config = TrainConfig(network="lenet", pairs=200, epochs=4, seed=0, digit_loss_weight=1.0,
                         options={"strategy": strategy, "aux_loss": False})
    losses = []
    fit(config, data, on_epoch=lambda m, _s: losses.append(m["train_loss"]))
    assert losses[-1] < losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_pair_strategy_without_aux_weight_has_no_digit_signal():
    """With digit_loss_weight 0 the pair head is trained on the target alone: the branches' logits are free to
    mean anything, so their digit error stays near chance, as in the exercise's 'siamese alone'."""
    data = generate_pair_sets(300, seed=1)
    last = {}
    fit(TrainConfig(network="lenet", pairs=300, epochs=3, seed=1, digit_loss_weight=0.0,
                    options={"strategy": "pair", "aux_loss": False}), data,
        on_epoch=lambda m, _s: last.update(m))
    assert last["test_digit_error"] > 50


def test_repair_keeps_the_digits_and_recomputes_targets():
    data = generate_pair_sets(100, seed=3)
    seen = []

    def grab(metrics, state):
        snap = state()  # the pairs carry the replica axis: one seed is replica 0 of 1
        seen.append((snap["train_x"][0].clone(), snap["train_c"][0].clone(), snap["train_y"][0].clone()))

    fit(TrainConfig(network="linear", pairs=100, epochs=2, seed=3, repair=True), data, on_epoch=grab)
    for x, c, y in seen:
        assert sorted(c.flatten().tolist()) == sorted(data.train_classes.flatten().tolist())
        assert torch.equal(y, compare_target(c))
        # The same 200 images, re-paired: every image is still one of the originals.
        assert torch.allclose(x.reshape(200, -1).sum(1).sort().values,
                              data.train_input.reshape(200, -1).sum(1).sort().values)
    assert not torch.equal(seen[0][1], data.train_classes)


def test_shift_augmentation_moves_digits_and_keeps_background():
    data = generate_pair_sets(8, seed=0)
    x = data.train_input
    g = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 2.0, g)
    assert shifted.shape == x.shape and not torch.allclose(shifted, x)
    assert torch.allclose(random_shift(x, 1e-9, torch.Generator().manual_seed(0)), x, atol=1e-5)
    assert shifted.min() >= x.min() - 1e-5  # zero padding is the background's value, not a new one


def test_swap_turns_about_half_the_pairs_round_with_their_labels():
    data = generate_pair_sets(400, seed=2)
    x, c = data.train_input, data.train_classes
    sx, sc, sy = random_swap(x, c, torch.Generator().manual_seed(0))
    flipped = (sx != x).flatten(1).any(1)  # (N,): the pairs whose first digit changed
    assert torch.equal(sx[flipped], x[flipped].flip(1)) and torch.equal(sx[~flipped], x[~flipped])
    assert torch.equal(sc[flipped], c[flipped].flip(1)) and torch.equal(sc[~flipped], c[~flipped])
    assert 150 < int(flipped.sum()) < 250  # probability 1/2 each
    # Targets come from the swapped classes: a swapped tie stays 1, every other swapped pair flips its target.
    assert torch.equal(sy, (sc[:, 0] <= sc[:, 1]).long())
    ties = c[:, 0] == c[:, 1]
    assert torch.equal(sy[flipped & ties], torch.ones_like(sy[flipped & ties])) and bool((flipped & ties).any())
    assert torch.equal(sy[flipped & ~ties], 1 - data.train_target[flipped & ~ties])
    assert torch.equal(sy[~flipped], data.train_target[~flipped])
    # Its own generator decides: the same seed swaps the same pairs, another seed others.
    assert torch.equal(random_swap(x, c, torch.Generator().manual_seed(0))[0], sx)
    assert not torch.equal(random_swap(x, c, torch.Generator().manual_seed(1))[0], sx)


def _blob_images(n: int) -> torch.Tensor:
    """(n, 2, 14, 14) images of a 2×2 bright blob on a -0.5 background, at places 3-4 pixels off the centre."""
    x = torch.full((n, 2, 14, 14), -0.5)
    for i in range(n):
        for k in range(2):
            row, col = [(2, 6), (6, 9), (9, 3), (3, 3)][(2 * i + k) % 4]
            x[i, k, row:row + 2, col:col + 2] = 2.0
    return x


def _polar(x: torch.Tensor):
    """Each digit's centre of mass above the background, relative to the image centre: (radius, angle in degrees)."""
    mass = (x - x.amin((-2, -1), keepdim=True)).reshape(-1, 14, 14)
    grid = torch.arange(14.0) - 6.5
    rows = (mass.sum(2) * grid).sum(1) / mass.sum((1, 2))
    cols = (mass.sum(1) * grid).sum(1) / mass.sum((1, 2))
    return torch.hypot(rows, cols), torch.rad2deg(torch.atan2(rows, cols))


def test_rotation_turns_each_digit_about_its_centre_by_at_most_the_bound():
    x = _blob_images(32)
    g = torch.Generator().manual_seed(0)
    turned = random_affine(x, g, rotate=20.0)
    assert turned.shape == x.shape and not torch.allclose(turned, x)
    (r0, a0), (r1, a1) = _polar(x), _polar(turned)
    change = (a1 - a0 + 180) % 360 - 180
    assert torch.allclose(r1, r0, atol=0.35)  # about the centre: the distance to it stays
    assert change.abs().max() <= 20.0 + 2.0 and change.abs().max() > 10.0  # up to the bound, either way
    assert (change > 3).any() and (change < -3).any()
    assert turned.min() >= x.min() - 1e-5  # the background stays the background
    # Nothing asked, nothing drawn: the identity, and the generator untouched (a shift alone is as it was).
    state = g.get_state()
    assert torch.allclose(random_affine(x, g), x, atol=1e-5) and torch.equal(g.get_state(), state)
    assert torch.equal(random_affine(x, torch.Generator().manual_seed(1), shift=1.5),
                       random_shift(x, 1.5, torch.Generator().manual_seed(1)))


def test_rotation_and_shift_compose_in_one_grid():
    x = _blob_images(32)
    both = random_affine(x, torch.Generator().manual_seed(0), shift=1.0, rotate=20.0)
    shifted = random_affine(x, torch.Generator().manual_seed(0), shift=1.0)
    assert not torch.allclose(both, shifted)
    # The offsets are drawn first, as a shift alone draws them, and the turn is about the image centre: each digit
    # lies where the shift alone puts it, turned about the centre (the same distance from it, at another angle).
    (r_both, a_both), (r_shift, a_shift) = _polar(both), _polar(shifted)
    assert torch.allclose(r_both, r_shift, atol=0.35)
    assert ((a_both - a_shift + 180) % 360 - 180).abs().max() > 5


def test_elastic_field_moves_each_axis_by_the_asked_rms_and_is_smooth():
    g = torch.Generator().manual_seed(0)
    field = elastic_field(400, 1.0, g) * 14 / 2  # grid units → pixels, (n, 14, 14, 2)
    inner = field[:, 4:10, 4:10]  # away from the borders, where the Gaussian sees the whole neighbourhood
    assert inner.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=0.05)
    assert inner[..., 0].std().item() == pytest.approx(inner[..., 1].std().item(), rel=0.05)
    # Smooth: neighbours move almost together (σ = 2 pixels), far pixels independently.
    near = torch.corrcoef(torch.stack([inner[:, :, :-1, 0].flatten(), inner[:, :, 1:, 0].flatten()]))[0, 1]
    far = torch.corrcoef(torch.stack([field[:, 7, 0, 0], field[:, 7, 13, 0]]))[0, 1]
    assert near > 0.85 and abs(far) < 0.15
    # Scaled, not redrawn: the same generator state gives the same shape of field, twice as far.
    assert torch.allclose(elastic_field(3, 2.0, torch.Generator().manual_seed(5)),
                          2 * elastic_field(3, 1.0, torch.Generator().manual_seed(5)))


def test_elastic_distortion_bends_digits_after_the_affine_move_and_only_when_asked():
    x = _blob_images(32)
    bent = random_affine(x, torch.Generator().manual_seed(0), shift=1.0, elastic=1.0)
    shifted = random_affine(x, torch.Generator().manual_seed(0), shift=1.0)
    assert bent.shape == x.shape and not torch.allclose(bent, shifted)
    # The field is drawn after the offsets: each blob lies near where the shift alone puts it, moved by about a pixel.
    moved = (torch.stack(_cartesian(bent)) - torch.stack(_cartesian(shifted))).norm(dim=0)
    assert 0.3 < moved.mean() < 2.5 and moved.max() < 4.5
    assert bent.min() >= x.min() - 1e-5  # the background stays the background
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    assert torch.equal(random_affine(x, g, shift=1.0, elastic=0.0),
                       random_affine(x, torch.Generator().manual_seed(1), shift=1.0))  # off: nothing more drawn
    assert not torch.equal(g.get_state(), state)
    with pytest.raises(ConfigError, match="elastic must be between 0 and 3 pixels"):
        TrainConfig(network="lenet", elastic=4.0)


def _cartesian(x: torch.Tensor):
    radius, angle = _polar(x)
    return radius * torch.cos(torch.deg2rad(angle)), radius * torch.sin(torch.deg2rad(angle))


def test_test_time_views_move_each_digit_one_whole_pixel_and_keep_the_background():
    x = torch.randn(3, 2, 14, 14)
    same, up, down, left, right = tta_views(x)
    assert torch.equal(same, x)  # the pair as it is, bit for bit
    assert torch.equal(up[..., :13, :], x[..., 1:, :]) and torch.equal(down[..., 1:, :], x[..., :13, :])
    assert torch.equal(left[..., :, :13], x[..., :, 1:]) and torch.equal(right[..., :, 1:], x[..., :, :13])
    for view, edge in ((up, up[..., 13, :]), (down, down[..., 0, :]), (left, left[..., :, 13]), (right, right[..., :, 0])):
        assert view.shape == x.shape and (edge == x.min()).all()


def test_tta_averages_the_views_at_evaluation_only():
    """tta changes what is measured, never what is trained: the same seed trains the same weights (losses equal
    epoch by epoch), and its errors are those of the mean over the views."""
    from tune_digits.models import mean_output
    from tune_digits.train.engines import evaluate

    data = generate_pair_sets(200, seed=0)
    runs = {}
    for tta in (False, True):
        rows = []
        fit(TrainConfig(network="lenet", pairs=200, epochs=3, tta=tta), data, on_epoch=lambda m, _s: rows.append(m))
        runs[tta] = rows
    assert [r["train_loss"] for r in runs[True]] == [r["train_loss"] for r in runs[False]]
    assert [r["test_error"] for r in runs[True]] != [r["test_error"] for r in runs[False]]
    model = create_model("lenet").eval()
    x, y, c = data.test_input[:50], data.test_target[:50], data.test_classes[:50]
    with torch.no_grad():
        mean = mean_output([model(view) for view in tta_views(x)])
    wrong = (model.predict(mean) != y).float().mean().item() * 100
    assert evaluate(model, x, c, y, tta=True)[1] == pytest.approx(wrong)
    with pytest.raises(ConfigError, match="tta must be true or false"):
        TrainConfig(network="lenet", tta=1)


def test_shift_is_validated():
    with pytest.raises(ConfigError, match="shift"):
        TrainConfig(network="lenet", shift=9.0)
    with pytest.raises(ConfigError, match="rotate must be between 0 and 30 degrees"):
        TrainConfig(network="lenet", rotate=45.0)


def test_validation_split_is_carved_from_the_train_pairs():
    data = generate_pair_sets(100, seed=0)
    last = {}
    fit(TrainConfig(network="linear", pairs=100, epochs=1, val_fraction=0.2), data, on_epoch=lambda m, _s: last.update(m))
    assert math.isfinite(last["val_error"]) and math.isfinite(last["val_digit_error"])
    # 20 pairs held out: an error is a multiple of 5 %.
    assert last["val_error"] % 5 == pytest.approx(0) or last["val_error"] % 5 == pytest.approx(5)


@pytest.mark.parametrize("name", ["weight_sharing", "best"])
def test_beyond_spaces_load(name):
    space = load_space(name)
    assert space.grid_size() >= 2 and space.best


def test_weight_sharing_study_covers_the_exercise_question():
    space = load_space("weight_sharing")
    assert set(space.grid["strategy"]) == {"two_channel", "pair"}
    assert set(space.grid["weight_sharing"]) == {True, False}
    assert 0.0 in space.grid["digit_loss_weight"] and any(w > 0 for w in space.grid["digit_loss_weight"])


def test_best_space_selects_on_validation_only():
    assert load_space("best").fixed["val_fraction"] > 0


# --- searches beyond the grid, on a real local Ray --------------------------------------------------


def _tiny_space(tmp_path, grid_yaml: str, fixed_extra: str = ""):
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""network: linear
fixed:
  batch_size: 10
  nodes: 16
  layers: 1
{fixed_extra}grid:
{grid_yaml}""")
    return load_space(str(path))


@pytest.mark.slow
def test_random_search_samples_distributions(tmp_path, ray_2cpus):
    from tune_digits.tuning import Algorithm, Sizes, plan_search, run_search

    space = _tiny_space(tmp_path, "  lr: {loguniform: [1.0e-4, 1.0e-2]}\n  dropout: [true, false]\n")
    plan = plan_search(space, output=tmp_path / "out", sizes=Sizes(pairs=20, reps=3, epochs=1),
                       algorithm=Algorithm(search="random", num_samples=4))
    assert plan.num_trials == 4
    outcome = run_search(plan, progress=False)
    assert outcome.finished == 4
    meta = json.loads((outcome.experiment_dir / "search.json").read_text())
    lrs = [t["config"]["lr"] for t in meta["trials"].values()]
    assert len(set(lrs)) == 4 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    # Every seed of each drawn configuration in one trial; random chooses nothing, so no validation split is
    # carved, the report ranks on test_error afterwards, and Tune's random draws are unseeded.
    assert all(t["config"]["seeds"] == [0, 1, 2] and "seed" not in t["config"] for t in meta["trials"].values())
    assert (meta["metric"], meta["fixed"].get("val_fraction"), meta["searcher_seed"]) == ("test_error", None, None)


def test_asha_stops_poor_trials_early_on_the_validation_metric(tmp_path, ray_2cpus):
    from tune_digits.tuning import Algorithm, Sizes, plan_search, run_search

    space = _tiny_space(tmp_path, "  lr: [1.0e-6, 1.0e-5, 1.0e-3, 3.0e-3]\n", fixed_extra="  val_fraction: 0.25\n")
    plan = plan_search(space, output=tmp_path / "out", sizes=Sizes(pairs=40, reps=1, epochs=8),
                       algorithm=Algorithm(scheduler="asha"))
    assert plan.metric == "val_error"
    outcome = run_search(plan, progress=False)
    assert outcome.failed == 0
    from helpers import read_trial_rows

    epochs = sorted(len(rows) for rows in read_trial_rows(outcome.experiment_dir).values())
    assert epochs[0] < 8 and epochs[-1] == 8  # some stopped early, the best ran to the end
