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


SEARCHERS: dict[str, AlgorithmSpec] = {}
SCHEDULERS: dict[str, AlgorithmSpec] = {}


def register_searcher(name: str, *, exhaustive: bool = False, needs_metric: bool = False):
    """Register `make(plan) -> search algorithm or None` as `--search NAME`."""
    return _register(SEARCHERS, name, exhaustive=exhaustive, needs_metric=needs_metric)


def register_scheduler(name: str, *, stops_early: bool = False, needs_metric: bool = False):
    """Register `make(plan) -> trial scheduler or None` as `--scheduler NAME`."""
    return _register(SCHEDULERS, name, stops_early=stops_early, needs_metric=needs_metric)


def _register(table: dict[str, AlgorithmSpec], name: str, **flags):
    def wrap(make):
        doc = (make.__doc__ or "").strip().splitlines()
        table[name] = AlgorithmSpec(name, make, doc[0] if doc else "", **flags)
        return make
    return wrap


def searcher(name: str) -> AlgorithmSpec:
    return _lookup(SEARCHERS, "search", name)


def scheduler(name: str) -> AlgorithmSpec:
    return _lookup(SCHEDULERS, "scheduler", name)


def _lookup(table: dict[str, AlgorithmSpec], kind: str, name: str) -> AlgorithmSpec:
    if name not in table:
        from .plan import SearchError

        raise SearchError(f"unknown {kind} '{name}'; use one of {', '.join(table)}")
    return table[name]


def help_text(table: dict[str, AlgorithmSpec]) -> str:
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


@register_searcher("optuna", needs_metric=True)
def _optuna(plan: SearchPlan):
    """NUM_SAMPLES draws guided by Optuna's Bayesian search (needs the optuna extra)"""
    try:
        from ray.tune.search.optuna import OptunaSearch
        import optuna  # noqa: F401
    except ImportError:
        from .plan import SearchError

        raise SearchError("--search optuna needs optuna: pip install -c constraints.txt 'tune-digits[optuna]'") from None
    return OptunaSearch()


@register_scheduler("fifo")
def _fifo(plan: SearchPlan):
    """every trial runs all its epochs"""
    return None


@register_scheduler("asha", stops_early=True, needs_metric=True)
def _asha(plan: SearchPlan):
    """stops poor trials early (on val_error when val_fraction is set)"""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", max_t=plan.epochs, grace_period=max(1, plan.epochs // 5))


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

    crossed = searcher(plan.algorithm.search).exhaustive

    def axis(values):
        if isinstance(values, list):
            return tune.grid_search(values) if crossed else tune.choice(values)
        kind, args = next(iter(values.items()))
        return _DISTRIBUTIONS[kind](tune, args)

    space = {**plan.trial_base(), **{k: axis(v) for k, v in plan.grid.items()}}
    if plan.options.seeds_per_trial > 1:
        groups = plan.seed_groups
        space["seeds"] = tune.grid_search(groups) if len(groups) > 1 else groups[0]
    elif crossed or len(plan.seeds) > 1:
        space["seed"] = tune.grid_search(plan.seeds) if crossed else tune.choice(plan.seeds)
    else:
        space["seed"] = plan.seeds[0]
    return space


def tune_config(plan: SearchPlan):
    """Tune's TuneConfig: the registered searcher and scheduler, given the metric when either ranks trials."""
    from ray import tune

    chooser, stopper = searcher(plan.algorithm.search), scheduler(plan.algorithm.scheduler)
    ranked = chooser.needs_metric or stopper.needs_metric
    return tune.TuneConfig(
        num_samples=plan.algorithm.num_samples, max_concurrent_trials=plan.resources.max_concurrent,
        reuse_actors=True, search_alg=chooser.make(plan), scheduler=stopper.make(plan),
        metric=plan.metric if ranked else None, mode="min" if ranked else None)
