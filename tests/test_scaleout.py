"""Scale-out on one machine: a 2-node Ray cluster (ray.cluster_utils.Cluster, 1 fake GPU per node)
runs a search across both nodes, survives losing a node, retries crashing trials and reports the ones that
keep crashing; two searches writing into one outputs/ at once keep their results apart.

Slow (a cluster and several searches), still run by default."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import FAULT_SEED, check_complete, make_plan, max_overlap, read_trial_rows, statuses, trial_intervals
from s3_server import s3_environment
from tune_digits.cli import main
from tune_digits.tuning import DELAY_ENV, run_search

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# × 2 seeds = 16 trials of 0.25 GPU: two full waves of 8 over the 2 nodes (4 on each, as 1 GPU / 0.25 = 4).
SIXTEEN = {"nodes": [8, 12, 16, 24, 32, 64, 128, 264], "layers": 1, "dropout": False}


@pytest.fixture(scope="module")
def s3():
    """An S3 API on 127.0.0.1 (tests/s3_server.py), in the environment before the cluster's nodes start."""
    with s3_environment() as server:
        yield server


@pytest.fixture(scope="class")
def cluster(ray_tmpdir, faults, s3):
    """Head and one worker node, 4 logical CPUs and 1 fake GPU each; this process drives from the head. Both
    nodes see the S3 API of `s3` through the AWS variables they inherit."""
    import ray
    from ray.cluster_utils import Cluster

    faults.allow(0)
    # A killed node is declared dead after ~1 s instead of Ray's default ~15 s of missed health checks.
    head_args = {"num_cpus": 4, "num_gpus": 1, "include_dashboard": False,
                 "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 2}}
    c = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        worker = c.add_node(num_cpus=4, num_gpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False, runtime_env={"env_vars": faults.env(delay=1.0)})
        try:
            assert ray.cluster_resources()["GPU"] == 2
            yield c, c.head_node.node_id, worker
        finally:
            ray.shutdown()
    finally:
        c.shutdown()


@pytest.mark.usefixtures("cluster")
class TestTwoNodeCluster:
    # Order matters: the last test removes the worker node.

    def test_without_shared_storage_search_and_reproduce_stop_before_any_trial(self, tmp_path):
        # On 2 nodes, trials would checkpoint on the node they run on: Tune fails at the first checkpoint.
        out = tmp_path / "out"
        said = "error: this Ray cluster has 2 nodes: pass --storage with a place every node can write"
        for command in (["search", "linear", "--pairs", "20", "--reps", "1", "--epochs", "1"],
                        ["reproduce", "--quick", "--only", "linear"]):
            result = CliRunner().invoke(main, [*command, "--address", "auto", "--output", str(out)])
            assert result.exit_code == 1, result.output
            assert result.stderr.splitlines()[-1].startswith(said), result.stderr
            assert "Traceback" not in result.output
            assert not list(out.rglob("search.json")) and not list(out.rglob("trials"))  # no trial started

    def test_crashing_trials_are_retried_and_reported(self, tmp_path, faults):
        # Seeds 0 and FAULT_SEED × 2 configurations; up to 2 attempts per trial (--max-failures 1). Three
        # crashes in all: one trial of FAULT_SEED crashes twice (ERROR), the other once (retried, finishes).
        faults.allow(3)
        out, shared = tmp_path / "out", tmp_path / "shared"
        result = CliRunner().invoke(main, [
            "search", "linear", "--pairs", "20", "--reps", "2", "--epochs", "2", "--set", "nodes=[16, 32]",
            "--set", "layers=1", "--set", "dropout=false", "--gpus-per-trial", "0.25", "--max-failures", "1",
            "--address", "auto", "--output", str(out), "--storage", f"file://{shared}"])
        assert faults.spent() == 3
        assert result.exit_code == 2, result.output  # the CLI's exit code when trials failed
        assert "3/4 trials finished, 1 failed" in result.stdout
        assert f"seed={FAULT_SEED}): RuntimeError: injected fault (seed {FAULT_SEED}, epoch 2)" in result.stderr
        exp = out / "linear" / "default"
        meta = json.loads((exp / "search.json").read_text())
        by_status = {}
        for trial, entry in meta["trials"].items():
            by_status.setdefault(entry["status"], []).append((trial, entry))
        assert len(by_status["ERROR"]) == 1 and len(by_status["TERMINATED"]) == 3
        failed, failed_entry = by_status["ERROR"][0]
        assert failed_entry["config"]["seed"] == FAULT_SEED and "injected fault" in failed_entry["error"]
        retried = [e for _, e in by_status["TERMINATED"] if "retrying after" in e.get("recovered_from", "")]
        assert not any(e.get("error") for _, e in by_status["TERMINATED"])  # a finished trial has no error
        assert len(retried) == 1 and retried[0]["config"]["seed"] == FAULT_SEED
        rows = read_trial_rows(exp)
        assert [r["epoch"] for r in rows[failed]] == [1]  # it reported epoch 1, then crashed in epoch 2
        check_complete({t: r for t, r in rows.items() if t != failed}, trials=3, epochs=2)

        # The storage holds Ray's checkpoints beside a copy of the tables, byte for byte; the report reads it.
        copy = shared / "linear" / "default"
        assert (copy / "ray").is_dir() and meta["ray_path"] == f"file://{copy}/ray"
        assert {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*.*") if "ray" not in p.parts} == \
            {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*.*")}
        for where in (out, f"file://{shared}"):
            report = CliRunner().invoke(main, ["report", "linear", "--output", str(where), "--figure", "none"])
            assert report.exit_code == 0, report.output
            assert "1 partial (1 of 2 epochs, ERROR, excluded)" in report.stdout  # the failed trial is listed

    def test_each_node_writes_to_the_bucket(self, tmp_path, cluster, s3):
        # One trial per GPU, so two at a time, one on each node; all they keep is in the bucket.
        _, head, worker = cluster
        out, uri = tmp_path / "out", s3.uri("two-nodes")
        result = CliRunner().invoke(main, [
            "search", "linear", "--pairs", "20", "--reps", "2", "--epochs", "2", "--set", "nodes=[16, 32]",
            "--set", "layers=1", "--set", "dropout=false", "--gpus-per-trial", "1", "--address", "auto",
            "--output", str(out), "--storage", uri])
        assert result.exit_code == 0, result.output
        assert "4/4 trials finished, 0 failed" in result.stdout
        exp = out / "linear" / "default"
        rows = read_trial_rows(exp)
        check_complete(rows, trials=4, epochs=2)
        assert {r["node"] for rs in rows.values() for r in rs} == {head, worker.node_id}
        keys = s3.keys("two-nodes/linear/default")
        # Each trial's checkpoints went to the bucket from the node it ran on (none was written locally).
        runs = {k.rsplit("/", 1)[1].rsplit("-", 1)[0] for k in keys if k.startswith("ray/states-") and k.endswith(".pt")}
        assert len(runs) == 4 and not list(out.rglob("states-*"))
        assert {"search.json", "epochs.csv"} <= set(keys) and s3.read("two-nodes/linear/default/epochs.csv") == \
            (exp / "epochs.csv").read_bytes()
        assert {f"trials/{t}.csv" for t in rows} <= set(keys)

    def test_trials_spread_over_both_nodes_and_survive_losing_one(self, tmp_path, cluster, faults, trial_rows):
        # One search shows both (each wave of 8 trials costs 8 worker processes on 2 shared cores): 16 trials,
        # and the worker node is killed once it has finished a trial and started one of the second wave. The
        # first 8 trials wait at epoch 1 until all 8 do, so that they run at once however loaded the machine is.
        # One retry (--max-failures 1): a trial lost with its node is retried without using it, so a loss that
        # Tune counts twice (each call in flight fails) does not fail the trial.
        c, head, worker = cluster
        plan = make_plan(tmp_path, overrides=SIXTEEN, epochs=3, gpus_per_trial=0.25, max_failures=1,
                         storage=str(tmp_path / "shared"))  # a folder both nodes of this machine see
        exp = plan.experiment_dir
        removed = {}

        def remove_worker_mid_search():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    rows = read_trial_rows(exp)
                    done = {t for t, s in statuses(exp).items() if s == "TERMINATED"}
                except (OSError, ValueError, KeyError, TypeError):
                    rows, done = {}, set()
                on_worker = {t: rs for t, rs in rows.items() if rs and rs[-1]["node"] == worker.node_id}
                finished = {t for t, rs in on_worker.items() if t in done and {r["node"] for r in rs} == {worker.node_id}}
                # Two epochs (2 s of sleep) still to go: the node is gone before they can run there.
                started = {t for t, rs in on_worker.items() if t not in done and rs[-1]["epoch"] == 1}
                if finished and started:
                    removed.update(running=started, rows={t: rows[t] for t in finished})
                    c.remove_node(worker, allow_graceful=False)
                    # Timed once the node is gone: while remove_node kills it, its trials may still report.
                    removed.update(time=time.time())
                    return
                time.sleep(0.1)

        held = []
        faults.hold(8)
        releaser = threading.Thread(target=lambda: held.append(faults.release_when_held()), daemon=True)
        watcher = threading.Thread(target=remove_worker_mid_search, daemon=True)
        releaser.start()
        watcher.start()
        try:
            outcome = run_search(plan, address="auto", progress=False, echo=lambda _: None)
        finally:
            watcher.join(60)
            releaser.join(5)
            faults.hold(0)
        assert held == [8], "the first wave's 8 trials never ran at once"
        assert removed, "the search ended before the node could be removed mid-way"
        assert (outcome.finished, outcome.failed, outcome.interrupted) == (16, 0, False)
        meta = json.loads((exp / "search.json").read_text())
        assert {e["status"] for e in meta["trials"].values()} == {"TERMINATED"}
        rows = trial_rows(exp)
        check_complete(rows, trials=16, epochs=3)  # no epoch lost, none counted twice
        assert len((exp / "epochs.csv").read_text().strip().splitlines()) == 1 + 16 * 3
        # Trials finished on the lost node keep every epoch they reported.
        for t, before in removed["rows"].items():
            assert rows[t] == before
        # The trials it was running were retried and finished on the head; nothing ran on it after its loss.
        for t in removed["running"]:
            entry = meta["trials"][t]
            assert rows[t][-1]["node"] == head and "retrying after" in entry.get("recovered_from", ""), t
            assert "node was terminated unexpectedly" in entry["recovered_from"] and entry["node_losses"] >= 1, entry
            assert rows[t][-1]["wall_time"] > removed["time"]  # its retry reported after the loss
        # A killed node's worker processes end when they notice their raylet is gone: on a loaded machine one may
        # still report an epoch a second or two after remove_node returned; none does later.
        late = [r for rs in rows.values() for r in rs if r["wall_time"] > removed["time"] + 5]
        assert all(r["node"] == head for r in late)
        # Spread: both nodes ran trials; 1 GPU per node / 0.25 per trial allows 4 at once on a node and, with the
        # first wave held together, 8 over both — measured from the trials' own timestamps.
        nodes = {t: {r["node"] for r in rs} for t, rs in rows.items()}
        assert set().union(*nodes.values()) == {head, worker.node_id}
        intervals = trial_intervals(rows)
        for node in (head, worker.node_id):
            assert max_overlap([intervals[t] for t, ns in nodes.items() if ns == {node}]) <= 4
        assert max_overlap(list(intervals.values())) == 8


def test_two_searches_into_one_output_folder(tmp_path):
    """Two `tune-digits search` processes, each with its own local Ray, write into one outputs/ at once; a third
    under a name that is busy is refused instead of mixing its trials in."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env[DELAY_ENV] = "1.0"  # long enough for the two to overlap, and for the third to find a busy name
    args = ["--pairs", "20", "--reps", "1", "--epochs", "2", "--set", "nodes=[16, 32]", "--set", "layers=1",
            "--set", "dropout=false", "--num-cpus", "2", "--output", str(out)]
    procs, tmpdirs = {}, []
    try:
        for name in ("a", "b"):
            tmpdirs.append(tempfile.mkdtemp(prefix="tdr", dir="/tmp"))  # no shared Ray, no cluster joined
            procs[name] = subprocess.Popen(
                [str(Path(sys.executable).parent / "tune-digits"), "search", "linear", "--name", name, *args],
                cwd=ROOT, env={**env, "RAY_TMPDIR": tmpdirs[-1]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
        # While `a` runs, the same name is refused, before any Ray starts.
        deadline = time.monotonic() + 120
        while not (out / "linear" / "a" / "search.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        busy = CliRunner().invoke(main, ["search", "linear", "--name", "a", *args])
        assert procs["a"].poll() is None, "search a ended before the busy check"
        assert busy.exit_code == 1 and "error: " in busy.stderr and "is in use by another search" in busy.stderr
        results = {name: p.communicate(timeout=300) for name, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for folder in tmpdirs:
            shutil.rmtree(folder, ignore_errors=True)
    for name, (stdout, stderr) in results.items():
        assert procs[name].returncode == 0, stderr[-3000:]
        assert "2/2 trials finished, 0 failed" in stdout
        exp = out / "linear" / name
        meta = json.loads((exp / "search.json").read_text())
        assert meta["name"] == name and set(statuses(exp).values()) == {"TERMINATED"}
        rows = read_trial_rows(exp)
        check_complete(rows, trials=2, epochs=2)
        assert set(rows) == set(meta["trials"])
        assert len((exp / "epochs.csv").read_text().strip().splitlines()) == 1 + 2 * 2
    assert not set(read_trial_rows(out / "linear" / "a")) & set(read_trial_rows(out / "linear" / "b"))
