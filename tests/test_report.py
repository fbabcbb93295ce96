"""`tune-digits report` on small synthetic result sets with known values (no training, no Ray)."""
from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tune_digits import paper
from tune_digits.report import (
    ReportError, analyse, best_table, build_tables, compare_table, draw_figure, figure_curves, figure_target,
    load_results, run_report, welch,
)

ROOT = Path(__file__).resolve().parents[1]
EPOCH_SHAPE = {1: 2.0, 2: 0.0, 3: 1.0}  # offset of test_error per epoch: epoch 2 is the best, 3 the final


def metrics(base: float, scale: float) -> Callable[[int, int], dict[str, float]]:
    """test_error = base + scale·seed + EPOCH_SHAPE[epoch]: over seeds 0, 1, 2 the mean at the best epoch is
    base + scale and the sample std is scale exactly."""
    def at(seed: int, epoch: int) -> dict[str, float]:
        test = base + scale * seed + EPOCH_SHAPE.get(epoch, 1.0)
        return {"train_loss": 1.0 / epoch, "train_error": 10.0 - 3 * epoch + seed,
                "test_digit_error": 1.5 * test, "test_error": test}
    return at


def write_experiment(root: Path, arch: str, name: str, configs: list[tuple[dict[str, Any], Callable]],
                     axes: list[str], seeds: tuple[int, ...] = (0, 1, 2), epochs: int = 3,
                     stage: str | None = None, fixed: dict[str, Any] | None = None,
                     short: dict[tuple[int, int], int] | None = None,
                     val: Callable[[int, int], float] | None = None,
                     val_digit: Callable[[int, int, int], float] | None = None) -> Path:
    """One experiment folder as `tune-digits search` writes it. `short[(config index, seed)] = k` stops that
    repetition after k epochs (status RUNNING)."""
    path = root / arch / name
    (path / "trials").mkdir(parents=True)
    fixed = {"lr": 0.05, "batch_size": 50, "epochs": epochs, "pairs": 350, **(fixed or {})}
    trials = {}
    for i, (config, fn) in enumerate(configs):
        for seed in seeds:
            trial_id = f"t{i:02d}_{seed}"
            last = (short or {}).get((i, seed), epochs)
            rows = []
            for epoch in range(1, last + 1):
                row = {"trial_id": trial_id, "seed": seed, "epoch": epoch, **fn(seed, epoch),
                       "val_error": val(seed, epoch) if val else math.nan, "val_digit_error": val_digit(i, seed, epoch) if val_digit else math.nan,
                       "time_s": 0.5 * epoch, "arch": arch, **fixed, **config}
                rows.append(row)
            pd.DataFrame(rows).to_csv(path / "trials" / f"{trial_id}.csv", index=False)
            trials[trial_id] = {"status": "TERMINATED" if last == epochs else "RUNNING",
                                "config": {**fixed, **config, "seed": seed}, "error": None}
    meta = {"arch": arch, "name": name, "stage": stage or name, "space_file": f"search_spaces/{arch}.yaml",
            "axes": axes, "fixed": fixed, "seeds": list(seeds), "num_trials": len(trials), "trials": trials,
            "started": "2026-11-26T21:00:00Z", "finished": "2026-11-26T21:10:00Z"}
    (path / "search.json").write_text(json.dumps(meta))
    return path


# The ResNet screen: honest (final-epoch) means 3.5, 5, 6, 9 with stds 0.5, 1, 1, 2.
RESNET = [
    ({"batch_norm": True, "channels": 16}, metrics(2.0, 0.5)),
    ({"batch_norm": True, "channels": 8}, metrics(3.0, 1.0)),
    ({"batch_norm": False, "channels": 16}, metrics(4.0, 1.0)),
    ({"batch_norm": False, "channels": 8}, metrics(6.0, 2.0)),
]


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    write_experiment(root, "resnet", "screen", RESNET, ["batch_norm", "channels"])
    return root


def hand_welch(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Welch's t-test from its textbook formulas (not through scipy's ttest_ind)."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    return ma - mb, ma - mb - half, ma - mb + half, 2 * stats.t.sf(abs(t), df)


# ---------------------------------------------------------------------------------------------------
# Statistics


def test_welch_matches_hand_computation() -> None:
    a, b = [4.0, 5.0, 6.0], [3.0, 3.5, 4.0]
    diff, lo, hi, p = welch(np.array(a), np.array(b))
    assert (diff, lo, hi, p) == pytest.approx(hand_welch(a, b))
    # t = 1.5 / sqrt(1.25/3) = 2.3238, df = 2.9412 → two-sided p (checked by hand with a t table: 0.05 < p < 0.1)
    assert p == pytest.approx(0.1047, abs=5e-4)
    assert diff == 1.5 and lo < 0 < hi


def test_welch_is_quiet_when_one_side_ties_exactly(recwarn) -> None:
    """3 seeds with the same error on 350 pairs (seen in ResNet's screen): a p-value, and no warning."""
    tied, other = np.array([100 * 10 / 350] * 3), np.array([3.0, 3.4, 2.6])
    assert welch(tied, other)[3] == pytest.approx(hand_welch(list(tied), list(other))[3])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_welch_undefined_cases_are_nan() -> None:
    assert math.isnan(welch(np.array([1.0]), np.array([2.0, 3.0]))[3])
    assert math.isnan(welch(np.array([1.0, 1.0]), np.array([2.0, 2.0]))[3])  # no spread


# ---------------------------------------------------------------------------------------------------
# Selection and aggregation


def test_ranking_means_stds_and_best(outputs: Path) -> None:
    a = analyse(load_results(outputs).experiments[0])
    c = a.configs
    assert list(c["config"]) == ["batch_norm=True, channels=16", "batch_norm=True, channels=8",
                                 "batch_norm=False, channels=16", "batch_norm=False, channels=8"]
    assert list(c["rank"]) == [1, 2, 3, 4] and list(c["best"]) == [True, False, False, False]
    # honest view = final epoch (no validation split): base + scale + 1
    assert list(c["test_error_mean"]) == pytest.approx([3.5, 5.0, 6.0, 9.0])
    assert list(c["test_error_std"]) == pytest.approx([0.5, 1.0, 1.0, 2.0])
    assert list(c["epoch_mean"]) == [3, 3, 3, 3]
    # the paper's view: epoch 2 of every repetition
    assert list(c["best_epoch_test_error_mean"]) == pytest.approx([2.5, 4.0, 5.0, 8.0])
    assert list(c["best_epoch_epoch_mean"]) == [2, 2, 2, 2]
    assert list(c["n"]) == [3, 3, 3, 3] and set(c["status"]) == {"complete"}
    assert a.honest == "final_epoch" and a.rank_by == "test_error"


def test_table1_welch_against_best(outputs: Path) -> None:
    a = analyse(load_results(outputs).experiments[0])
    t = build_tables([a])[0][0]
    assert t.name == "table1_resnet_screen"
    row = t.data.iloc[1]  # batch_norm=True, channels=8: [4, 5, 6] vs the best's [3, 3.5, 4]
    expected = hand_welch([4.0, 5.0, 6.0], [3.0, 3.5, 4.0])
    assert (row["diff_vs_best"], row["ci_low"], row["ci_high"], row["p_vs_best"]) == pytest.approx(expected)
    assert t.data.iloc[0]["diff_vs_best"] == 0 and math.isnan(t.data.iloc[0]["p_vs_best"])
    assert {"batch_norm", "channels", "n", "pairs", "epochs", "settings"} <= set(t.data.columns)
    assert "3 repetitions (seeds) per configuration, 350 pairs, 3 epochs" in t.rule
    assert any("lr=0.05" in n for n in t.notes)  # hyperparameters stay visible


def test_table2_both_views_and_paper(outputs: Path) -> None:
    t = best_table([analyse(e) for e in load_results(outputs).experiments])
    d = t.data.set_index("view")
    assert list(d.index) == ["best_epoch", "final_epoch"]
    best, final = d.loc["best_epoch"], d.loc["final_epoch"]
    # best config (base 2, scale 0.5): epoch 2 → test 2 + 0.5·seed, train 4 + seed; epoch 3 → +1, 1 + seed
    assert (best["test_error_mean"], best["test_error_std"]) == pytest.approx((2.5, 0.5))
    assert (best["train_error_mean"], best["train_error_std"]) == pytest.approx((5.0, 1.0))
    assert (best["test_digit_error_mean"], best["test_digit_error_std"]) == pytest.approx((3.75, 0.75))
    assert (final["test_error_mean"], final["train_error_mean"]) == pytest.approx((3.5, 2.0))
    assert best["epoch_mean"] == 2 and final["epoch_mean"] == 3
    assert final["paper_test_error_mean"] == paper.TABLE_II["resnet"]["test_error"][0] == 2.085
    assert final["diff_test_error"] == pytest.approx(3.5 - 2.085)
    assert best["experiment"] == "screen" and best["n"] == 3 and best["pairs"] == 350


def test_table2_prefers_final_stage(outputs: Path) -> None:
    write_experiment(outputs, "resnet", "final", [({}, metrics(1.0, 1.0))], [], seeds=(0, 1, 2, 3),
                     fixed={"pairs": 1000})
    t = best_table([analyse(e) for e in load_results(outputs).experiments])
    row = t.data.iloc[1]
    assert row["experiment"] == "final" and row["n"] == 4 and row["pairs"] == 1000
    assert row["test_error_mean"] == pytest.approx(1.0 + 1.5 + 1.0)  # seeds 0..3: mean 1.5
    assert row["test_error_std"] == pytest.approx(np.std([0, 1, 2, 3], ddof=1))


def test_validation_split_selects_the_honest_epoch(tmp_path: Path) -> None:
    # val_error lowest at epoch 1 → the honest epoch is 1 (test = base + scale·seed + 2), ranked on val_error
    root = tmp_path / "out"
    write_experiment(root, "lenet", "screen", [({"aux_loss": True}, metrics(2.0, 1.0)),
                                              ({"aux_loss": False}, metrics(1.0, 1.0))], ["aux_loss"],
                     val=lambda seed, epoch: float(epoch))
    a = analyse(load_results(root).experiments[0])
    assert a.honest == "val_epoch" and a.rank_by == "val_error"
    assert list(a.configs["epoch_mean"]) == [1, 1]
    assert list(a.configs["test_error_mean"]) == pytest.approx([4.0, 5.0])
    assert list(a.configs["best_epoch_epoch_mean"]) == [2, 2]
    t = best_table([a])
    assert list(t.data["view"]) == ["best_epoch", "val_epoch"]


def test_validation_ties_are_broken_by_val_digit_error(tmp_path: Path) -> None:
    # Both configurations have the same val_error (a 200-pair split ties often); the one with the lower
    # val_digit_error ranks first although its label sorts last.
    root = tmp_path / "out"
    write_experiment(root, "lenet", "screen", [({"aux_loss": False}, metrics(2.0, 1.0)),
                                              ({"aux_loss": True}, metrics(2.0, 1.0))], ["aux_loss"],
                     val=lambda seed, epoch: 2.0, val_digit=lambda i, seed, epoch: 3.0 if i == 0 else 4.0)
    a = analyse(load_results(root).experiments[0])
    assert a.rank_by == "val_error"
    assert list(a.configs["config"]) == ["aux_loss=False", "aux_loss=True"]
    write_experiment(tmp_path / "swapped", "lenet", "screen", [({"aux_loss": False}, metrics(2.0, 1.0)),
                                                               ({"aux_loss": True}, metrics(2.0, 1.0))],
                     ["aux_loss"], val=lambda seed, epoch: 2.0,
                     val_digit=lambda i, seed, epoch: 4.0 if i == 0 else 3.0)
    a = analyse(load_results(tmp_path / "swapped").experiments[0])
    assert list(a.configs["config"]) == ["aux_loss=True", "aux_loss=False"]


def test_partial_runs_flagged_not_mixed(tmp_path: Path) -> None:
    root = tmp_path / "out"
    # config 0: seed 2 stopped at epoch 1 (excluded); config 3: every seed stopped at epoch 2 (reported, flagged)
    short = {(0, 2): 1, (3, 0): 2, (3, 1): 2, (3, 2): 2}
    write_experiment(root, "resnet", "screen", RESNET, ["batch_norm", "channels"], short=short)
    a = analyse(load_results(root).experiments[0])
    c = a.configs.set_index("config")
    first = c.loc["batch_norm=True, channels=16"]
    assert first["n"] == 2 and first["test_error_mean"] == pytest.approx(3.25)  # seeds 0, 1 only
    assert first["status"] == "2/3 seeds complete; 1 partial (1 of 3 epochs, RUNNING, excluded)"
    last = c.loc["batch_norm=False, channels=8"]
    assert last["partial"] and last["status"].startswith("PARTIAL: 0/3 seeds complete; 3 partial (2 of 3")
    assert last["epoch_mean"] == 2 and last["test_error_mean"] == pytest.approx(8.0)  # its last epoch: 2
    assert a.configs.iloc[-1]["config"] == "batch_norm=False, channels=8"  # ranked after complete ones
    out = io.StringIO()
    run_report(root, out=out, figure="none")
    assert "PARTIAL: 0/3 seeds complete" in out.getvalue()


def test_configurations_without_results_are_counted(outputs: Path) -> None:
    meta_path = outputs / "resnet" / "screen" / "search.json"
    meta = json.loads(meta_path.read_text())
    meta["trials"]["pending"] = {"status": "PENDING", "config": {"batch_norm": True, "channels": 4}}
    meta_path.write_text(json.dumps(meta))
    out = io.StringIO()
    run_report(outputs, out=out, figure="none")
    assert "4 of 5 configurations have results (1 without any epoch yet)" in out.getvalue()


# ---------------------------------------------------------------------------------------------------
# Comparisons: --compare, Tables III and IV, the weight-sharing study


def test_compare_option_at_best_and_pooled(outputs: Path) -> None:
    t = compare_table([analyse(e) for e in load_results(outputs).experiments], "batch_norm")
    d = t.data
    at_best = d[d["scope"] == "others_at_best"].set_index("value")
    assert list(at_best.index) == ["True", "False"] and bool(at_best.loc["True", "best"])
    assert at_best.loc["False", "test_error_mean"] == pytest.approx(6.0)
    expected = hand_welch([5.0, 6.0, 7.0], [3.0, 3.5, 4.0])
    got = at_best.loc["False", ["diff_vs_best", "ci_low", "ci_high", "p_vs_best"]].to_list()
    assert got == pytest.approx(expected)
    pooled = d[d["scope"] == "pooled"].set_index("value")
    assert pooled.loc["True", "n"] == 6 and pooled.loc["True", "n_configs"] == 2
    assert pooled.loc["True", "test_error_mean"] == pytest.approx(np.mean([3, 3.5, 4, 4, 5, 6]))
    with pytest.raises(ReportError, match="no experiment varies 'depth'; options that vary: batch_norm, channels"):
        compare_table([analyse(e) for e in load_results(outputs).experiments], "depth")


def test_tables_iii_and_iv_with_paper_numbers(tmp_path: Path) -> None:
    root = tmp_path / "out"
    write_experiment(root, "linear", "screen", [
        ({"dropout": False, "nodes": 128}, metrics(4.0, 0.5)), ({"dropout": True, "nodes": 128}, metrics(4.5, 1.0)),
        ({"dropout": False, "nodes": 64}, metrics(6.0, 1.0)), ({"dropout": True, "nodes": 64}, metrics(3.0, 1.0))],
        ["dropout", "nodes"])
    write_experiment(root, "lenet", "final", [({"aux_loss": True}, metrics(2.0, 0.5)),
                                             ({"aux_loss": False}, metrics(2.5, 0.5))], ["aux_loss"])
    tables, notes = build_tables([analyse(e) for e in load_results(root).experiments])
    by_name = {t.name: t for t in tables}
    assert {"table1_linear_screen", "table1_lenet_final", "table2_best", "table3_linear_dropout",
            "table4_lenet_aux"} <= set(by_name) and not notes
    t3 = by_name["table3_linear_dropout"].data
    # the best linear configuration is dropout=True, nodes=64: Table III holds nodes at 64
    assert set(t3["value"]) == {"True", "False"} and set(t3["view"]) == {"best_epoch", "final_epoch"}
    honest = t3[t3["view"] == "final_epoch"].set_index("value")
    assert honest.loc["True", "test_error_mean"] == pytest.approx(5.0)
    assert honest.loc["False", "test_error_mean"] == pytest.approx(8.0)
    assert honest.loc["False", "paper_test_error_mean"] == 4.590
    assert honest.loc["True", "paper_test_error_mean"] == 4.595
    assert "nodes=64" in by_name["table3_linear_dropout"].rule
    t4 = by_name["table4_lenet_aux"].data
    row = t4[(t4["view"] == "best_epoch") & (t4["value"] == "False")].iloc[0]
    assert row["test_error_mean"] == pytest.approx(3.0) and row["paper_test_error_mean"] == 2.390
    assert row["diff_paper_test_error"] == pytest.approx(3.0 - 2.390)
    assert row["p_vs_best"] == pytest.approx(hand_welch([2.5, 3.0, 3.5], [2.0, 2.5, 3.0])[3])


def test_weight_sharing_study_is_ranked_with_p_values(tmp_path: Path) -> None:
    root = tmp_path / "out"
    configs = [({"strategy": "two_channel", "weight_sharing": False, "aux_weight": 0.0}, metrics(15.0, 1.0)),
               ({"strategy": "pair", "weight_sharing": True, "aux_weight": 0.0}, metrics(11.0, 1.0)),
               ({"strategy": "pair", "weight_sharing": True, "aux_weight": 1.0}, metrics(3.0, 0.5)),
               ({"strategy": "pair", "weight_sharing": False, "aux_weight": 1.0}, metrics(4.0, 0.5))]
    write_experiment(root, "weight_sharing", "default", configs, ["strategy", "weight_sharing", "aux_weight"])
    out = io.StringIO()
    run_report(root, out=out, figure="none")
    t1 = pd.read_csv(root / "report" / "table1_weight_sharing_default.csv")
    assert list(t1["strategy"]) == ["pair", "pair", "pair", "two_channel"]
    assert list(t1["aux_weight"]) == [1, 1, 0, 0]
    assert t1["p_vs_best"].iloc[1:].notna().all() and (t1["p_vs_best"].iloc[2:] < 0.05).all()
    t2 = pd.read_csv(root / "report" / "table2_best.csv")
    assert set(t2["paper_ref"]) == {"resnet (paper's best)"}  # not one of the paper's nets
    cmp = compare_table([analyse(e) for e in load_results(root).experiments], "strategy").data
    pooled = cmp[cmp["scope"] == "pooled"].set_index("value")
    assert pooled.loc["two_channel", "diff_vs_best"] > 0 and pooled.loc["two_channel", "p_vs_best"] < 0.05


# ---------------------------------------------------------------------------------------------------
# Formats and files


def test_every_format_prints_and_writes_parseable_tables(outputs: Path) -> None:
    expected_row = "batch_norm=True, channels=16"
    for fmt in ("table", "markdown", "csv", "latex", "json"):
        out = io.StringIO()
        written = run_report(outputs, fmt=fmt, out=out, figure="none")
        text = out.getvalue()
        names = {p.name for p in written}
        assert {"table1_resnet_screen.csv", "table2_best.csv"} <= names
        if fmt == "json":
            doc = json.loads(text)
            t1 = doc["tables"][0]
            assert t1["name"] == "table1_resnet_screen" and t1["rows"][0]["config"] == expected_row
            assert t1["rows"][0]["test_error_mean"] == pytest.approx(3.5) and "rule" in t1
            assert json.loads((outputs / "report" / "table2_best.json").read_text())["name"] == "table2_best"
        elif fmt == "csv":
            df = pd.read_csv(outputs / "report" / "table1_resnet_screen.csv")
            assert df["config"].iloc[0] == expected_row and df["test_error_mean"].iloc[0] == pytest.approx(3.5)
            first = text.split("\n\n")[0]  # the first printed block is Table I
            assert pd.read_csv(io.StringIO(first), comment="#")["rank"].tolist() == [1, 2, 3, 4]
        elif fmt == "markdown":
            md = (outputs / "report" / "table1_resnet_screen.md").read_text()
            assert md.startswith("### Table I — resnet/screen") and md in text
            assert "3.500 ± 0.500" in text and "### Table II" in text
        elif fmt == "latex":
            tex = (outputs / "report" / "table2_best.tex").read_text()
            assert tex.count(r"\begin{tabular}") == 1 and r"3.500 $\pm$ 0.500" in tex
            assert r"\toprule" in text and "±" not in tex
        else:
            assert "Table I — resnet/screen" in text and "3.500 ± 0.500" in text
            assert "test-selected (paper, optimistic)" in text and "final epoch (honest)" in text
            assert (outputs / "report" / "table2_best.txt").read_text().startswith("Table II")


def test_markdown_table_rows(outputs: Path) -> None:
    run_report(outputs, fmt="markdown", out=io.StringIO(), figure="none")
    md = (outputs / "report" / "table1_resnet_screen.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 4  # header, separator, 4 configurations
    assert "3.500 ± 0.500" in rows[2] and "*" in rows[2]


def test_compare_csv_on_stdout_parses(outputs: Path) -> None:
    out = io.StringIO()
    written = run_report(outputs, fmt="csv", compare="channels", out=out)
    assert [p.name for p in written] == ["compare_channels.csv"]  # no figure unless asked
    df = pd.read_csv(io.StringIO(out.getvalue()), comment="#")
    assert set(df["scope"]) == {"others_at_best", "pooled"} and set(df["value"]) == {8, 16}


# ---------------------------------------------------------------------------------------------------
# Figure 1


def test_figure_png_with_four_panels(outputs: Path) -> None:
    written = run_report(outputs, out=io.StringIO(), figure_formats=("png", "svg"))
    png = outputs / "report" / "figure1_resnet.png"
    assert png in written and (outputs / "report" / "figure1_resnet.svg") in written
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(outputs / "report" / "figure1_resnet.csv")
    assert list(curves["epoch"]) == [1, 2, 3] and list(curves["n"]) == [3, 3, 3]
    assert list(curves["test_error_mean"]) == pytest.approx([4.5, 2.5, 3.5])  # the best config, per epoch
    assert list(curves["test_error_std"]) == pytest.approx([0.5, 0.5, 0.5])
    analyses = [analyse(e) for e in load_results(outputs).experiments]
    fig = draw_figure(figure_curves(figure_target(analyses, None)), "t")
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["Training loss", "Training digit error (%)",
                                                    "Test digit error (%)", "Test comparison error (%)"]


def test_figure_choice(outputs: Path) -> None:
    analyses = [analyse(e) for e in load_results(outputs).experiments]
    target = figure_target(analyses, "resnet/screen:batch_norm=false,channels=8")
    assert target.config == "batch_norm=False, channels=8"
    assert figure_target(analyses, "resnet:channels=8").config == "batch_norm=True, channels=8"  # best match
    with pytest.raises(ReportError, match="no configuration of resnet/screen has channels=3 .it takes 8, 16"):
        figure_target(analyses, "resnet:channels=3")
    with pytest.raises(ReportError, match="no results for 'alexnet'"):
        figure_target(analyses, "alexnet")


# ---------------------------------------------------------------------------------------------------
# Bad inputs


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


def test_missing_folder_arch_and_results(tmp_path: Path, outputs: Path) -> None:
    with pytest.raises(ReportError, match="no such folder"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no results found"):
        load_results(tmp_path / "empty")
    with pytest.raises(ReportError, match=r"no results for 'lenet' .*\(found: resnet\)"):
        load_results(outputs, "lenet")
    with pytest.raises(ReportError, match="unknown format"):
        run_report(outputs, fmt="html")


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


# ---------------------------------------------------------------------------------------------------
# Start-up: no torch, no ray


def test_report_never_imports_torch_or_ray() -> None:
    code = ("import tune_digits.report, sys; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------------------------------
# The command


def test_cli_report_json_and_figure_formats(outputs: Path) -> None:
    from click.testing import CliRunner

    from tune_digits.cli import main

    result = CliRunner().invoke(main, ["report", "resnet", "--output", str(outputs), "--format", "json",
                                       "--figure-format", "pdf", "--figure-format", "png"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [t["name"] for t in doc["tables"]] == ["table1_resnet_screen", "table2_best"]
    assert (outputs / "report" / "figure1_resnet.pdf").read_bytes()[:5] == b"%PDF-"
    assert (outputs / "report" / "figure1_resnet.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_prints_only_that_table(outputs: Path) -> None:
    from click.testing import CliRunner

    from tune_digits.cli import main

    result = CliRunner().invoke(main, ["report", "--output", str(outputs), "--compare", "batch_norm",
                                       "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("### Comparison — batch_norm") and "Table II" not in result.stdout
    assert not (outputs / "report" / "figure1_resnet.png").exists()


@pytest.mark.parametrize("args, message", [
    (["lenet"], "error: no results for 'lenet'"),
    (["--compare", "depth"], "error: no experiment varies 'depth'"),
    (["--figure", "resnet:channels=3"], "error: --figure resnet:channels=3: no configuration"),
])
def test_cli_errors_are_one_line(outputs: Path, args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from tune_digits.cli import main

    result = CliRunner().invoke(main, ["report", "--output", str(outputs), *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_cli_corrupt_search_json_is_one_line(outputs: Path) -> None:
    from click.testing import CliRunner

    from tune_digits.cli import main

    (outputs / "resnet" / "screen" / "search.json").write_text("[1, 2")
    result = CliRunner().invoke(main, ["report", "--output", str(outputs)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "search.json: not valid JSON" in result.stderr
