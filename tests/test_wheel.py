"""The wheel, installed as a user installs it (not editable), works from any folder: it finds its shipped
search spaces, plans, runs a one-trial search and reports it. Built once per session, offline (no build
isolation: setuptools comes from the test environment; no dependencies: they are this environment's)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout and installed into a target folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(work / "dist"), str(ROOT)], check=True, cwd=work)
    wheels = list((work / "dist").glob("tune_digits-*.whl"))
    assert len(wheels) == 1
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "--target", str(target), str(wheels[0])], check=True, cwd=work)
    return target


def tune_digits(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed console script, run from `cwd`; the checkout is nowhere on the path."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("TUNE_DIGITS_SPACES", None)
    return subprocess.run([str(target / "bin" / "tune-digits"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_installed_wheel_runs_from_another_folder(installed: Path, tmp_path: Path, ray_tmpdir) -> None:
    where = tune_digits(installed, tmp_path, "spaces")
    assert where.returncode == 0, where.stderr
    shipped = installed / "tune_digits" / "search_spaces"
    assert f"shipped spaces: {shipped}" in where.stdout  # inside the installed package, not the checkout
    assert all(f"{name} " in where.stdout for name in ("linear", "lenet", "resnet", "alexnet", "best"))

    dry = tune_digits(installed, tmp_path, "search", "lenet", "--stage", "screen", "--dry-run")
    assert dry.returncode == 0 and "48" in dry.stdout, dry.stdout + dry.stderr

    run = tune_digits(installed, tmp_path, "search", "alexnet", "--reps", "1", "--pairs", "20", "--epochs", "1",
                      "--num-cpus", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1/1 trials finished, 0 failed" in run.stdout
    meta = json.loads((tmp_path / "outputs" / "alexnet" / "default" / "search.json").read_text())
    assert meta["space_file"] == "tune_digits/search_spaces/alexnet.yaml" and meta["ray_path"] == "ray"
    assert meta["code"] == {"version": meta["versions"]["tune-digits"], "git_commit": None, "git_dirty": None}
    assert str(tmp_path) not in json.dumps(meta) and str(installed) not in json.dumps(meta)

    # --all: the short view only names the provenance table
    report = tune_digits(installed, tmp_path, "report", "--all", "--figure", "none")
    assert report.returncode == 0, report.stderr
    assert "Table II" in report.stdout and "alexnet/default" in report.stdout
    assert "Provenance" in report.stdout and "tune-digits search alexnet" in report.stdout
    origin = (tmp_path / "outputs" / "report" / "provenance.csv").read_text()
    assert "tune-digits search alexnet --reps 1 --pairs 20 --epochs 1 --num-cpus 1" in origin
