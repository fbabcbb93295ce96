"""What a search will run, decided before Ray starts (so `--dry-run` shows exactly this): a search space,
a stage and the user's options → a `SearchPlan`. No Ray, no torch at import time.

The options come in four groups, each checked on construction: `Sizes` (how big and how many),
`Algorithm` (a registered searcher and scheduler, the metric; selection.py), `Resources` (per trial, and how
many at once) and `RunOptions` (checkpoints, retries, seed grouping, storage, tracking).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SearchError, UserError
from ..results import CONFIG_RENAMES, SEARCH_JSON, ResultsError, read_meta
from ..storage import check_scheme, join, normalize
from .algorithms import race_settings, searcher
from .selection import Algorithm, choose_metric, metric_line, resolve_algorithm
from .tracking import check_trackers

if TYPE_CHECKING:
    from ..spaces import Space

STAGES = ("screen", "final", "custom")
MAX_TRAIN_PAIRS = 30_000  # MNIST's 60,000 train digits, two per pair (data.SPLIT_SIZES; TrainConfig checks both)


def _at_least(group, **lows) -> None:
    """Each named field of `group` is None or at least its low bound; errors name the CLI option."""
    for name, low in lows.items():
        value = getattr(group, name)
        if value is not None and value < low:
            raise SearchError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


@dataclass(frozen=True)
class Sizes:
    """How big each trial is and how many repetitions; None takes the stage's value (else the file's)."""

    pairs: int | None = None
    reps: int | None = None  # seeds seed_offset .. seed_offset + reps - 1
    epochs: int | None = None
    seed_offset: int = 0

    def __post_init__(self):
        _at_least(self, pairs=2, reps=1, epochs=1)
        if self.pairs is not None and self.pairs > MAX_TRAIN_PAIRS:
            raise SearchError(f"--pairs must be at most {MAX_TRAIN_PAIRS:,}: MNIST's train split has "
                              f"{2 * MAX_TRAIN_PAIRS:,} digits, two per pair; got {self.pairs:,}")


@dataclass(frozen=True)
class Resources:
    """What each trial asks Ray for, and a cap on trials running at once (None: as many as fit)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None

    def __post_init__(self):
        _at_least(self, max_concurrent=1)
        if self.cpus_per_trial <= 0:
            raise SearchError(f"--cpus-per-trial must be positive, got {self.cpus_per_trial}")
        g = self.gpus_per_trial
        if g < 0 or (g > 1 and g != int(g)):
            raise SearchError(f"--gpus-per-trial must be a fraction in (0, 1] or a whole number, got {g}")


@dataclass(frozen=True)
class RunOptions:
    """How trials run: checkpoints, retries, seed grouping and where Ray keeps its state."""

    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always checkpointed)
    max_failures: int = 2  # retries of a failing trial
    seeds_per_trial: int = 1  # > 1: one trial trains that many seeds of a configuration (fit_replicas)
    vectorize: bool = False  # ... as one batched model
    storage: str | None = None  # Ray storage URI (a cluster's shared folder or bucket); None: the experiment's ray/
    log: tuple[str, ...] = ()  # experiment trackers (tracking.py): tensorboard, mlflow, wandb

    def __post_init__(self):
        _at_least(self, checkpoint_every=1, seeds_per_trial=1)
        if self.storage:  # Ray wants it absolute (trials change their working directory)
            check_scheme(self.storage)  # here, so that --dry-run catches it (the network is tried at the start)
            object.__setattr__(self, "storage", normalize(self.storage))
        check_trackers(self.log)


@dataclass
class SearchPlan:
    """Everything a search needs: the trials' values, the seeds and how the trials are run."""

    space: Space
    stage: str  # "screen", "final" or "custom"
    name: str
    pairs: int
    epochs: int
    seeds: list[int]
    fixed: dict  # values shared by every trial (training hyperparameters, model options, ...)
    grid: dict  # axis → list of values, or a distribution spec (random/optuna searches)
    output: Path
    algorithm: Algorithm = field(default_factory=Algorithm)
    resources: Resources = field(default_factory=Resources)
    options: RunOptions = field(default_factory=RunOptions)  # seeds_per_trial at most the seeds
    metric: str = "test_error"  # what searchers and schedulers that rank trials minimise (selection.py)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # printed on stderr too: e.g. choosing on the test set

    @property
    def network(self) -> str:
        return self.space.network

    @property
    def experiment_dir(self) -> Path:
        return self.output / self.space.name / self.name

    @property
    def combinations(self) -> int:
        lists = [len(v) for v in self.grid.values() if isinstance(v, list)]
        per_sample = math.prod(lists) if searcher(self.algorithm.search).exhaustive else 1
        return per_sample * self.algorithm.num_samples

    @property
    def seed_groups(self) -> list[list[int]]:
        """The seeds each trial of a configuration trains: one each, or `seeds_per_trial` together."""
        k = self.options.seeds_per_trial
        return [self.seeds[i:i + k] for i in range(0, len(self.seeds), k)]

    @property
    def num_runs(self) -> int:
        """Repetitions: configurations × seeds."""
        return self.combinations * len(self.seeds)

    @property
    def num_trials(self) -> int:
        """Ray trials: configurations × seed groups (for a race, at most: its first round grouped, then one
        trial per seed)."""
        if searcher(self.algorithm.search).races:
            first = min(race_settings(self.algorithm.settings)["first"], len(self.seeds))
            k = self.options.seeds_per_trial
            return self.combinations * (math.ceil(first / k) + len(self.seeds) - first)
        return self.combinations * len(self.seed_groups)

    def trial_base(self) -> dict:
        """The values every trial's config shares (the grid's axes and the seed axis come on top)."""
        threads = max(1, int(self.resources.cpus_per_trial))
        return {**self.fixed, "network": self.network, "pairs": self.pairs, "epochs": self.epochs, "threads": threads}

    def fingerprint(self) -> str:
        """What defines the trials; a rerun under the same name must match it to resume."""
        key = {"fixed": _hashed_names(self.trial_base()), "grid": _hashed_names(self.grid), "seeds": self.seeds,
               "search": self.algorithm.search, "num_samples": self.algorithm.num_samples,
               "scheduler": self.algorithm.scheduler}
        key["fixed"].pop("threads")
        # What is measured, not what is trained: a screen started before `train_eval` existed still resumes.
        key["fixed"].pop("train_eval", None)
        if self.options.seeds_per_trial > 1:  # other trials, so no resuming across a change (absent by default)
            key.update(seeds_per_trial=self.options.seeds_per_trial, vectorize=self.options.vectorize)
        if self.algorithm.chooses:  # what is chosen on (absent for a plain grid, as before)
            key.update(metric=self.metric, settings=self.algorithm.settings)
        return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _hashed_names(settings: dict) -> dict:
    """Settings under the names the fingerprint was first computed with (`arch`, `aux_weight`, ...), so the
    renames leave every existing experiment's fingerprint as it was."""
    old = {new: old for old, new in CONFIG_RENAMES.items()}
    return {old.get(key, key): value for key, value in settings.items()}


def plan_search(space: Space, *, stage: str | None = None, name: str | None = None, best: dict | None = None,
                output: str | Path = "outputs", sizes: Sizes = Sizes(), algorithm: Algorithm = Algorithm(),
                resources: Resources = Resources(), options: RunOptions = RunOptions()) -> SearchPlan:
    """Turn a space, a stage and the user's options into a plan.

    `screen` runs every combination at the stage's pairs and seeds; `final` runs only `best` (the screen's
    winner, else the file's declared best) at the final stage's size; `custom` (no stage) runs the grid
    with the file's fixed values.
    """
    stage = stage or "custom"
    if stage not in STAGES:
        raise SearchError(f"unknown stage '{stage}'; use screen or final")
    spec = space.stages.get(stage)
    if stage != "custom" and spec is None:
        raise SearchError(f"{space.path}: no stages.{stage} section")
    fixed, grid, notes = dict(space.fixed), dict(space.grid), []
    if stage == "final":
        grid, note = _final_grid(space, grid, best, Path(output) / space.name / "screen")
        notes.append(note)
    pairs = sizes.pairs or (spec.pairs if spec else fixed.get("pairs", 1000))
    epochs = sizes.epochs or (spec.epochs if spec and spec.epochs else None) or fixed.get("epochs", 25)
    n_seeds = sizes.reps or (spec.seeds if spec else 1)
    fixed.pop("pairs", None)
    fixed.pop("epochs", None)
    if "train_eval" not in fixed and "train_eval" not in grid:
        # A screen ranks on the final epoch: its training error is measured then only, unless the space's stage
        # or --set train_eval=every says otherwise. The final stage keeps every epoch (Figure 1).
        train_eval = (spec.train_eval if spec else None) or ("final" if stage == "screen" else None)
        if train_eval and train_eval != "every":
            fixed["train_eval"] = train_eval
    algorithm = resolve_algorithm(algorithm, space)
    if searcher(algorithm.search).races and math.prod(len(v) for v in grid.values() if isinstance(v, list)) == 1:
        # A final stage (or a one-configuration grid) under a space whose search: block races: nothing to race.
        algorithm = replace(algorithm, search="grid", settings={})
        notes.append("one configuration: nothing to race, every seed runs (--search grid)")
    metric, metric_notes, warnings = choose_metric(algorithm, fixed, grid)
    notes += _algorithm_notes(algorithm, grid) + metric_notes
    options, grouping_note = _grouping(options, algorithm, n_seeds)
    _check_vectorized_ensemble(options, fixed, grid)
    notes += grouping_note
    _check_trial_config(space, {**fixed, "pairs": pairs, "epochs": epochs})
    seeds = list(range(sizes.seed_offset, sizes.seed_offset + n_seeds))
    return SearchPlan(space=space, stage=stage, name=name or (stage if stage != "custom" else "default"),
                      pairs=pairs, epochs=epochs, seeds=seeds, fixed=fixed, grid=grid, output=Path(output).resolve(),
                      algorithm=algorithm, resources=resources, options=options, metric=metric, notes=notes,
                      warnings=warnings)


def _final_grid(space: Space, grid: dict, best: dict | None, screen_dir: Path) -> tuple[dict, str]:
    """The final stage's one-combination grid and the note that says where it came from: the screen's winner as
    the report ranks it (on val_error where the screen carved a validation split, else the paper's rule)."""
    chosen = best if best is not None else space.best

    def key_in_chosen(axis: str) -> str | None:  # the report names options as results do today (CONFIG_RENAMES)
        return next((k for k in (axis, CONFIG_RENAMES.get(axis)) if k in chosen), None)

    missing = [k for k in grid if key_in_chosen(k) is None]
    if missing:
        raise SearchError(f"--stage final needs the best value of {', '.join(missing)}: run --stage screen "
                          f"first or declare it under best: in {space.path}")
    keys = {axis: key_in_chosen(axis) for axis in grid}
    source = f"from the screen stage, {_screen_rule(screen_dir)}" if best is not None else "declared in the file"
    note = (f"best combination ({source}): "
            + (", ".join(f"{k}={v}" for k, v in chosen.items() if k in keys.values()) or "the only one"))
    return {axis: [chosen[key]] for axis, key in keys.items()}, note


def _screen_rule(screen_dir: Path) -> str:
    """How the report ranked the screen's configurations: on its validation split, else on test error."""
    meta = previous_meta(screen_dir) or {}
    fixed, grid = meta.get("fixed") or {}, meta.get("grid") or {}
    if fixed.get("val_fraction") or "val_fraction" in grid:
        return "ranked on val_error (its validation split)"
    return "ranked on test_error: the paper's rule, chosen on the test set"


def _algorithm_notes(algorithm: Algorithm, grid: dict) -> list[str]:
    if searcher(algorithm.search).exhaustive and algorithm.num_samples == 1 \
            and any(isinstance(v, dict) for v in grid.values()):
        return ["the grid has distributions: each is sampled once (use --num-samples N for more)"]
    return []


def _grouping(options: RunOptions, algorithm: Algorithm, n_seeds: int) -> tuple[RunOptions, list[str]]:
    """The options with seeds_per_trial at most the seeds, checked against vectorize and the algorithm: a
    searcher that samples, or a scheduler that ranks, sees one number per configuration (the mean over its
    seeds), so each configuration's seeds all run in its one trial. Also the note that says so."""
    per_trial, note = min(options.seeds_per_trial, n_seeds), []
    if searcher(algorithm.search).races and per_trial > 1:
        first = min(race_settings(algorithm.settings)["first"], n_seeds)
        if per_trial > first or options.vectorize:
            raise SearchError(f"--search {algorithm.search} groups only a configuration's first round ({first} seeds, "
                              f"due whatever the results) into one trial; later seeds go out one per trial as its "
                              f"test decides: --seeds-per-trial {first} at most, without --vectorize")
    if algorithm.per_configuration and n_seeds > 1:
        if per_trial not in (1, n_seeds):
            raise SearchError(f"--search {algorithm.search} --scheduler {algorithm.scheduler} sees one number per "
                              f"configuration: --seeds-per-trial must be 1 or all {n_seeds} seeds")
        per_trial = n_seeds
        note = [f"{algorithm.search}/{algorithm.scheduler} see one number per configuration: each trial trains all "
                f"{n_seeds} seeds of its configuration and reports their mean (one row per seed is kept)"]
    if options.vectorize and per_trial < 2:
        raise SearchError("--vectorize trains the seeds of a trial as one model: give --seeds-per-trial 2 or more "
                          f"(this search has {n_seeds} seed(s))")
    return replace(options, seeds_per_trial=per_trial), note


def _check_vectorized_ensemble(options: RunOptions, fixed: dict, grid: dict) -> None:
    """The vectorized engine stacks one model per seed; an ensemble inside a trial is trained in turn only."""
    values = [fixed.get("ensemble", 1), *(grid.get("ensemble") if isinstance(grid.get("ensemble"), list) else [])]
    if options.vectorize and any(v != 1 for v in values):
        raise SearchError("--vectorize cannot train an ensemble inside a trial (ensemble > 1): drop --vectorize")


def _check_trial_config(space: Space, values: dict) -> None:
    """One full trial config, checked before anything runs (values were checked axis by axis on load)."""
    from ..train import TrainConfig

    try:
        TrainConfig.from_flat({**values, "network": space.network})
    except UserError as err:
        raise SearchError(f"{space.path}: {err}") from None


def previous_meta(experiment_dir: Path) -> dict | None:
    """The search.json of an experiment that already started (in today's names), None if none."""
    try:
        return read_meta(experiment_dir / SEARCH_JSON, missing_ok=True)
    except ResultsError as err:
        raise SearchError(f"{err}; use --restart to archive it or --name to start another") from None


def auto_seeds_per_trial(plan: SearchPlan, slots: int) -> int:
    """Seeds per trial such that there are still at least two trials per slot (trials running at once), so
    grouping never idles a CPU or GPU share and uneven trial lengths still balance out. An experiment that
    already started keeps its grouping, so that it resumes instead of being refused as another search."""
    previous = previous_meta(plan.experiment_dir)
    if previous is not None:
        return int(previous.get("seeds_per_trial", 1))
    n = len(plan.seeds)
    groups = min(n, math.ceil(2 * max(1, slots) / plan.combinations))  # per configuration
    return math.ceil(n / groups)  # groups of even size: 20 seeds in 4 groups are 5 + 5 + 5 + 5, not 6 + 6 + 6 + 2


def describe_plan(plan: SearchPlan) -> str:
    """What --dry-run prints: the grid, the fixed values, the trial count and the resources."""
    opts, res, alg = plan.options, plan.resources, plan.algorithm
    lines = [f"search space: {plan.space.name} ({plan.space.path}), network {plan.network}, stage {plan.stage}",
             f"experiment:   {plan.experiment_dir}"]
    if opts.storage:  # where the results live: checkpoints and the tables' copy (tune-digits report reads it)
        lines.append(f"storage:      {join(opts.storage, plan.space.name, plan.name)} (checkpoints and results; "
                     f"tune-digits report --output {opts.storage})")
    lines += [f"  grid  {key}: {values}" for key, values in plan.grid.items()]
    lines += [f"  fixed {key}: {value}" for key, value in sorted(plan.fixed.items())]
    grouped = (f" runs in {plan.num_trials} trials of up to {opts.seeds_per_trial} seeds"
               + (" (vectorized)" if opts.vectorize else "")) if opts.seeds_per_trial > 1 else ""
    if searcher(alg.search).races and opts.seeds_per_trial > 1:
        grouped = f" runs at most; each configuration's first {opts.seeds_per_trial} seeds in one trial"
    lines += [f"  pairs: {plan.pairs}   epochs: {plan.epochs}   seeds: {len(plan.seeds)} "
              f"({plan.seeds[0]}..{plan.seeds[-1]})",
              f"trials: {plan.combinations} configuration(s) × {len(plan.seeds)} seed(s) = {plan.num_runs}" + grouped,
              f"each trial: {res.cpus_per_trial:g} CPU, {res.gpus_per_trial:g} GPU; search {alg.search}"
              + (f" ({alg.num_samples} samples)" if not searcher(alg.search).exhaustive else "")
              + f", scheduler {alg.scheduler}, up to {opts.max_failures} retries per trial, "
              f"checkpoint every {opts.checkpoint_every} epoch(s)" + (f", in {opts.storage}" if opts.storage else ""),
              metric_line(alg, plan.metric, plan.fixed)]
    if searcher(alg.search).races:
        lines.append(race_line(plan))
    if opts.log:
        lines.append(f"tracking: {', '.join(opts.log)}")
    lines += [f"note: {n}" for n in plan.notes]
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def race_line(plan: SearchPlan) -> str:
    """The dry run's account of a race: its rounds, its test and its run counts at best and at worst."""
    s, n, k = race_settings(plan.algorithm.settings), len(plan.seeds), plan.combinations
    first, alpha, budget = min(s["first"], n), s["alpha"], s["budget"]
    worst = k * n if budget is None else min(k * n, budget)
    return (f"race: {first} seed(s) per configuration, then after each round Friedman's test (alpha {alpha:g}) "
            f"and Conover's against the best (Holm)\n      drop the significantly worse; survivors get one seed "
            f"more, up to {n}, ranked on {plan.metric}\n      runs: at least {min(k * first, worst)} (every "
            f"configuration's first seeds), at most {worst}" + (f" (budget {budget})" if budget is not None else ""))
