"""The report's tables, in the order they are printed: each is one function registered with `register_table`.
A new table is one more registered function here (or anywhere imported before the report runs)."""
from __future__ import annotations

from typing import Sequence

from .. import paper
from .ablation import PaperAblation, ablation_table, compare_table
from .analysis import Analysis
from .findings import findings_table, variant_rows
from .origin import origin_table
from .race_rounds import race_table
from .ranking import best_table, ranking_table
from .honest import honest_tables
from .setups import setups_table
from .table import TABLES, NotBuilt, Table, register_table
from .variants import variants_tables

# The option names that switch the paper's ablations, in order of preference (see models/ and train.py).
TABLE_III = PaperAblation("linear", ("dropout",), paper.TABLE_III, "table3_linear_dropout",
                          "Table III — Linear with and without dropout", "Linear 2×128, Table III")
TABLE_IV = PaperAblation("lenet", ("aux_loss", "digit_loss_weight", "side_loss_weight"), paper.TABLE_IV,
                         "table4_lenet_aux", "Table IV — LeNet with and without the auxiliary loss",
                         "LeNet k=5 + batch norm, Table IV")


@register_table("findings")
def findings(analyses: Sequence[Analysis]) -> Table | None:
    """First: the study's questions answered, with their uncertainty."""
    return findings_table(analyses)


@register_table("table2_best")
def best_per_space(analyses: Sequence[Analysis]) -> Table:
    """Then Table II: the summary, beside the paper."""
    return best_table(analyses)


@register_table(TABLE_III.name)
def linear_dropout(analyses: Sequence[Analysis]) -> Table | None:
    """Table III: the Linear net with and without dropout."""
    return paper_ablation(analyses, TABLE_III)


@register_table(TABLE_IV.name)
def lenet_aux_loss(analyses: Sequence[Analysis]) -> Table | None:
    """Table IV: LeNet with and without the auxiliary loss."""
    return paper_ablation(analyses, TABLE_IV)


@register_table("table5_setups")
def setups(analyses: Sequence[Analysis]) -> Table | None:
    """Table V: the authors' setup beside the paper's and ours."""
    return setups_table(analyses)


@register_table("table6_honest")
def honest_best(analyses: Sequence[Analysis]) -> list[Table] | None:
    """Table VI: the honest best (chosen without the test set) beside the paper and the cited results; what
    each lever gave."""
    return honest_tables(analyses)


@register_table("ablation")
def ablations(analyses: Sequence[Analysis]) -> list[Table]:
    """After Table VI: each final's variants (an ablation of its winner), paired by seed with it."""
    return variants_tables(variant_rows(analyses))


@register_table("table1_ranking")
def rankings(analyses: Sequence[Analysis]) -> list[Table]:
    """Table I: one per screen, or per experiment with more than one configuration."""
    return [ranking_table(a) for a in analyses if a.exp.stage == "screen" or len(a.configs) > 1]


@register_table("race_rounds")
def races(analyses: Sequence[Analysis]) -> list[Table]:
    """After Table I: each raced screen's rounds (who was compared, who was dropped, where the winner stood)."""
    return [t for t in map(race_table, analyses) if t is not None]


@register_table("provenance")
def provenance(analyses: Sequence[Analysis]) -> Table:
    """Last: which code and command made each result set."""
    return origin_table(analyses)


def paper_ablation(analyses: Sequence[Analysis], spec: PaperAblation) -> Table | None:
    """The ablation when its search space has results (NotBuilt when none of them varies its option)."""
    if spec.space not in {a.exp.space for a in analyses}:
        return None
    t = ablation_table(analyses, spec)
    if t is None:
        raise NotBuilt(f"{spec.title.split(' — ')[0]} not built: no {spec.space} experiment varies "
                       f"{' or '.join(spec.options)} with the other options at their best values")
    return t


def build_tables(analyses: Sequence[Analysis], compare: str | None = None) -> tuple[list[Table], list[str]]:
    """The tables of a report: every registered table, or only `compare`'s; and notes on tables not built."""
    if compare:
        return [compare_table(analyses, compare)], []
    tables: list[Table] = []
    notes: list[str] = []
    for fn in list(TABLES.values()):
        try:
            built = fn(analyses)
        except NotBuilt as e:
            notes.append(str(e))
            continue
        if isinstance(built, Table):
            tables.append(built)
        elif built is not None:
            tables += built
    return tables, notes
