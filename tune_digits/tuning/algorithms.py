"""The registries of searchers (how configurations are chosen) and schedulers (when trials stop), and how a
plan becomes Tune's search space and TuneConfig.

A new searcher or scheduler is one registered function: it takes the plan and returns Tune's object (None:
Tune's default), and its docstring's first line is the CLI's help. The CLI's `--search`/`--scheduler`
choices are these registries' keys. (Ray Tune keeps the same kind of table: `SEARCH_ALG_IMPORT` in
`ray/tune/search/__init__.py`.) Importing this module is cheap (the CLI does it for --help): Ray and
optuna are imported inside the functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import SearchError
from ..registry import Registry

if TYPE_CHECKING:
    from .plan import SearchPlan


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered searcher or scheduler."""

    name: str
    make: Callable[["SearchPlan"], Any]  # → Tune's search algorithm or scheduler; None: Tune's default
    description: str  # the factory's docstring, first line
    needs_metric: bool = False  # it ranks trials: Tune gives it the plan's metric, to minimise
    exhaustive: bool = False  # (searchers) the grid's lists are crossed, every combination; else sampled
    stops_early: bool = False  # (schedulers) it may end a trial before its last epoch
    settings: tuple[str, ...] = ()  # (schedulers) what a space's `search: {scheduler: {name: ..., KEY: ...}}` may set
    package: str | None = None  # the Python package it needs, checked at plan time (then the extra of that name)
    needs_axis: tuple[str, ...] = ()  # (schedulers) at least one of these must be a grid axis (what PBT mutates)
    exploits: bool = False  # (schedulers) trials continue from other trials' Tune checkpoints (PBT)
    seeded: bool = False  # (searchers) its draws are seeded by the plan's first seed (search.json: searcher_seed)
    races: bool = False  # (searchers) it hands out the grid's (configuration, seed) runs itself, as its test decides


SEARCHERS: Registry[AlgorithmSpec] = Registry("search", SearchError)
SCHEDULERS: Registry[AlgorithmSpec] = Registry("scheduler", SearchError)


def register_searcher(name: str, *, exhaustive: bool = False, needs_metric: bool = False, package: str | None = None,
                      seeded: bool = False, races: bool = False, settings: tuple[str, ...] = ()):
    """Register `make(plan) -> search algorithm or None` as `--search NAME`; `settings`: the keys `--race`
    may set, read by `make` from `plan.algorithm.settings`."""
    return _register(SEARCHERS, name, exhaustive=exhaustive, needs_metric=needs_metric, package=package,
                     seeded=seeded, races=races, settings=settings)


def register_scheduler(name: str, *, stops_early: bool = False, needs_metric: bool = False,
                       settings: tuple[str, ...] = (), needs_axis: tuple[str, ...] = (), exploits: bool = False):
    """Register `make(plan) -> trial scheduler or None` as `--scheduler NAME`; `settings`: the keys a space's
    search: block may set, read by `make` from `plan.algorithm.settings`."""
    return _register(SCHEDULERS, name, stops_early=stops_early, needs_metric=needs_metric, settings=settings,
                     needs_axis=needs_axis, exploits=exploits)


def _register(table: Registry[AlgorithmSpec], name: str, **flags):
    def wrap(make):
        doc = (make.__doc__ or "").strip().splitlines()
        table.register(name, AlgorithmSpec(name, make, doc[0] if doc else "", **flags))
        return make
    return wrap


def searcher(name: str) -> AlgorithmSpec:
    return SEARCHERS.get(name)


def scheduler(name: str) -> AlgorithmSpec:
    return SCHEDULERS.get(name)


def check_package(spec: AlgorithmSpec, option: str) -> None:
    """A searcher whose package is not installed fails at plan time, naming the extra that installs it."""
    import importlib.util

    if spec.package and importlib.util.find_spec(spec.package) is None:
        raise SearchError(f"{option} {spec.name} needs {spec.package}: pip install -c constraints.txt "
                          f"'tune-digits[{spec.package}]'")


def help_text(table: Registry[AlgorithmSpec]) -> str:
    """`name: description` of each entry, for the CLI's help."""
    return " ".join(f"{spec.name}: {spec.description}." for spec in table.values())


# ---------------------------------------------------------------------------------------------------
# The registered ones


@register_searcher("grid", exhaustive=True)
def _grid(plan: SearchPlan):
    """every combination of the grid's lists (each distribution sampled NUM_SAMPLES times)"""
    return None  # Tune's variant generator crosses grid_search axes


@register_searcher("random")
def _random(plan: SearchPlan):
    """NUM_SAMPLES random draws from the grid's lists and distributions"""
    return None  # Tune's variant generator samples choice/uniform/... axes


@register_searcher("optuna", needs_metric=True, package="optuna", seeded=True)
def _optuna(plan: SearchPlan):
    """NUM_SAMPLES draws guided by Optuna's TPE (Bayesian), seeded by the first seed"""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study and trial
    return OptunaSearch(seed=plan.seeds[0])


@register_searcher("hyperopt", needs_metric=True, package="hyperopt", seeded=True)
def _hyperopt(plan: SearchPlan):
    """NUM_SAMPLES draws guided by HyperOpt's TPE, seeded by the first seed"""
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(random_state_seed=plan.seeds[0])


RACE_DEFAULTS = {"first": 2, "alpha": 0.05, "budget": None}  # --race's settings; max_seeds is the stage's --reps


def race_settings(settings: dict) -> dict:
    """--race's settings over their defaults, typed, each checked with one line for a bad one (at plan time)."""
    given = {**RACE_DEFAULTS, **{k: v for k, v in settings.items() if k in RACE_DEFAULTS}}

    def number(key: str, whole: bool):
        value = given[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and value != int(value)):
            raise SearchError(f"--race {key}={value}: expected {'a whole number' if whole else 'a number'}")
        return int(value) if whole else float(value)

    first, alpha = number("first", True), number("alpha", False)
    budget = None if given["budget"] is None else number("budget", True)
    if first < 2:
        raise SearchError(f"--race first={given['first']}: the first test needs at least 2 seeds per configuration")
    if not 0 < alpha < 1:
        raise SearchError(f"--race alpha={given['alpha']}: a significance level is between 0 and 1")
    if budget is not None and budget < 1:
        raise SearchError(f"--race budget={given['budget']}: a budget is at least 1 run")
    return {"first": first, "alpha": alpha, "budget": budget}


@register_searcher("race", exhaustive=True, needs_metric=True, races=True, settings=tuple(RACE_DEFAULTS))
def _race(plan: SearchPlan):
    """the grid raced: 2 seeds each, then one more to those not significantly worse than the best, up to --reps"""
    from .racer import RaceSearcher

    return RaceSearcher(str(plan.experiment_dir), plan.grid, plan.seeds, plan.metric, plan.epochs,
                        group=plan.options.seeds_per_trial, **race_settings(plan.algorithm.settings))


def _setting(plan: SearchPlan, key: str, default):
    return plan.algorithm.settings.get(key, default)


@register_scheduler("fifo")
def _fifo(plan: SearchPlan):
    """every trial runs all its epochs"""
    return None


@register_scheduler("asha", stops_early=True, needs_metric=True, settings=("grace_period", "reduction_factor"))
def _asha(plan: SearchPlan):
    """stops poor trials early, at rungs (asynchronous successive halving)"""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", max_t=plan.epochs,
                         grace_period=_setting(plan, "grace_period", max(1, plan.epochs // 5)),
                         reduction_factor=_setting(plan, "reduction_factor", 4))


@register_scheduler("hyperband", stops_early=True, needs_metric=True, settings=("reduction_factor",))
def _hyperband(plan: SearchPlan):
    """pauses and stops trials in brackets of successive halving (synchronous HyperBand)"""
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr="epoch", max_t=plan.epochs,
                              reduction_factor=_setting(plan, "reduction_factor", 3))


@register_scheduler("median", stops_early=True, needs_metric=True, settings=("grace_period", "min_samples"))
def _median(plan: SearchPlan):
    """stops a trial whose best result is worse than the median of the others' running means"""
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(time_attr="epoch", grace_period=_setting(plan, "grace_period", 1),
                              min_samples_required=_setting(plan, "min_samples", 3))


# The values Population Based Training may mutate: torch reads them from the optimiser, so a trial that
# continues from another's checkpoint (exploit) takes its own new values (train/engines.py).
PBT_MUTABLE = ("lr", "weight_decay")


@register_scheduler("pbt", stops_early=True, needs_metric=True, needs_axis=PBT_MUTABLE, exploits=True,
                    settings=("perturbation_interval", "quantile_fraction", "resample_probability", "synch"))
def _pbt(plan: SearchPlan):
    """Population Based Training: poor trials continue from a good one's checkpoint with lr/weight_decay mutated"""
    from ray.tune.schedulers import PopulationBasedTraining

    # A list mutates to a neighbouring value; a distribution is resampled or scaled by 0.8/1.2.
    mutations = {key: plan.grid[key] if isinstance(plan.grid[key], list) else _domain(plan.grid[key], crossed=False)
                 for key in PBT_MUTABLE if key in plan.grid}
    return PopulationBasedTraining(
        time_attr="epoch", hyperparam_mutations=mutations,
        perturbation_interval=_setting(plan, "perturbation_interval", plan.options.checkpoint_every),
        quantile_fraction=_setting(plan, "quantile_fraction", 0.25),
        resample_probability=_setting(plan, "resample_probability", 0.25),
        synch=bool(_setting(plan, "synch", 0)))  # 1: every trial waits at each interval, then the bottom exploit


# ---------------------------------------------------------------------------------------------------
# A plan in Tune's terms

# A distribution axis of a search space (search_spaces/README.md) → Tune's sampler.
_DISTRIBUTIONS = {
    "choice": lambda tune, args: tune.choice(args),
    "uniform": lambda tune, args: tune.uniform(*args),
    "loguniform": lambda tune, args: tune.loguniform(*args),
    "randint": lambda tune, args: tune.randint(args[0], args[1] + 1),  # the YAML's upper bound is inclusive
}


def param_space(plan: SearchPlan) -> dict:
    """Tune's param_space: the fixed trial values, the grid's axes and the seed axis (or seed groups)."""
    from ray import tune

    chooser = searcher(plan.algorithm.search)
    if chooser.races:  # the searcher hands out every configuration's values and seed
        return plan.trial_base()
    space = {**plan.trial_base(), **{k: _domain(v, chooser.exhaustive) for k, v in plan.grid.items()}}
    # The seeds are never sampled: a searcher that samples gets every seed of a configuration in its one
    # trial (plan.py groups them), so it sees one number per configuration, the mean over its seeds.
    if plan.options.seeds_per_trial > 1:
        groups = plan.seed_groups
        space["seeds"] = tune.grid_search(groups) if len(groups) > 1 else groups[0]
    else:
        space["seed"] = tune.grid_search(plan.seeds) if len(plan.seeds) > 1 else plan.seeds[0]
    return space


def _domain(values, crossed: bool):
    """A grid axis in Tune's terms: a list is crossed (grid) or drawn from; a distribution is sampled."""
    from ray import tune

    if isinstance(values, list):
        return tune.grid_search(values) if crossed else tune.choice(values)
    kind, args = next(iter(values.items()))
    return _DISTRIBUTIONS[kind](tune, args)


def tune_config(plan: SearchPlan):
    """Tune's TuneConfig: the registered searcher and scheduler, given the metric when either ranks trials."""
    from ray import tune

    chooser, stopper = searcher(plan.algorithm.search), scheduler(plan.algorithm.scheduler)
    ranked = chooser.needs_metric or stopper.needs_metric
    # A race's trials are its runs: at most every configuration × seed (it says when it has finished).
    samples = plan.num_runs if chooser.races else plan.algorithm.num_samples
    return tune.TuneConfig(
        num_samples=samples, max_concurrent_trials=plan.resources.max_concurrent,
        reuse_actors=True, search_alg=chooser.make(plan), scheduler=stopper.make(plan),
        metric=plan.metric if ranked else None, mode="min" if ranked else None)
