"""Finding and loading experiments: bad files skipped or refused in one line, epochs.csv, restored trials,
old result sets read in today's names, and a start-up without torch or ray."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import RESNET, metrics, outputs, to_version1, write_experiment  # noqa: F401 (outputs)

from tune_digits.report import (
    ReportError, analyse, best_configuration, build_tables, load_results, ranking_table, run_report,
)

ROOT = Path(__file__).resolve().parents[1]


def test_bad_trial_files_are_skipped_and_listed(outputs: Path) -> None:
    trials = outputs / "resnet" / "screen" / "trials"
    (trials / "empty.csv").write_bytes(b"")
    (trials / "garbage.csv").write_bytes(b"\x00\xff\xfe binary \x89 junk\n\x01\x02")
    pd.read_csv(trials / "t00_0.csv").drop(columns=["test_error"]).to_csv(trials / "nocol.csv", index=False)
    results = load_results(outputs)
    reasons = "\n".join(results.skipped)
    assert "empty.csv: empty file" in reasons
    assert "garbage.csv: " in reasons
    assert "nocol.csv: missing column(s) test_error" in reasons
    out = io.StringIO()
    run_report(outputs, out=out, figure="none")
    assert "skipped unreadable file" in out.getvalue() and "3.500 ± 0.500" in out.getvalue()


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"a,b\n1,2\n", "missing column"),
    (b"seed,epoch,train_loss,train_error,test_digit_error,test_error,batch_norm,channels\n", "no rows"),
    (b'"unterminated\n\x00\xff', "not a readable CSV|missing column"),
])
def test_only_trial_file_unreadable_is_an_error(tmp_path: Path, content: bytes, message: str) -> None:
    root = tmp_path / "out"
    path = write_experiment(root, "resnet", "screen", RESNET[:1], ["batch_norm", "channels"], seeds=(0,))
    (path / "trials" / "t00_0.csv").write_bytes(content)
    with pytest.raises(ReportError, match=f"none of its 1 trial file.s. is readable .*({message})"):
        load_results(root)


def test_missing_or_corrupt_search_json(outputs: Path) -> None:
    meta = outputs / "resnet" / "screen" / "search.json"
    meta.write_text("{not json")
    with pytest.raises(ReportError, match=r"search.json: not valid JSON \(.* at line 1\)"):
        load_results(outputs)
    meta.write_text("")
    with pytest.raises(ReportError, match="search.json: empty file"):
        load_results(outputs)
    meta.unlink()
    with pytest.raises(ReportError, match="search.json: missing"):
        load_results(outputs)


def test_epochs_csv_is_used_and_checked(outputs: Path) -> None:
    exp = outputs / "resnet" / "screen"
    frames = [pd.read_csv(f) for f in sorted((exp / "trials").glob("*.csv"))]
    pd.concat(frames).to_csv(exp / "epochs.csv", index=False)
    for f in (exp / "trials").glob("*.csv"):
        f.unlink()
    e = load_results(outputs).experiments[0]
    assert e.source == "epochs.csv" and analyse(e).configs["test_error_mean"].iloc[0] == pytest.approx(3.5)
    pd.concat(frames).drop(columns=["epoch"]).to_csv(exp / "epochs.csv", index=False)
    with pytest.raises(ReportError, match="epochs.csv: missing column.s. epoch"):
        load_results(outputs)


def test_missing_folder_space_and_results(tmp_path: Path, outputs: Path) -> None:
    with pytest.raises(ReportError, match="no such folder"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no results found"):
        load_results(tmp_path / "empty")
    with pytest.raises(ReportError, match=r"no results for 'lenet' .*\(found: resnet\)"):
        load_results(outputs, "lenet")
    with pytest.raises(ReportError, match="unknown format"):
        run_report(outputs, fmt="docx")


def test_search_without_epochs_yet(tmp_path: Path) -> None:
    root = tmp_path / "out"
    path = write_experiment(root, "resnet", "screen", RESNET[:1], ["batch_norm", "channels"], seeds=(0,))
    (path / "trials" / "t00_0.csv").unlink()
    with pytest.raises(ReportError, match="no experiment has reported an epoch yet .resnet/screen: no results yet"):
        load_results(root)


def test_resumed_trial_duplicates_keep_last(outputs: Path) -> None:
    f = outputs / "resnet" / "screen" / "trials" / "t00_0.csv"
    df = pd.read_csv(f)
    again = df[df["epoch"] == 3].assign(test_error=100.0)  # re-reported after a restore
    pd.concat([df, again]).to_csv(f, index=False)
    a = analyse(load_results(outputs).experiments[0])
    assert a.values("batch_norm=True, channels=16", "honest").tolist() == [100.0, 3.5, 4.0]


def test_version1_result_sets_are_read_in_todays_names(tmp_path: Path) -> None:
    """Old files (search space `arch`, `aux_weight`, `aux_loss_weight`) report as new ones do."""
    today, old = tmp_path / "today", tmp_path / "old"
    for root in (today, old):
        write_experiment(root, "weight_sharing", "screen",
                         [({"digit_loss_weight": w, "side_loss_weight": 0.3}, metrics(5.0 - w, 0.5)) for w in (0, 1)],
                         ["digit_loss_weight"])
    to_version1(old / "weight_sharing" / "screen")
    assert "aux_weight" in (old / "weight_sharing" / "screen" / "trials" / "t00_0.csv").read_text()
    new, legacy = ([analyse(e) for e in load_results(root).experiments] for root in (today, old))
    assert legacy[0].exp.space == "weight_sharing" and legacy[0].exp.axes == ["digit_loss_weight"]
    assert legacy[0].configs.equals(new[0].configs)
    assert "network=weight_sharing" in legacy[0].configs["settings"].iloc[0]
    assert "side_loss_weight=0.3" in legacy[0].configs["settings"].iloc[0]
    assert ranking_table(legacy[0]).data.columns.tolist() == ranking_table(new[0]).data.columns.tolist()
    assert best_configuration(old / "weight_sharing" / "screen", "weight_sharing") == {"digit_loss_weight": 1}


def test_version1_lenet_side_loss_weight_builds_table_iv(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "lenet", "screen", [({"side_loss_weight": 0.0}, metrics(2.5, 0.5)),
                                                          ({"side_loss_weight": 0.3}, metrics(2.0, 0.5))],
                            ["side_loss_weight"])
    to_version1(path)
    tables, notes = build_tables([analyse(e) for e in load_results(tmp_path).experiments])
    t4 = {t.name: t for t in tables}["table4_lenet_aux"].data
    assert set(t4["option"]) == {"side_loss_weight"} and not notes
    assert t4.set_index(["view", "value"]).loc[("final_epoch", "0"), "paper_test_error_mean"] == 2.390


def test_report_never_imports_torch_or_ray() -> None:
    code = ("import tune_digits.report, sys; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_best_configuration_is_typed_as_search_json(outputs: Path) -> None:
    exp = outputs / "resnet" / "screen"
    assert best_configuration(exp, "resnet") == {"batch_norm": True, "channels": 16}
    assert best_configuration(outputs / "resnet" / "absent", "resnet") is None
    meta = json.loads((exp / "search.json").read_text())
    for trial in meta["trials"].values():
        del trial["config"]["channels"]
    (exp / "search.json").write_text(json.dumps(meta))
    with pytest.raises(ReportError, match="has no value for channels"):
        best_configuration(exp, "resnet")
