"""Search spaces are data, tested as data: every shipped file loads and encodes the paper's Table I; every
kind of mistake in a file (or a --set) is one SpaceError that names the file and the key. No Ray here."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from tune_digits.errors import UserError
from tune_digits.spaces import SPACES_DIR, SpaceError, apply_overrides, list_spaces, load_space, parse_space

SHIPPED = sorted(SPACES_DIR.glob("*.yaml"))

# docs/protocol.md §4, the paper's Table I: axes, their values, and its best (bold) combination.
PAPER = {
    "linear": ({"dropout": [True, False], "nodes": [16, 32, 64, 128, 264], "layers": [1, 2, 3, 5]},
               {"dropout": False, "nodes": 128, "layers": 2}),
    "lenet": ({"batch_norm": [True, False], "dropout": [True, False], "kernel_size": [3, 5],
               "aux_loss": [True, False]},
              {"batch_norm": True, "dropout": False, "kernel_size": 5, "aux_loss": True}),
    "resnet": ({"batch_norm": [True, False], "dropout": [True, False], "blocks": [1, 2, 3, 4, 5],
                "channels": [1, 2, 4, 8, 16], "kernel_size": [3, 5, 7]},
               {"batch_norm": True, "dropout": False, "blocks": 2, "channels": 16, "kernel_size": 7}),
    "alexnet": ({}, {}),
}
GRID_SIZES = {"linear": 40, "lenet": 16, "resnet": 300, "alexnet": 1}


def raw_of(name: str) -> dict:
    return yaml.safe_load((SPACES_DIR / f"{name}.yaml").read_text())


def write(tmp_path: Path, raw, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SpaceError) as info:
        load_space(str(path))
    message = str(info.value)
    assert "\n" not in message, "a user error is one line"
    assert str(path) in message, "the error names the file"
    return message


# ---------------------------------------------------------------------------------------------------
# The shipped files


def test_the_four_paper_spaces_ship():
    assert {p.stem for p in SHIPPED} >= set(PAPER)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_space_loads_and_is_consistent(path):
    space = load_space(str(path))
    assert space.name == path.stem
    assert space.combinations() and len(space.combinations()) == space.grid_size()
    for key, value in space.best.items():
        assert value in space.grid[key], f"best.{key} is outside the grid"
    # The fixed training hyperparameters are written down (docs/protocol.md §4: the paper does not give them).
    for key in ("optimizer", "lr", "batch_size", "epochs"):
        assert key in space.fixed, f"{path.name} leaves {key} implicit"


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_spaces_encode_table_one(name):
    space = load_space(name)
    grid, best = PAPER[name]
    assert space.network == name
    assert space.grid == grid
    assert space.grid_size() == GRID_SIZES[name]
    assert space.best == best
    # docs/protocol.md §5: screening on 350 pairs; the final runs on 1,000 pairs × 20 repetitions × 25 epochs.
    assert space.stages["screen"].pairs == 350
    assert (space.stages["final"].pairs, space.stages["final"].seeds, space.stages["final"].epochs) == (1000, 20, 25)


BEYOND = sorted(p.stem for p in SHIPPED if p.stem not in PAPER and (ROOT / "reference" / p.stem / "screen").is_dir())


@pytest.mark.parametrize("name", BEYOND)
def test_a_study_declares_as_best_what_its_committed_screen_chose(name):
    """A paper space's `best:` is the paper's choice (above); a study beyond the paper declares what its own
    committed screen chose, which is what its committed final trained (and what --stage final falls back to)."""
    from tune_digits.report import best_configuration
    from tune_digits.results import SEARCH_JSON, read_meta

    space = load_space(name)
    chosen = best_configuration(ROOT / "reference" / name / "screen", name)
    assert space.best == {key: chosen[key] for key in space.best} and space.best
    final = ROOT / "reference" / name / "final"
    if final.is_dir():
        assert {k: [v] for k, v in space.best.items()} == read_meta(final / SEARCH_JSON)["grid"]


def test_load_by_name_or_path():
    assert load_space("lenet").path == load_space(str(SPACES_DIR / "lenet.yaml")).path


def test_spaces_are_found_from_any_folder_and_user_folders_come_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped spaces do not depend on the working directory
    assert ("shipped", SPACES_DIR / "lenet.yaml") in list_spaces()
    mine, env = tmp_path / "mine", tmp_path / "env"
    mine.mkdir(), env.mkdir()
    write(mine, raw_of("lenet"), "lenet")  # hides the shipped lenet
    write(env, raw_of("linear"), "tiny")
    monkeypatch.setenv("TUNE_DIGITS_SPACES", str(env))
    found = {path.stem: (origin, path) for origin, path in list_spaces(mine)}
    assert found["lenet"] == ("folder", mine / "lenet.yaml") and found["tiny"] == ("folder", env / "tiny.yaml")
    assert found["resnet"] == ("shipped", SPACES_DIR / "resnet.yaml")
    assert load_space("tiny").origin == "folder" and load_space("resnet", mine).origin == "shipped"
    assert load_space(str(mine / "lenet.yaml")).origin == "path"
    with pytest.raises(SpaceError, match="no such folder of search spaces"):
        list_spaces(tmp_path / "absent")


def test_unknown_space_name_lists_the_known_ones():
    with pytest.raises(SpaceError, match=r"unknown search space 'vgg'; known: .*lenet"):
        load_space("vgg")
    with pytest.raises(SpaceError, match="no such search-space file"):
        load_space("missing/space.yaml")


# ---------------------------------------------------------------------------------------------------
# Broken files: one clear error naming the file and the key


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "network: lenet\ngrid:\n  kernel_size: [3, 5\n  dropout: [true]\n")
    assert "not valid YAML (line" in error_of(path)


def test_a_file_that_is_not_a_mapping(tmp_path):
    assert "expected a mapping" in error_of(write(tmp_path, "- lenet\n- resnet\n"))


def _set(section: str, key: str, value):
    def mutate(raw):
        if section == "grid":
            raw["fixed"].pop(key, None)
        if section:
            raw.setdefault(section, {})[key] = value
        else:
            raw[key] = value
    return mutate


def _pop(section: str, key: str):
    def mutate(raw):
        (raw[section] if section else raw).pop(key)
    return mutate


def _stage(stage: str, key: str, value):
    def mutate(raw):
        raw["stages"][stage][key] = value
    return mutate


BROKEN = [
    # (file, change, the key the error names, words of the message)
    ("lenet", _set("", "gird", {}), "gird", "unknown key"),
    ("lenet", _pop("", "network"), "network", "missing"),
    ("lenet", _set("", "network", "vgg"), "network", "unknown network 'vgg'"),
    ("lenet", _set("fixed", "lr_rate", 0.1), "fixed.lr_rate", "unknown option lr_rate"),
    ("lenet", _set("grid", "kernal_size", [3, 5]), "grid.kernal_size", "unknown option kernal_size"),
    ("lenet", _stage("screen", "pair", 350), "stages.screen.pair", "unknown key"),
    ("lenet", _set("stages", "warmup", {"pairs": 10, "seeds": 1}), "stages.warmup", "unknown stage"),
    ("lenet", _set("best", "blocks", 2), "best.blocks", "not a grid axis"),
    # wrong types
    ("lenet", _set("", "fixed", [1, 2]), "fixed", "must be a mapping"),
    ("lenet", _set("", "description", ["a", "b"]), "description", "must be text"),
    ("lenet", _set("fixed", "batch_size", "fifty"), "fixed.batch_size", "must be an integer"),
    ("lenet", _set("grid", "batch_norm", [1, 0]), "grid.batch_norm", "true or false"),
    ("linear", _set("grid", "dropout", ["yes", "no"]), "grid.dropout", "true or false"),
    ("lenet", _set("grid", "kernel_size", 5), "grid.kernel_size", "must be a list"),
    ("lenet", _stage("screen", "pairs", True), "stages.screen.pairs", "positive integer"),
    ("lenet", _stage("final", "seeds", "20"), "stages.final.seeds", "positive integer"),
    # empty lists, repeats
    ("lenet", _set("grid", "kernel_size", []), "grid.kernel_size", "empty list"),
    ("lenet", _set("grid", "kernel_size", [3, 3]), "grid.kernel_size", "repeated values"),
    ("lenet", _set("grid", "lr", {"choice": []}), "grid.lr", "non-empty list"),
    # impossible values
    ("lenet", _set("grid", "kernel_size", [4, 5]), "grid.kernel_size", "got 4"),
    ("lenet", _set("grid", "kernel_size", {"choice": [3, 4]}), "grid.kernel_size", "got 4"),
    ("resnet", _set("grid", "blocks", [-1, 2]), "grid.blocks", "got -1"),
    ("resnet", _set("grid", "channels", [0, 16]), "grid.channels", "got 0"),
    ("linear", _set("grid", "layers", [0, 2]), "grid.layers", "got 0"),
    ("lenet", _set("fixed", "val_fraction", 1.5), "fixed.val_fraction", "val_fraction must be in [0, 1)"),
    ("lenet", _set("grid", "val_fraction", {"uniform": [0.1, 1.5]}), "grid.val_fraction", "in [0, 1)"),
    ("lenet", _set("fixed", "momentum", 1.0), "fixed.momentum", "momentum must be in [0, 1)"),
    ("lenet", _set("fixed", "epochs", 0), "fixed.epochs", "at least 1"),
    ("lenet", _set("fixed", "optimizer", "rmsprop"), "fixed.optimizer", "optimizer must be one of"),
    ("lenet", _set("fixed", "seed", 3), "fixed.seed", "set by the search"),
    ("lenet", _set("fixed", "kernel_size", 5), "grid.kernel_size", "either fixed or searched"),
    ("lenet", _set("best", "kernel_size", 7), "best.kernel_size", "not one of the grid's values"),
    ("lenet", _stage("screen", "seeds", 0), "stages.screen.seeds", "positive integer"),
    ("lenet", _set("stages", "final", {"pairs": 1000}), "stages.final", "needs pairs and seeds"),
    # distributions
    ("lenet", _set("grid", "batch_size", {"randint": [50, 10]}), "grid.batch_size", "low < high"),
    ("lenet", _set("grid", "batch_size", {"randint": [10.0, 50]}), "grid.batch_size", "integer bounds"),
    ("lenet", _set("grid", "batch_size", {"randint": [-5, 10]}), "grid.batch_size", "at least 1"),
    ("lenet", _set("grid", "batch_size", {"uniform": [10, 50]}), "grid.batch_size", "must be an integer"),
    ("lenet", _set("grid", "lr", {"loguniform": [0.0, 0.1]}), "grid.lr", "low > 0"),
    ("lenet", _set("grid", "lr", {"normal": [0.1, 1.0]}), "grid.lr", "a distribution is one of"),
    ("lenet", _set("grid", "lr", {"uniform": [0.1]}), "grid.lr", "[low, high]"),
    # PyYAML reads 1e-3 (no dot) as a string: the error says so
    ("lenet", _set("fixed", "lr", "1e-3"), "fixed.lr", "write floats with a dot"),
    ("lenet", _set("grid", "lr", ["1e-3", 0.1]), "grid.lr", "write floats with a dot"),
    ("lenet", _set("grid", "lr", {"loguniform": ["1e-3", 0.1]}), "grid.lr", "1.0e-3, not 1e-3"),
]


@pytest.mark.parametrize("network, change, key, words", BROKEN,
                         ids=[f"{b[2]}:{b[3][:24]}" for b in BROKEN])
def test_a_broken_space_names_file_and_key(tmp_path, network, change, key, words):
    raw = raw_of(network)
    change(raw)
    message = error_of(write(tmp_path, raw, network))
    assert f": {key}: " in message
    assert words in message


def test_floats_without_a_dot_in_the_file_itself(tmp_path):
    text = (SPACES_DIR / "linear.yaml").read_text().replace("lr: 2.0e-3", "lr: 2e-3")
    assert "lr: 2e-3" in text
    message = error_of(write(tmp_path, text, "linear"))
    assert ": fixed.lr: lr must be a number, got '2e-3'" in message and "1.0e-3" in message


def test_parse_space_leaves_the_raw_dict_alone():
    raw = raw_of("resnet")
    before = copy.deepcopy(raw)
    parse_space(raw, SPACES_DIR / "resnet.yaml")
    assert raw == before


def test_space_errors_are_user_errors():
    assert issubclass(SpaceError, UserError)  # the CLI prints them as one line, no traceback


# ---------------------------------------------------------------------------------------------------
# --set


def test_a_list_replaces_a_grid_axis_and_a_scalar_fixes_it():
    space = load_space("lenet")
    changed = apply_overrides(space, {"kernel_size": [3], "batch_norm": True, "lr": 0.01})
    assert changed.grid == {"dropout": [True, False], "kernel_size": [3], "aux_loss": [True, False]}
    assert changed.fixed["batch_norm"] is True and changed.fixed["lr"] == 0.01
    assert changed.grid_size() == 4
    # The fixed axis leaves `best`; the narrowed one keeps no best outside its list.
    assert changed.best == {"dropout": False, "aux_loss": True}
    # The loaded space is untouched.
    assert space.grid_size() == 16 and space.best["kernel_size"] == 5 and space.fixed["lr"] == 0.05


def test_a_list_can_turn_a_fixed_value_into_an_axis_and_add_a_distribution():
    changed = apply_overrides(load_space("linear"), {"lr": [1.0e-3, 2.0e-3], "batch_size": {"randint": [10, 50]}})
    assert "lr" not in changed.fixed and changed.grid["lr"] == [1.0e-3, 2.0e-3]
    assert changed.grid["batch_size"] == {"randint": [10, 50]} and changed.has_distributions()
    assert changed.grid_size() == 80  # the sampled axis counts once per sample


def test_narrowing_an_axis_keeps_its_best_when_still_inside():
    changed = apply_overrides(load_space("linear"), {"nodes": [64, 128]})
    assert changed.best["nodes"] == 128


@pytest.mark.parametrize("overrides, words", [
    ({"kernel_size": [4]}, "grid.kernel_size: kernel_size must be one of [3, 5], got 4"),
    ({"lr_rate": 0.1}, "fixed.lr_rate: unknown option"),
    ({"val_fraction": 1.5}, "fixed.val_fraction"),
    ({"kernel_size": []}, "grid.kernel_size: empty list"),
    ({"lr": "1e-3"}, "write floats with a dot"),
])
def test_bad_overrides_name_the_key(overrides, words):
    with pytest.raises(SpaceError) as info:
        apply_overrides(load_space("lenet"), overrides)
    assert str(info.value).startswith("after --set: ") and words in str(info.value)


@pytest.mark.parametrize("key", ["seed", "threads", "network"])
def test_the_search_owns_seed_threads_and_arch(key):
    with pytest.raises(SpaceError, match=f"--set {key}"):
        apply_overrides(load_space("lenet"), {key: 1})


def test_a_space_with_the_old_names_loads_as_the_new_one(tmp_path, capsys):
    """Spaces written before the renames (`arch:`, `aux_loss_weight`, `aux_weight`) still load, with a note."""
    import tune_digits.train.config as config_module

    config_module._NOTED.clear()
    path = write(tmp_path, "arch: lenet\nfixed:\n  aux_loss_weight: 0.5\ngrid:\n  aux_weight: [0.0, 1.0]\n"
                           "  strategy: [pair]\n", "old")
    space = load_space(str(path))
    assert space.network == "lenet" and space.fixed == {"side_loss_weight": 0.5}
    assert space.grid["digit_loss_weight"] == [0.0, 1.0]
    err = capsys.readouterr().err
    assert "note: old.yaml: arch is now called network; the old name still works" in err.splitlines()
    assert "note: old.yaml: grid.aux_weight is now called digit_loss_weight; the old name still works" in err


def test_cli_lists_and_plans_a_users_space(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tune_digits.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    write(mine, raw_of("lenet"), "tiny")
    monkeypatch.chdir(tmp_path)
    listed = CliRunner().invoke(main, ["spaces", "--spaces-dir", str(mine)])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
    assert rows["tiny"].endswith(str(mine / "tiny.yaml")) and rows["lenet"].endswith("shipped")
    planned = CliRunner().invoke(main, ["search", "tiny", "--spaces-dir", str(mine), "--stage", "screen", "--dry-run"])
    assert planned.exit_code == 0 and "tiny" in planned.stdout, planned.output
    missing = CliRunner().invoke(main, ["spaces", "--spaces-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such folder of search spaces" in missing.stderr


def test_the_training_levers_can_be_set_and_searched():
    """swap, rotate, label_smoothing and ema are training fields like any other: --set fixes one or
    makes it an axis, and a bad value names its key."""
    from tune_digits.cli import key_values
    from tune_digits.train import TrainConfig

    overrides = key_values(("swap=true", "rotate=[0.0, 10]", "label_smoothing=0.1", "ema=0.99", "elastic=0.5",
                            "width=[1, 2]"))
    changed = apply_overrides(load_space("lenet"), overrides)
    assert changed.fixed["swap"] is True and changed.grid["rotate"] == [0.0, 10] and changed.grid["width"] == [1, 2]
    assert (changed.fixed["label_smoothing"], changed.fixed["ema"], changed.fixed["elastic"]) == (0.1, 0.99, 0.5)
    cfg = TrainConfig.from_flat({**changed.fixed, "rotate": 10, "width": 2, "network": "lenet"})
    assert (cfg.swap, cfg.rotate, cfg.label_smoothing, cfg.ema, cfg.elastic) == (True, 10, 0.1, 0.99, 0.5)
    assert cfg.options["width"] == 2
    for key, value, words in [("ema", 1.0, "fixed.ema: ema must be 0 (off) or a decay in (0, 1)"),
                              ("rotate", [10.0, 45.0], "grid.rotate: rotate must be between 0 and 30 degrees"),
                              ("elastic", -0.5, "fixed.elastic: elastic must be between 0 and 3 pixels"),
                              ("width", [1, 5], "grid.width: width must be one of [1, 2, 3, 4], got 5"),
                              ("swap", "sometimes", "fixed.swap: swap must be true or false")]:
        with pytest.raises(SpaceError) as info:
            apply_overrides(load_space("lenet"), {key: value})
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_epochs_is_the_commands_size_never_a_grid_axis():
    """A race and the schedulers read each trial at the one final epoch, so a grid of epochs is refused; a
    scalar --set epochs wins over every stage's epochs, as --epochs does (it was silently ignored)."""
    space = load_space("regularisers")
    assert space.stages["final"].epochs == 25
    longer = apply_overrides(space, {"epochs": 50})
    assert {name: stage.epochs for name, stage in longer.stages.items()} == {"screen": 50, "final": 50}
    with pytest.raises(SpaceError) as info:
        apply_overrides(space, {"epochs": [25, 50]})
    assert "grid.epochs: every trial of a search runs the same epochs" in str(info.value)
