"""--storage s3:// against a real S3 API (moto's server on 127.0.0.1, tests/s3_server.py), reached through the
standard AWS variables: a search writes its results to the bucket; killed with SIGKILL mid-way, it is run again
from a fresh working folder (as a new Ray job would be) and resumes from what the bucket holds, ending with
exactly one row per configuration, seed and epoch, the numbers of a search never interrupted; `tune-digits
report --output s3://…` and `td.load_results("s3://…")` read the bucket. A bucket that does not exist, an
endpoint that does not answer and refused credentials stop a search in one line before any trial starts.
The same on two nodes: tests/test_scaleout.py."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

import tune_digits as td
from helpers import Driver, runs
from s3_server import aws_env, moto_server, s3_environment
from tune_digits.cli import main
from tune_digits.tuning import PAUSE_ENV
from tune_digits.storage import fetch_experiment

pytestmark = pytest.mark.slow

EPOCHS = 2
TINY = ["search", "linear", "--pairs", "20", "--reps", "1", "--epochs", "1", "--set", "nodes=16", "--set", "layers=1",
        "--set", "dropout=false"]


@pytest.fixture(scope="module")
def s3():
    with s3_environment() as server:
        yield server


def refused(result) -> str:
    """The one line a refused command printed on stderr (and that it printed nothing else there)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    return line


def no_trial_started(out) -> bool:
    return not list(out.rglob("search.json")) and not list(out.rglob("trials"))


@pytest.mark.parametrize("case", ["no such bucket", "endpoint not answering"])
def test_storage_that_cannot_be_used_stops_the_search_before_any_trial(s3, tmp_path, monkeypatch, case):
    import ray

    storage = s3.uri("p") if case != "no such bucket" else "s3://no-such-bucket/p"
    if case == "endpoint not answering":
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    reproduce = ["reproduce", "--quick", "--only", "linear"]
    for command in (TINY, reproduce) if case == "no such bucket" else (TINY,):  # the same check in both
        result = CliRunner().invoke(main, [*command, "--storage", storage, "--output", str(tmp_path)])
        line = refused(result)
        assert line.startswith(f"error: cannot use storage {storage}: "), line
        assert ("bucket 'no-such-bucket' does not exist" if case == "no such bucket" else "NETWORK_CONNECTION") in line
        assert no_trial_started(tmp_path) and not ray.is_initialized()


def test_refused_credentials_stop_the_search_before_any_trial(tmp_path, monkeypatch):
    # A server that checks every request's signature (moto's auth on): wrong keys, then none at all.
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as endpoint:
        for key, value in aws_env(endpoint, AWS_ACCESS_KEY_ID="AKIANOTAKEY", AWS_SECRET_ACCESS_KEY="x").items():
            monkeypatch.setenv(key, value)
        for missing in (False, True):
            if missing:
                monkeypatch.delenv("AWS_ACCESS_KEY_ID")
                monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
            result = CliRunner().invoke(main, [*TINY, "--storage", "s3://any-bucket/p", "--output", str(tmp_path)])
            line = refused(result)
            said = "no AWS credentials are set in the environment" if missing else "check the credentials"
            assert line.startswith("error: cannot use storage s3://any-bucket/p: ") and line.endswith(
                f"; {said} (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the machine's role)"), line
            assert no_trial_started(tmp_path)


def test_killed_search_resumes_from_the_bucket_to_the_uninterrupted_numbers(s3, tmp_path, hang_guard):
    hang_guard(400)
    uri, prefix = s3.uri("runs"), "runs"
    # 2 trials (2 configurations, 1 seed), the first run's one at a time; the others may run both at once.
    size, storage, both = ["--epochs", str(EPOCHS), "--reps", "1"], ["--storage", uri], ["--max-concurrent", "2"]
    reference = Driver(tmp_path / "reference", "k", "reference", args=size + both)  # never interrupted, meanwhile
    # Killed while the second trial waits just after its first epoch's checkpoint, the first one finished and
    # copied to the bucket (the first trial's pause at that epoch is released, the second's is not).
    marker = tmp_path / "pause"
    first = Driver(tmp_path / "job1", "k", "run1", args=size + storage,
                   env={PAUSE_ENV: f"epoch=1,times=2,marker={marker}"})
    first.wait_for("the first trial's pause", lambda: (marker / "pause-0").exists())
    (marker / "release").touch()
    first.wait_for("the first trial's last epoch", lambda: first.rows() >= EPOCHS)
    (marker / "release").unlink()
    first.wait_for("the second trial's pause, the first trial in the bucket",
                   lambda: (marker / "pause-1").exists()
                   and any(k.startswith("linear/k/trials/") for k in s3.keys(prefix)))
    first.kill()
    kept = s3.keys(prefix)
    assert "linear/k/search.json" in kept and any("/ray/states-" in k for k in kept)  # tables beside checkpoints
    # A fresh working folder (a new Ray job's copy): all it resumes from is on the storage.
    second = Driver(tmp_path / "job2", "k", "run2", args=size + storage + both)
    assert second.finish() == 0, second.err.read_text()[-3000:]
    assert "resuming" in second.err.read_text() and "2/2 trials finished, 0 failed" in second.out.read_text()
    assert reference.finish() == 0, reference.err.read_text()[-3000:]

    back = tmp_path / "back" / "linear" / "k"
    assert fetch_experiment(f"{uri}/linear/k", back)  # the bucket's copy, as the report reads it
    assert runs(back) == runs(reference.exp) == runs(second.exp)
    assert len(runs(back)) == 2 * EPOCHS
    rows = td.load_results(uri)
    assert len(rows) == 2 * EPOCHS and not rows.duplicated(["nodes", "seed", "epoch"]).any()
    assert rows.equals(td.load_results(f"{uri}/linear/k"))
    report = CliRunner().invoke(main, ["report", "linear", "--output", uri, "--figure", "none"])
    assert report.exit_code == 0, report.output
    assert f"Written to {uri}/report" in report.stdout
    assert any(k.startswith("report/") and k.endswith(".csv") for k in s3.keys(prefix))
