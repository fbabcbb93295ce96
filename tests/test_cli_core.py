"""`tune-digits` group, `models` and `train` through click's CliRunner: help, tables and one-line errors."""
from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from tune_digits.cli import main
from tune_digits.models import count_parameters, create_model, list_models


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def assert_user_error(result, *fragments: str) -> None:
    """Exit 1, exactly one `error: ...` line on stderr, nothing that looks like a traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["models", "--help"], ["train", "--help"]])
def test_help(args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout and not result.stderr


def test_group_help_lists_the_core_commands():
    out = run("--help").stdout
    assert "models" in out and "train" in out


def test_train_help_explains_its_options():
    out = run("train", "--help").stdout
    for option in ("--pairs", "--epochs", "--seed", "--set", "--data-dir", "--gpu"):
        assert option in out


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and re.search(r"\d+\.\d+", result.stdout)


def test_models_lists_four_models_with_counts():
    result = run("models")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()
            and line.split()[0] in list_models()}
    assert sorted(rows) == ["alexnet", "lenet", "linear", "resnet"]
    for name, line in rows.items():
        assert f"{count_parameters(create_model(name)):,}" in line
        assert "weight_sharing=True" in line


def test_train_prints_an_epoch_table():
    result = run("train", "linear", "--pairs", "30", "--epochs", "2", "--seed", "1", "--set", "threads=1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "adam" in lines[0] and "30 pairs" in lines[0]  # the optimiser settings are always shown
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["epoch"])
    rows = [line.split() for line in lines[header + 1:] if line.strip()]
    assert [r[0] for r in rows] == ["1", "2"]
    for r in rows:
        assert len(r) == 6 and all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in r)


def test_train_set_values_reach_the_model_and_loop():
    result = run("train", "lenet", "--pairs", "20", "--epochs", "1", "--set", "kernel_size=3",
                 "--set", "lr=1.0e-2", "--set", "threads=1", "--set", "epochs=2")
    assert result.exit_code == 0, result.output
    assert "lr=0.01" in result.stdout
    rows = [line for line in result.stdout.splitlines() if re.match(r"\s+\d+\s", line)]
    assert len(rows) == 2  # --set epochs=2 wins over --epochs 1


def test_train_set_accepts_an_old_setting_name_with_a_note():
    import tune_digits.train.config as config_module

    config_module._NOTED.discard("aux_loss_weight")
    result = run("train", "lenet", "--pairs", "20", "--epochs", "1", "--set", "aux_loss_weight=0.5",
                 "--set", "threads=1")
    assert result.exit_code == 0, result.output
    assert "note: --set aux_loss_weight is now called side_loss_weight" in result.stderr


def test_train_same_seed_same_table():
    args = ("train", "linear", "--pairs", "20", "--epochs", "2", "--set", "threads=1")
    strip_time = lambda out: [line.rsplit(None, 1)[0] for line in out.splitlines() if re.match(r"\s+\d+\s", line)]
    assert strip_time(run(*args).stdout) == strip_time(run(*args).stdout)


@pytest.mark.parametrize("args,fragments", [
    (["train", "vgg"], ["unknown network", "lenet"]),
    (["train", "lenet", "--set", "kernel_size"], ["key=value"]),
    (["train", "lenet", "--set", "=3"], ["key=value"]),
    (["train", "lenet", "--set", "kernel_size=[3"], ["kernel_size"]),
    (["train", "lenet", "--set", "kernel_size=4"], ["kernel_size"]),
    (["train", "lenet", "--set", "dropout=maybe"], ["dropout"]),
    (["train", "lenet", "--set", "lr=fast"], ["lr"]),
    (["train", "lenet", "--set", "kernal_size=5"], ["kernal_size"]),
    (["train", "resnet", "--set", "blocks=0"], ["blocks"]),
    (["train", "lenet", "--pairs", "0"], ["pairs"]),
    (["train", "lenet", "--epochs", "0"], ["epochs"]),
    (["train", "lenet", "--pairs", "40000", "--epochs", "1"], ["pairs"]),
])
def test_bad_train_input_is_one_error_line(args, fragments):
    assert_user_error(run(*args), *fragments)


def test_missing_data_dir_is_one_error_line(tmp_path):
    missing = tmp_path / "no-such-folder"
    assert_user_error(run("train", "linear", "--pairs", "5", "--epochs", "1", "--data-dir", str(missing)),
                      str(missing))
    # The environment variable takes the same path.
    assert_user_error(run("train", "linear", "--pairs", "5", "--epochs", "1",
                          env={"TUNE_DIGITS_DATA_DIR": str(missing)}), "does not exist")


def test_data_dir_without_idx_files_is_one_error_line(tmp_path):
    assert_user_error(run("train", "linear", "--pairs", "5", "--epochs", "1", "--data-dir", str(tmp_path)),
                      "train-images-idx3-ubyte")


def test_data_dir_with_the_official_files_trains(mnist_raw):
    result = run("train", "linear", "--pairs", "10", "--epochs", "1", "--set", "threads=1",
                 "--data-dir", str(mnist_raw))
    assert result.exit_code == 0, result.output


def test_search_help_groups_every_option_in_a_panel():
    from tune_digits.cli import SEARCH_PANELS, search

    placed = [o for options in SEARCH_PANELS.values() for o in options]
    assert list(SEARCH_PANELS) == ["Grid and size", "Algorithm", "Resources", "Cluster", "Run management",
                                   "Performance"]
    for param in search.params:
        if isinstance(param, click.Option):
            assert any(o in placed for o in param.opts), f"{param.opts[0]} is in no help panel of SEARCH_PANELS"
    assert len(placed) == len(set(placed))
    out = run("search", "--help").stdout
    assert all(f"─ {panel} ─" in out for panel in SEARCH_PANELS) and "─ Options ─" not in out
