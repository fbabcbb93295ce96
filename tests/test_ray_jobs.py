"""Ray Jobs end to end: the README's `ray job submit --working-dir . -- tune-digits search …` against
a Ray head this test starts itself, then `tune-digits report --output <storage>` on the results.

The head is the test's own: `ray start --head` with a temporary folder of its own and free ports (GCS, the
dashboard and its job server on 127.0.0.1, the Ray client, the dashboard agent), so it never meets another Ray
on this machine. Every process it starts inherits one environment variable with a random value; stopping
the head is killing exactly the processes that carry it (`ray stop` would stop every Ray of this user).
The search writes to a shared folder given as a file:// URI, as a cluster's would to s3://."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import free_port
from tune_digits.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
MARK = "TUNE_DIGITS_TEST_HEAD"
# The README's command, tiny: one trial of 40 pairs for one epoch.
SEARCH = ["tune-digits", "search", "linear", "--pairs", "40", "--reps", "1", "--epochs", "1", "--set", "nodes=16",
          "--set", "layers=1", "--set", "dropout=false", "--address", "auto"]


def _marked(value: str) -> list[int]:
    """The live processes whose environment carries MARK=value: the head's, and nothing else."""
    needle = f"{MARK}={value}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") and \
                    not Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                pids.append(int(entry))
        except (OSError, IndexError):
            continue  # gone, or not ours to read
    return pids


def _stop(value: str, grace: float = 3.0) -> list[int]:
    """SIGTERM to the marked processes (as `ray stop` would send), SIGKILL to those left after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _marked(value):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _marked(value) and time.monotonic() < deadline:
            time.sleep(0.2)
    return _marked(value)


@pytest.fixture
def head():
    """A Ray head of the test's own, with the dashboard's job server on 127.0.0.1; yields its address."""
    if not sys.platform.startswith("linux"):
        pytest.skip("finds the head's processes through /proc")
    folder = tempfile.mkdtemp(prefix="tdj", dir="/tmp")  # short: Ray's socket paths live under it
    value = secrets.token_hex(8)
    dashboard = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update({MARK: value, "RAY_TMPDIR": folder, "RAY_USAGE_STATS_ENABLED": "0",
                "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}"})
    start = [str(VENV_BIN / "ray"), "start", "--head", f"--temp-dir={folder}", f"--port={free_port()}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
             f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
             "--num-cpus=2", "--num-gpus=0", "--disable-usage-stats"]
    try:
        started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        left = _stop(value)
        shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"processes of the test's head still running: {left}"


def test_a_search_submitted_as_a_ray_job_writes_its_results_to_the_storage(head, tmp_path):
    address, env = head
    shared = tmp_path / "shared"
    submit = [str(VENV_BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".", "--",
              *SEARCH, "--storage", f"file://{shared}"]
    job = subprocess.run(submit, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    logs = job.stdout + job.stderr
    assert job.returncode == 0, logs[-4000:]
    assert "1/1 trials finished, 0 failed" in logs and "succeeded" in logs, logs[-4000:]

    # The job ran in a copy of the working dir on the head; its results are on the storage, beside Ray's.
    exp = shared / "linear" / "default"
    meta = json.loads((exp / "search.json").read_text())
    assert [t["status"] for t in meta["trials"].values()] == ["TERMINATED"]
    assert meta["ray_path"] == f"file://{exp}/ray" and (exp / "ray").is_dir()
    assert len((exp / "epochs.csv").read_text().strip().splitlines()) == 2  # header + 1 trial × 1 epoch
    assert meta["command"].startswith("tune-digits search linear")

    # `tune-digits report --output <storage>` reads them where they are.
    report = CliRunner().invoke(main, ["report", "--output", f"file://{shared}", "--figure", "none"])
    assert report.exit_code == 0, report.output
    assert "linear" in report.stdout and (shared / "report").is_dir()
