"""What several test modules share: paths, a tiny search's plan, reading an experiment's rows, the fault hook's
driver, a local Ray, a `tune-digits search` process, a free port. Test modules import it; none imports another."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import pytest

from tune_digits.results import count_rows
from tune_digits.spaces import apply_overrides, load_space
from tune_digits.tuning import DELAY_ENV, FAULT_ENV, PAUSE_ENV, Algorithm, Resources, RunOptions, Sizes, plan_search
from tune_digits.tuning.reaper import marked_processes

# ---------------------------------------------------------------------------------------------------
# Paths

ROOT = Path(__file__).resolve().parents[1]
# The four official MNIST IDX files (gzip), kept outside the repository; tests that need them skip when they
# are absent.
MNIST_RAW = ROOT.parent / "shared" / "data" / "MNIST" / "raw"


# ---------------------------------------------------------------------------------------------------
# A tiny search

# Two LeNet configurations and two linear ones (× 2 seeds): the fastest real trials.
LENET_TWO = {"kernel_size": [3, 5], "batch_norm": True, "dropout": False, "aux_loss": True}
LINEAR_TWO = {"nodes": [16, 32], "layers": 1, "dropout": False}
OPTION_GROUPS = {"sizes": Sizes, "algorithm": Algorithm, "resources": Resources, "options": RunOptions}


def make_plan(output: Path, space: str = "linear", overrides=None, *, stage=None, name="t", **options):
    """A tiny search's plan (20 pairs, 2 seeds, 2 epochs); other options by their field name (reps=3,
    max_failures=0, search="random", ...), each put in its group."""
    loaded = apply_overrides(load_space(space), LINEAR_TWO if overrides is None else overrides)
    values = {"pairs": 20, "reps": 2, "epochs": 2, **options}
    groups = {key: cls(**{f.name: values.pop(f.name) for f in fields(cls) if f.name in values})
              for key, cls in OPTION_GROUPS.items()}
    assert not values, f"not a plan option: {sorted(values)}"
    return plan_search(loaded, stage=stage, name=name, output=output, **groups)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under a folder with its mtime and bytes: to prove nothing was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------
# An experiment's rows

def statuses(experiment_dir: Path) -> dict[str, str]:
    meta = json.loads((experiment_dir / "search.json").read_text())
    return {trial: entry["status"] for trial, entry in meta["trials"].items()}


def run_interrupted(plan, finished: int, timeout: float):
    """run_search(plan), stopped as Ctrl-C stops it once `finished` trials have ended (search.json says so):
    Tune's handler (installed in fit, in this, the main, thread) stops the search gracefully and saves its
    state, and Tune listens to SIGUSR1 the same way as to SIGINT. No signal after `timeout` seconds."""
    import threading

    from tune_digits.tuning import run_search

    def interrupt():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if list(statuses(plan.experiment_dir).values()).count("TERMINATED") >= finished:
                    os.kill(os.getpid(), signal.SIGUSR1)
                    return
            except (OSError, ValueError, KeyError):
                pass  # search.json not written yet
            time.sleep(0.05)

    previous = signal.signal(signal.SIGUSR1, lambda *_: None)  # never the default (terminate)
    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    try:
        return run_search(plan, progress=False, echo=lambda _: None)
    finally:
        watcher.join(5)
        signal.signal(signal.SIGUSR1, previous)

def read_trial_rows(experiment_dir: Path) -> dict[str, list[dict]]:
    """trials/<id>.csv of an experiment → {trial_id: rows}, numbers parsed (empty cells stay '')."""
    import csv

    def parse(value: str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    out = {}
    for path in sorted((experiment_dir / "trials").glob("*.csv")):
        with path.open(newline="") as f:
            out[path.stem] = [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return out

def check_complete(rows: dict[str, list[dict]], trials: int, epochs: int) -> None:
    """Every trial has each epoch exactly once, in order: nothing lost, nothing counted twice."""
    assert len(rows) == trials
    for trial, trial_rows in rows.items():
        assert [r["epoch"] for r in trial_rows] == list(range(1, epochs + 1)), trial

def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end before a start at the same time)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def trial_intervals(rows: dict[str, list[dict]]) -> dict[str, tuple[float, float]]:
    """When each trial trained, from its own rows: start = first report's wall_time − its time_s (seconds
    since the trial's training began), end = last report's wall_time."""
    out = {}
    for trial, trial_rows_ in rows.items():
        first, last = trial_rows_[0], trial_rows_[-1]
        out[trial] = (first["wall_time"] - first["time_s"], last["wall_time"])
    return out


# ---------------------------------------------------------------------------------------------------
# The fault hook, a local Ray, a free port

# Trials of this seed crash in their second epoch (after reporting the first) while the fault budget lasts.
FAULT_SEED = 1
_FAULT_SLOTS = 20


class Faults:
    """Drives the trials' fault and pause hooks (tune_digits.tuning.faults) from the test process.

    Ray workers get TUNE_DIGITS_FAULT and TUNE_DIGITS_PAUSE once, when Ray starts (`env()` goes into ray.init's
    runtime_env); what varies per test is the budget: `allow(n)` lets exactly n more failures happen and
    `hold(n)` makes n more trials wait, because each claims one free slot file and both pre-claim all but n."""

    def __init__(self, marker: Path):
        self.marker = marker
        self.holds = marker.parent / "holds"
        self.allow(0)
        self.hold(0)

    def env(self, delay: float | None = None) -> dict:
        env = {FAULT_ENV: f"seed={FAULT_SEED},epoch=2,times={_FAULT_SLOTS},marker={self.marker}",
               PAUSE_ENV: f"epoch=1,times={_FAULT_SLOTS},marker={self.holds}"}
        if delay:
            env[DELAY_ENV] = str(delay)
        return env

    def hold(self, n: int) -> None:
        """The next n trials to report epoch 1 wait there until `release_when_held` lets them go (0: none)."""
        _claim_all_but(n, self.holds, "pause")
        if not n:
            (self.holds / "release").touch()
        self._held = n

    def release_when_held(self, timeout: float = 240) -> int:
        """Wait until every held trial waits at once (or `timeout`, when fewer ever can), let them go, and say
        how many were waiting: trials that ran at the same moment, whatever the machine's load."""
        deadline = time.monotonic() + timeout
        waiting = lambda: sum((self.holds / f"pause-{slot}").exists() for slot in range(self._held))
        while waiting() < self._held and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = waiting()
        (self.holds / "release").touch()
        return seen

    def allow(self, n: int) -> None:
        _claim_all_but(n, self.marker, "fail")
        self._allowed = n

    def spent(self) -> int:
        """Failures injected since the last `allow`."""
        return sum((self.marker / f"fail-{slot}").exists() for slot in range(self._allowed))

def _claim_all_but(n: int, folder: Path, kind: str) -> None:
    """A fresh hook folder whose slots <kind>-n.. are taken already: the hook can act exactly n more times."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for slot in range(n, _FAULT_SLOTS):
        (folder / f"{kind}-{slot}").touch()


@contextmanager
def local_ray_session(num_cpus: int, num_gpus: int, env: dict):
    """A fresh local Ray (never one someone else started), shut down whatever happens."""
    import ray

    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    try:
        yield
    finally:
        ray.shutdown()

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------
# `tune-digits search` as its own process (tests/test_crash_resume.py, tests/test_s3.py)

DRIVER_EPOCHS, DRIVER_TRIALS = 4, 4  # 2 configurations × 2 seeds
ARGS = ["search", "linear", "--pairs", "40", "--epochs", str(DRIVER_EPOCHS), "--reps", "2", "--set", "nodes=[16, 32]",
        "--set", "layers=1", "--set", "dropout=false", "--max-concurrent", "1", "--num-cpus", "2"]


class Driver:
    """One `tune-digits search` process, its output in files."""

    def __init__(self, tmp: Path, name: str, run: str, env: dict | None = None, args: list[str] = ()):
        self.exp = tmp / "linear" / name
        self.out, self.err = tmp / f"{run}.out", tmp / f"{run}.err"
        tmp.mkdir(parents=True, exist_ok=True)
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from tune_digits.cli import main; main()", *ARGS, "--output", str(tmp),
                 "--name", name, *args], stdout=out, stderr=err,
                env={**os.environ, DELAY_ENV: "0.2", **(env or {})})

    def rows(self) -> int:
        return rows_in(self.exp)

    def wait_for(self, what: str, ready, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"{what}: never happened (rc {self.process.poll()})\n{self.err.read_text()[-3000:]}")
            time.sleep(0.05)

    def token(self) -> str:
        """The mark of the Ray this driver started (reaper.py), from the file it keeps beside the experiment."""
        record = self.exp.parent / f".{self.exp.name}.ray"
        self.wait_for("the local Ray's mark", lambda: record.exists() and record.read_text().strip())
        return record.read_text().strip()

    def kill(self) -> None:
        """SIGKILL, then wait (at most 30 s) until no process of its Ray is left."""
        token = self.token()
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL
        deadline = time.monotonic() + 30
        while marked_processes(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marked_processes(token) == [], "processes of the killed driver's Ray are left"

    def finish(self, timeout: float = 180) -> int:
        return self.process.wait(timeout)


def rows_in(exp: Path) -> int:
    try:
        return sum(count_rows(exp).values())
    except (OSError, ValueError, KeyError):
        return 0  # a file being replaced right now


def runs(exp: Path, axis: str = "nodes") -> dict[tuple, dict]:
    """epochs.csv by (configuration, seed, epoch), the configuration named by its one grid `axis`, without the
    columns that say when and where it ran; a key seen twice fails."""
    out = {}
    with (exp / "epochs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            key = (row[axis], row["seed"], row["epoch"])
            assert key not in out, f"two rows for {key}"
            out[key] = {k: v for k, v in row.items() if k not in ("trial_id", "time_s", "wall_time", "node")}
    return out


# ---------------------------------------------------------------------------------------------------
# The cluster walk-through

# The steps of README.md ("Run on a cluster"), in its order; tests/test_cluster_config.py checks that the docs keep them.
WORKFLOW = ("ray get-auth-token", "ray up", "ray exec ray status", "ray submit", "ray dashboard",
            "ray job submit", "tune-digits report", "ray down")
