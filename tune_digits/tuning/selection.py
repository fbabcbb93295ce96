"""What chooses among configurations, and on which data: the algorithm (command-line flags over the space's
`search:` block, as in W&B sweep files), the metric it minimises and the split that metric comes from.

The rule: whatever chooses while the search runs (a Bayesian searcher, an early-stopping scheduler) ranks
on a validation split carved from the training pairs; choosing on the test set takes an explicit
`--metric test_error` and is warned about. A plain grid run to the end (`grid` + `fifo`, the paper's
protocol) chooses nothing while it runs; the report ranks it afterwards, on val_error when the search
carved a validation split, else on test_error: the paper's rule, labelled as such. No Ray here.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import SearchError
from .algorithms import check_package, race_settings, scheduler, searcher

if TYPE_CHECKING:
    from ..spaces import Space

METRICS = ("val_error", "test_error")  # what a search may rank trials on (minimised)
DEFAULT_VAL_FRACTION = 0.2  # held out of each trial's training pairs when something chooses on val_error


@dataclass(frozen=True)
class Algorithm:
    """How configurations are chosen and stopped: names in the registries of `algorithms`. None: the space's
    `search:` block, else the default (grid, fifo; the metric as `choose_metric` says)."""

    search: str | None = None
    num_samples: int | None = None  # required by the searchers that sample (no silent single draw)
    scheduler: str | None = None
    metric: str | None = None  # "val_error" or "test_error"
    settings: dict = field(default_factory=dict)  # the scheduler's settings (a space's search: block)

    def __post_init__(self):
        if self.search is not None:
            searcher(self.search)  # an unknown name fails with the known ones
        if self.scheduler is not None:
            scheduler(self.scheduler)
        if self.num_samples is not None and self.num_samples < 1:
            raise SearchError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.metric is not None and self.metric not in METRICS:
            raise SearchError(f"unknown metric '{self.metric}'; use one of {', '.join(METRICS)}")

    @property
    def chooses(self) -> bool:
        """Something ranks trials while the search runs (an adaptive searcher or scheduler)."""
        return searcher(self.search).needs_metric or scheduler(self.scheduler).needs_metric

    @property
    def per_configuration(self) -> bool:
        """The searcher or scheduler must see one number per configuration: all its seeds in one trial (a race
        sees one number per seed instead: it hands out the seeds itself)."""
        chooser = searcher(self.search)
        return not chooser.races and (not chooser.exhaustive or scheduler(self.scheduler).needs_metric)


def resolve_algorithm(given: Algorithm, space: Space) -> Algorithm:
    """The flags over the space's `search:` block over the defaults, checked as a whole."""
    block = space.search
    settings = dict(given.settings)
    if given.scheduler is None or given.scheduler == block.get("scheduler"):
        settings = {**block.get("settings", {}), **settings}  # another scheduler's settings do not carry over
    where = f"in the search: block of {space.path}"
    try:
        algorithm = Algorithm(search=given.search or block.get("method") or "grid",
                              num_samples=given.num_samples or block.get("samples"),
                              scheduler=given.scheduler or block.get("scheduler") or "fifo",
                              metric=given.metric or block.get("metric"), settings=settings)
    except SearchError as err:
        raise SearchError(f"{err} ({where})") from None
    chooser, stopper = searcher(algorithm.search), scheduler(algorithm.scheduler)
    check_package(chooser, "--search")
    if chooser.races:  # the block's race settings under the flags' (--race KEY=VALUE)
        settings = {**block.get("race", {}), **settings}
        algorithm = replace(algorithm, settings=settings)
    unknown = sorted(set(settings) - set(stopper.settings) - set(chooser.settings))
    if unknown:
        raise SearchError(f"{where}: scheduler {stopper.name} has no setting {unknown[0]}; its settings: "
                          f"{', '.join(stopper.settings) or 'none'}"
                          + (f" (--search {chooser.name}'s: {', '.join(chooser.settings)})" if chooser.settings else ""))
    if chooser.races:
        _check_race(algorithm, stopper, space)
    if algorithm.num_samples is None:
        if not chooser.exhaustive:
            raise SearchError(f"--search {algorithm.search} draws configurations: say how many with --num-samples N "
                              f"(or samples: in the file's search: block)")
        algorithm = replace(algorithm, num_samples=1)
    if stopper.needs_axis and not any(key in space.grid for key in stopper.needs_axis):
        names = " or ".join(stopper.needs_axis)
        raise SearchError(f"--scheduler {stopper.name} mutates {names}, and neither is a grid axis: give it values "
                          f"to explore, e.g. --set 'lr={{loguniform: [1.0e-3, 1.0e-1]}}'")
    return algorithm


def _check_race(algorithm: Algorithm, stopper, space: Space) -> None:
    """A race ranks whole runs, by seed: no scheduler may stop them early, and its settings must make sense."""
    if stopper.needs_metric or stopper.stops_early:
        raise SearchError(f"--search race compares runs that ran every epoch: use --scheduler fifo, "
                          f"not {stopper.name}")
    if any(not isinstance(values, list) for values in space.grid.values()):
        raise SearchError("--search race races the grid's lists: a distribution axis cannot be raced "
                          "(use --search random/optuna for those)")
    race_settings(algorithm.settings)


def choose_metric(algorithm: Algorithm, fixed: dict, grid: dict) -> tuple[str, list[str], list[str]]:
    """(metric, notes, warnings); `fixed` gains val_fraction 0.2 when a choice is made on val_error and the
    space carves no validation split."""
    has_val = bool(fixed.get("val_fraction")) or "val_fraction" in grid
    metric = algorithm.metric or ("val_error" if algorithm.chooses or has_val else "test_error")
    notes, warnings = [], []
    if metric == "val_error" and not has_val:
        fixed["val_fraction"] = DEFAULT_VAL_FRACTION
        notes.append(f"val_fraction {DEFAULT_VAL_FRACTION}: {DEFAULT_VAL_FRACTION:.0%} of each trial's training "
                     f"pairs are held out, so nothing is chosen on the test set (--set val_fraction=X to change)")
    if metric == "test_error" and algorithm.chooses:
        warnings.append(f"choosing on the test set (--metric test_error): {algorithm.search}/{algorithm.scheduler} "
                        f"rank trials on test_error, so the chosen configuration's test error is optimistic")
    return metric, notes, warnings


def metric_line(algorithm: Algorithm, metric: str, fixed: dict) -> str:
    """The dry run's line: the metric, the split it comes from, and who chooses on it."""
    split = (f"validation split, {fixed['val_fraction']:.0%} of each trial's training pairs"
             if metric == "val_error" and "val_fraction" in fixed
             else "validation split (the grid's val_fraction)" if metric == "val_error" else "test split")
    if algorithm.chooses:
        return f"metric: {metric}, minimised ({split}): {algorithm.search}/{algorithm.scheduler} choose on it"
    rule = "" if metric == "val_error" else "; the paper's rule, optimistic: chosen on the test set"
    return (f"metric: {metric} ({split}): nothing is chosen while the grid runs; the report ranks configurations "
            f"on it afterwards{rule}")
