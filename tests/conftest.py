"""Shared test fixtures. Tests are CPU-first and small; see STYLE.md habit 11."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import MNIST_RAW, Faults, max_overlap, read_trial_rows, trial_intervals


# The suite's tensors are tiny and CI has 2 shared cores: extra intra-op threads only add contention.
torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The slow tests first. `make test` spreads the suite over parallel workers (pytest-xdist), which take
    tests in this order: a long end-to-end run started last would be the whole suite's tail, while the
    hundreds of short tests fill in around the long ones. Otherwise the order is the files' (stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _isolated_data_dir(monkeypatch):
    """A user's $TUNE_DIGITS_DATA_DIR must not leak into tests that expect the embedded digits."""
    monkeypatch.delenv("TUNE_DIGITS_DATA_DIR", raising=False)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """`fit(threads=...)` sets torch's global thread count; put it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_raw() -> Path:
    """The folder with the four gzip IDX files, or skip."""
    if not all((MNIST_RAW / f"{stem}.gz").is_file() for stem in (
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        pytest.skip(f"official MNIST IDX files not found at {MNIST_RAW}")
    return MNIST_RAW


# ---------------------------------------------------------------------------------------------------
# Real-Ray tests (tests/test_search_run.py, tests/test_scaleout.py): small, on 2 CPUs, offline (docs/protocol.md §8: no usage stats, no dashboard, no auth).
# Ray reads these when it is first imported, so they are set here, before any test module imports it.
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Checkpointing every epoch of tiny trials snapshots the experiment often; the warning about it is noise here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

@pytest.fixture(scope="session")
def faults(tmp_path_factory) -> Faults:
    return Faults(tmp_path_factory.mktemp("faults") / "marker")


@pytest.fixture(scope="session")
def ray_tmpdir():
    """A private, short RAY_TMPDIR for the session: a local Ray here never joins a cluster someone else
    started on this machine (`ray start` writes its address under the default temp dir), and the clusters
    these tests start are never joined by anyone else. Short, because Ray's socket paths live under it."""
    saved = os.environ.get("RAY_TMPDIR")
    folder = tempfile.mkdtemp(prefix="tdr", dir="/tmp")
    os.environ["RAY_TMPDIR"] = folder
    try:
        yield Path(folder)
    finally:
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_2cpus(ray_tmpdir):
    """One local Ray with 2 CPUs for a test file's searches (each start costs seconds)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def hang_guard():
    """A search that waits forever (e.g. for a GPU no node has) fails the run with every thread's stack
    after `seconds`, instead of hanging CI."""
    import faulthandler

    def arm(seconds: float = 240):
        faulthandler.dump_traceback_later(seconds, exit=True)

    yield arm
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def trial_rows():
    return read_trial_rows


@pytest.fixture
def overlap():
    return lambda rows: max_overlap(list(trial_intervals(rows).values()))
