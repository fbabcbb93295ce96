"""Result tables on shared storage: the Mirror that copies an experiment's tables beside Ray's
checkpoints, reading them back (a folder, a file:// URI, and the remote path through a temporary folder),
and archiving a restarted experiment's copy. Real files through pyarrow's filesystems; no Ray, no training.
A real search writing to storage: tests/test_scaleout.py (2 nodes), tests/test_ray_jobs.py (a Ray job) and
tests/test_search_run.py (resuming from the storage's copy)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from report_fixtures import outputs, run_cli  # noqa: F401 (outputs: a fixture)

from tune_digits import storage
from tune_digits.report.load import load_experiment
from tune_digits.report.run import _report_remote
from tune_digits.results import move_rows, write_epochs_csv
from tune_digits.tuning import RunOptions


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_mirror_copies_the_tables_and_then_only_what_changed(outputs, tmp_path):
    exp = outputs / "resnet" / "screen"
    (exp / "epochs.csv").write_text("trial_id,seed,epoch\n")  # a search's final table
    shared = tmp_path / "shared"
    mirror = storage.Mirror(exp, f"file://{shared}/resnet/screen", interval=3600)
    assert mirror.push(force=True) == len(files(exp))
    assert files(shared / "resnet" / "screen") == files(exp)
    assert mirror.push() == 0  # within the interval: nothing copied even if something changed
    trial = sorted((exp / "trials").glob("*.csv"))[0]
    trial.write_text(trial.read_text() + trial.read_text().splitlines()[-1] + "\n")
    os.utime(trial, ns=(1, 1))  # a new stamp, whatever the clock's resolution
    assert mirror.push(force=True) == 1  # only the trial that changed
    assert files(shared / "resnet" / "screen") == files(exp)
    assert not [p for p in shared.rglob("*.tmp")]  # written aside, then renamed


def test_a_storage_error_mid_search_warns_and_the_next_copy_catches_up(outputs, tmp_path, capsys):
    exp, shared = outputs / "resnet" / "screen", tmp_path / "shared"
    mirror = storage.Mirror(exp, str(shared), interval=0)
    shared.mkdir()
    (shared / "trials").write_bytes(b"")  # a file where the trials' folder goes: every write fails
    assert mirror.push() == 0  # as a trial ends: one warning, the search goes on
    assert "warning: cannot write the results to" in capsys.readouterr().err
    with pytest.raises(storage.StorageError, match="cannot write the results to"):
        mirror.push(force=True)  # the search's end: the copy must be whole, or the user hears of it
    (shared / "trials").unlink()  # the storage is back
    assert mirror.push() == len(files(exp)) and files(shared) == files(exp)


def test_the_storage_copy_drops_removed_trials_and_reads_back_as_its_final_table(outputs, tmp_path):
    exp, shared = outputs / "resnet" / "screen", tmp_path / "shared" / "resnet" / "screen"
    mirror = storage.Mirror(exp, str(shared))
    mirror.push(force=True)
    old = sorted((exp / "trials").glob("*.csv"))[0].stem
    move_rows(exp, old, "replacement")  # a trial Tune recreated took over the old one's rows (search/writer.py)
    write_epochs_csv(exp)  # the search's end
    (shared / "trials" / "elsewhere.csv").write_bytes(b"x")  # on the storage only (another run's): kept
    mirror.push(force=True)
    assert files(shared) == {**files(exp), "trials/elsewhere.csv": b"x"}  # no second copy of the moved rows
    back = tmp_path / "back"
    assert storage.fetch_experiment(str(shared), back)
    assert load_experiment(back, "resnet").source == "epochs.csv"  # the final table, as read here


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("how", ["folder", "file URI"])
def test_report_reads_a_storage_folder_in_place(outputs, tmp_path, how):
    shared = tmp_path / "shared"
    storage.Mirror(outputs / "resnet" / "screen", str(shared / "resnet" / "screen")).push(force=True)
    (shared / "resnet-screen").mkdir()  # a Ray folder of an older search beside them: not an experiment
    where = str(shared) if how == "folder" else f"file://{shared}"
    local = run_cli("report", "--output", str(outputs), "--figure", "none")
    remote = run_cli("report", "--output", where, "--figure", "none")
    assert remote.exit_code == 0, remote.output
    # The same report, word for word: the folders' paths differ in length, so lines naming them wrap elsewhere.
    assert words(remote.stdout.replace(str(shared), str(outputs))) == words(local.stdout)
    assert files(shared / "report") == files(outputs / "report")


def test_remote_storage_is_read_through_a_temporary_folder_and_named_in_what_is_printed(outputs, tmp_path):
    # The path a s3:// or gs:// URI takes, on a filesystem that exists here (file://).
    shared = tmp_path / "shared"
    storage.Mirror(outputs / "resnet" / "screen", str(shared / "resnet" / "screen")).push(force=True)
    uri = f"file://{shared}"
    out = io.StringIO()
    written = _report_remote(uri, out, space=None, fmt="table", compare=None, figure="none", figure_formats=("png",))
    assert written and all(w.startswith(f"{uri}/report/") for w in written)
    assert {Path(w).name for w in written} == {p.name for p in (shared / "report").iterdir()}
    assert f"Written to {uri}/report" in out.getvalue() and "tune-digits-report-" not in out.getvalue()
    with pytest.raises(storage.StorageError, match="cannot read results from"):
        storage.fetch_tables(f"file://{tmp_path}/nowhere", tmp_path / "into")


def test_archiving_moves_the_storage_copy_aside(tmp_path):
    space = tmp_path / "shared" / "linear"
    (space / "t" / "ray").mkdir(parents=True)
    (space / "t" / "search.json").write_text("{}")
    note = storage.archive_remote(f"file://{space}", "t")
    assert not (space / "t").exists() and "moved to" in note
    [archived] = (space / ".archive").iterdir()
    assert (archived / "search.json").read_text() == "{}" and (archived / "ray").is_dir()
    assert storage.archive_remote(str(space), "t") is None  # nothing there any more


def test_a_relative_storage_folder_is_made_absolute_and_uris_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert RunOptions(storage="shared/").storage == str(tmp_path / "shared")
    assert RunOptions(storage="s3://bucket/tune-digits/").storage == "s3://bucket/tune-digits"
    # A custom endpoint's query stays at the end of every path made from it.
    assert storage.join(RunOptions(storage="s3://b/t/?endpoint_override=h:9000").storage, "lenet", "e2e") == \
        "s3://b/t/lenet/e2e?endpoint_override=h:9000"
    assert storage.local_path("file:///mnt/x") == Path("/mnt/x") and storage.local_path("gs://b/x") is None


def test_an_unknown_storage_scheme_is_refused_at_plan_time_and_the_dry_run_says_where_results_go(tmp_path):
    bad = run_cli("search", "linear", "--dry-run", "--storage", "nosuch://x", "--output", str(tmp_path))
    assert bad.exit_code == 1 and "Traceback" not in bad.output and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: --storage nosuch://x: unknown scheme 'nosuch://'; use one of file://, s3://, gs://, gcs://, "
        "hdfs://, viewfs://, abfs://, abfss:// or a folder"]
    reproduce = run_cli("reproduce", "--storage", "nosuch://x", "--output", str(tmp_path))
    assert reproduce.exit_code == 1 and reproduce.stderr.startswith("error: --storage nosuch://x: unknown scheme")
    # No network is needed for that, nor for the dry run of a good one, which names the experiment's place there.
    good = run_cli("search", "linear", "--dry-run", "--storage", "s3://bucket/td/", "--output", str(tmp_path))
    assert good.exit_code == 0, good.output
    lines = good.stdout.splitlines()
    assert lines[2] == ("storage:      s3://bucket/td/linear/default (checkpoints and results; "
                        "tune-digits report --output s3://bucket/td)")
    assert not list(tmp_path.iterdir())


def test_a_storage_folder_that_cannot_be_written_stops_the_search_before_any_trial(tmp_path):
    (tmp_path / "file").write_text("")  # a file where the storage's folder would go
    result = run_cli("search", "linear", "--pairs", "20", "--reps", "1", "--epochs", "1",
                     "--storage", str(tmp_path / "file" / "shared"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot use storage {tmp_path / 'file' / 'shared'}: ")
    assert not list((tmp_path / "out").rglob("search.json"))
