"""The report's tables: Table I (ranking, Welch vs the best), Table II (both views vs the paper), --compare,
Tables III/IV (the paper's ablations), and the registry every table is built from."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import hand_welch, metrics, outputs, write_experiment  # noqa: F401 (outputs: a fixture)

from tune_digits import paper
from tune_digits.report import (
    NotBuilt, ReportError, Table, analyse, best_table, build_tables, compare_table, load_results, register_table,
    run_report, table_names, unregister_table,
)


def analyses_of(root: Path) -> list:
    return [analyse(e) for e in load_results(root).experiments]


def test_table1_welch_against_best(outputs: Path) -> None:
    t = {t.name: t for t in build_tables(analyses_of(outputs))[0]}["table1_resnet_screen"]
    row = t.data.iloc[1]  # batch_norm=True, channels=8: [4, 5, 6] vs the best's [3, 3.5, 4]
    expected = hand_welch([4.0, 5.0, 6.0], [3.0, 3.5, 4.0])
    assert (row["diff_vs_best"], row["ci_low"], row["ci_high"], row["p_vs_best"]) == pytest.approx(expected)
    assert t.data.iloc[0]["diff_vs_best"] == 0 and math.isnan(t.data.iloc[0]["p_vs_best"])
    assert {"space", "batch_norm", "channels", "n", "pairs", "epochs", "settings"} <= set(t.data.columns)
    assert t.data.columns[0] == "space" and set(t.data["space"]) == {"resnet"}
    assert "3 seeds, 350 pairs, 3 epochs" in t.conditions
    assert any("lr=0.05" in n for n in t.notes)  # hyperparameters stay visible


def test_table2_both_views_and_paper(outputs: Path) -> None:
    t = best_table(analyses_of(outputs))
    d = t.data.set_index("view")
    assert list(d.index) == ["best_epoch", "final_epoch"] and set(d["space"]) == {"resnet"}
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
    t = best_table(analyses_of(outputs))
    row = t.data.iloc[1]
    assert row["experiment"] == "final" and row["n"] == 4 and row["pairs"] == 1000
    assert row["test_error_mean"] == pytest.approx(1.0 + 1.5 + 1.0)  # seeds 0..3: mean 1.5
    assert row["test_error_std"] == pytest.approx(np.std([0, 1, 2, 3], ddof=1))


def test_compare_option_at_best_and_pooled(outputs: Path) -> None:
    t = compare_table(analyses_of(outputs), "batch_norm")
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
        compare_table(analyses_of(outputs), "depth")


def test_tables_iii_and_iv_with_paper_numbers(tmp_path: Path) -> None:
    root = tmp_path / "out"
    write_experiment(root, "linear", "screen", [
        ({"dropout": False, "nodes": 128}, metrics(4.0, 0.5)), ({"dropout": True, "nodes": 128}, metrics(4.5, 1.0)),
        ({"dropout": False, "nodes": 64}, metrics(6.0, 1.0)), ({"dropout": True, "nodes": 64}, metrics(3.0, 1.0))],
        ["dropout", "nodes"])
    write_experiment(root, "lenet", "final", [({"aux_loss": True}, metrics(2.0, 0.5)),
                                             ({"aux_loss": False}, metrics(2.5, 0.5))], ["aux_loss"])
    tables, notes = build_tables(analyses_of(root))
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


def test_table_iii_not_built_is_a_note(tmp_path: Path) -> None:
    write_experiment(tmp_path, "linear", "screen", [({"nodes": n}, metrics(n / 32, 0.5)) for n in (64, 128)],
                     ["nodes"])
    tables, notes = build_tables(analyses_of(tmp_path))
    assert [t.name for t in tables] == ["findings", "table2_best", "table1_linear_screen", "provenance"]
    assert notes == ["Table III not built: no linear experiment varies dropout with the other options at their "
                     "best values"]


def test_weight_sharing_study_is_ranked_with_p_values(tmp_path: Path) -> None:
    root = tmp_path / "out"
    configs = [({"strategy": "two_channel", "weight_sharing": False, "digit_loss_weight": 0.0}, metrics(15.0, 1.0)),
               ({"strategy": "pair", "weight_sharing": True, "digit_loss_weight": 0.0}, metrics(11.0, 1.0)),
               ({"strategy": "pair", "weight_sharing": True, "digit_loss_weight": 1.0}, metrics(3.0, 0.5)),
               ({"strategy": "pair", "weight_sharing": False, "digit_loss_weight": 1.0}, metrics(4.0, 0.5))]
    write_experiment(root, "weight_sharing", "default", configs, ["strategy", "weight_sharing", "digit_loss_weight"])
    out = io.StringIO()
    run_report(root, out=out, figure="none")
    t1 = pd.read_csv(root / "report" / "table1_weight_sharing_default.csv")
    assert list(t1["strategy"]) == ["pair", "pair", "pair", "two_channel"]
    assert list(t1["digit_loss_weight"]) == [1, 1, 0, 0]
    assert t1["p_vs_best"].iloc[1:].notna().all() and (t1["p_vs_best"].iloc[2:] < 0.05).all()
    t2 = pd.read_csv(root / "report" / "table2_best.csv")
    assert set(t2["paper_ref"]) == {"resnet (paper's best)"}  # not one of the paper's nets
    cmp = compare_table(analyses_of(root), "strategy").data
    pooled = cmp[cmp["scope"] == "pooled"].set_index("value")
    assert pooled.loc["two_channel", "diff_vs_best"] > 0 and pooled.loc["two_channel", "p_vs_best"] < 0.05


# ---------------------------------------------------------------------------------------------------
# The registry


def test_paper_tables_are_registered_in_order() -> None:
    assert table_names() == ["findings", "table2_best", "table3_linear_dropout", "table4_lenet_aux", "table5_setups",
                             "table6_honest", "ablation", "table1_ranking", "race_rounds", "provenance"]
    with pytest.raises(ValueError, match="'table2_best' is already registered"):
        register_table("table2_best")(lambda analyses: None)


def test_a_registered_table_is_reported_and_unregistering_removes_it(outputs: Path) -> None:
    @register_table("configs_per_experiment")
    def configs_per_experiment(analyses):
        data = pd.DataFrame({"experiment": [a.exp.label for a in analyses],
                             "configs": [len(a.configs) for a in analyses]})
        return Table("configs_per_experiment", "Configurations", "how many configurations each experiment ran", data,
                     [("experiment", lambda r: r["experiment"]), ("configs", lambda r: str(r["configs"]))])

    @register_table("never_built")
    def never_built(analyses):
        raise NotBuilt("never built: on purpose")

    try:
        assert table_names()[-2:] == ["configs_per_experiment", "never_built"]
        out = io.StringIO()
        written = run_report(outputs, fmt="json", out=out, figure="none")
        doc = json.loads(out.getvalue())
        assert [t["name"] for t in doc["tables"]] == ["findings", "table2_best", "table1_resnet_screen", "provenance",
                                                      "configs_per_experiment"]
        assert doc["tables"][-1]["rows"] == [{"experiment": "resnet/screen", "configs": 4}]
        assert "never built: on purpose" in doc["notes"]
        assert outputs / "report" / "configs_per_experiment.csv" in written
    finally:
        unregister_table("configs_per_experiment")
        unregister_table("never_built")
    assert table_names() == ["findings", "table2_best", "table3_linear_dropout", "table4_lenet_aux", "table5_setups",
                             "table6_honest", "ablation", "table1_ranking", "race_rounds", "provenance"]
    tables, notes = build_tables(analyses_of(outputs))
    assert [t.name for t in tables] == ["findings", "table2_best", "table1_resnet_screen", "provenance"] and not notes


def test_setups_table_sets_the_authors_setup_beside_the_paper_and_ours(outputs: Path) -> None:
    from report_fixtures import RESNET

    write_experiment(outputs, "authors_resnet", "final", RESNET[1:2], [], seeds=(0, 1))
    analyses = analyses_of(outputs)
    t = [t for t in build_tables(analyses)[0] if t.name == "table5_setups"][0]
    d = t.data
    assert list(d["setup"]) == ["paper", "authors", "authors", "ours", "ours"]
    assert list(d["view"]) == ["best_epoch", "best_epoch", "final_epoch", "best_epoch", "final_epoch"]
    paper_row, authors_best = d.iloc[0], d.iloc[1]
    assert paper_row["test_error_mean"] == paper.TABLE_II["resnet"]["test_error"][0] and paper_row["n"] == 20
    # authors_resnet: base 3, scale 1, seeds 0 and 1 → epoch 2: 3 + seed; ours' best (base 2, scale 0.5): 2.5
    assert authors_best["n"] == 2 and authors_best["test_error_mean"] == pytest.approx(3.5)
    assert d.iloc[3]["test_error_mean"] == pytest.approx(2.5)
    assert "first epoch of lowest test digit error" in t.rule
    # Table II compares the authors' setup with the paper's ResNet, not as "the paper's best".
    t2 = best_table(analyses).data
    assert set(t2.loc[t2["space"] == "authors_resnet", "paper_ref"]) == {"resnet"}
    # Without an authors' setup the table is not built.
    assert "table5_setups" not in [t.name for t in build_tables(analyses_of_without(outputs))[0]]


def analyses_of_without(outputs: Path) -> list:
    return [a for a in analyses_of(outputs) if not a.exp.space.startswith(paper.AUTHORS_PREFIX)]


def test_honest_table_sets_the_levers_study_beside_the_paper_and_the_cited_results(outputs: Path) -> None:
    lenet = {"network": "lenet", "kernel_size": 5, "batch_norm": True, "aux_loss": True, "strategy": "prob"}
    write_experiment(outputs, "levers", "screen", [({**lenet, "ensemble": 1}, metrics(3.0, 1.0)),
                                                   ({**lenet, "ensemble": 3}, metrics(2.0, 0.5))],
                     ["ensemble"], val=lambda seed, epoch: float(seed + epoch))
    write_experiment(outputs, "levers", "final", [({**lenet, "ensemble": 3}, metrics(1.0, 0.5))], [])
    tables = {t.name: t for t in build_tables(analyses_of(outputs))[0]}
    d = tables["table6_honest"].data.set_index("source")
    assert d.loc["paper, lenet", "test_error_mean"] == paper.TABLE_II["lenet"]["test_error"][0]
    cited = d.loc["authors' code (cited), resnet"]
    assert (cited["test_error_mean"], cited["test_error_std"], cited["n"]) == (1.90, 0.38, 7)
    assert d.loc["best peer (cited), siamese lenet", "test_error_mean"] == 1.74
    study = d.loc["levers study, levers"]  # the final stage, at its final epoch: 1 + 0.5·seed + 1
    assert study["results"] == "levers/final" and study["n"] == 3 and study["rule"].startswith("final epoch")
    assert (study["test_error_mean"], study["test_error_std"]) == pytest.approx((2.5, 0.5))
    assert study["parameters"] == 3 * 63_848  # every member of the ensemble
    shown = tables["table6_honest"].display_frame()
    assert "191,544" in set(shown["parameters"]) and "—" in set(shown["parameters"])  # the peer's is unknown
    levers = tables["table6_levers_screen"].data.set_index("value")
    assert list(levers["lever"]) == ["ensemble", "ensemble"] and list(levers["n"]) == [3, 3]
    # final epoch 3: test = base + scale·seed + 1, val = seed + 3 for both
    assert levers.loc["1", "test_error_mean"] == pytest.approx(5.0) and levers.loc["3", "test_error_mean"] == 3.5
    assert (levers.loc["3", "val_error_mean"], levers.loc["3", "val_error_std"]) == pytest.approx((4.0, 1.0))
    assert levers.loc["3", "diff_val_error"] == 0
