"""Adding a network is one model file plus one search-space YAML: this test is that model file.

It registers a tiny network of its own, writes its search space, and uses it the way a user would:
`models`, `train` for one epoch, a dry run, a one-trial search on a real Ray and `report`. Nothing in
tune_digits/ knows this network: the CLI finds it through the registry, and the search ships its spec to
the Ray worker, which cannot import this file (search/trainable.py: `ship_network`).
"""
from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from tune_digits.cli import main
from tune_digits.models import list_models, network_spec, register_model, unregister_model
from tune_digits.models.common import maybe_dropout


class Tiny(nn.Module):
    def __init__(self, in_channels, num_classes, hidden, dropout):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 14 * 14, hidden), nn.ReLU(),
                                  maybe_dropout(dropout, 0.5))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor):
        return self.head(self.body(x)), None  # (logits, no side classifier)


SPACE = """\
network: tiny
description: A one-hidden-layer MLP registered by tests/test_extension.py.
fixed: {lr: 1.0e-2}
grid:
  hidden: [8, 16]
best: {hidden: 16}
stages:
  screen: {pairs: 30, seeds: 1, epochs: 1}
  final: {pairs: 30, seeds: 1, epochs: 1}
"""


@pytest.fixture
def tiny(tmp_path):
    @register_model(train_defaults={"optimizer": "adam", "batch_size": 10})
    def tiny(in_channels=1, num_classes=10, hidden=16, dropout=False):
        """A one-hidden-layer MLP (a test's own network)."""
        return Tiny(in_channels, num_classes, hidden, dropout)

    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE)
    yield space
    unregister_model("tiny")


def test_registered_network_is_listed_with_its_defaults(tiny):
    assert "tiny" in list_models() and list_models()[-1] == "tiny"  # after the paper's four
    spec = network_spec("tiny")
    assert spec.training()["optimizer"] == "adam" and not spec.in_paper
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0 and "tiny" in result.output


def test_train_one_epoch(tiny):
    result = CliRunner().invoke(main, ["train", "tiny", "--pairs", "20", "--epochs", "1", "--set", "hidden=8"])
    assert result.exit_code == 0, result.output
    assert "tiny on cpu" in result.output and "adam" in result.output


def test_dry_run(tiny, tmp_path):
    result = CliRunner().invoke(main, ["search", str(tiny), "--stage", "screen", "--dry-run",
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "network tiny" in result.output and "2 configuration(s)" in result.output


@pytest.mark.slow
def test_one_trial_search_and_report(tiny, tmp_path, ray_tmpdir, hang_guard):
    hang_guard()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["search", str(tiny), "--stage", "screen", "--set", "hidden=8",
                                       "--output", str(out)])
    assert result.exit_code == 0, result.output
    experiment = out / "tiny" / "screen"
    meta = json.loads((experiment / "search.json").read_text())
    assert (meta["space"], meta["network"], meta["num_trials"]) == ("tiny", "tiny", 1)
    [row] = csv.DictReader((experiment / "epochs.csv").open())
    assert (row["network"], row["hidden"], row["epoch"]) == ("tiny", "8", "1")
    report = CliRunner().invoke(main, ["report", "tiny", "--output", str(out)])
    assert report.exit_code == 0, report.output
    assert "tiny" in report.output and "screen" in report.output
