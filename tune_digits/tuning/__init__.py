"""Search spaces → Ray Tune trials → the tidy per-epoch tables. The only package that imports ray, and only
inside the functions that run a search: planning, a dry run and `--help` never pay for it.

- plan: what will run (`plan_search` → `SearchPlan`, `describe_plan`), no Ray;
- algorithms: the registries of searchers and schedulers, and the plan in Tune's terms;
- launch: how a plan is run (which Ray, the driver's output): one `Launch` value;
- runner: Ray start, the experiment's lock, the Tuner (new or restored), the outcome;
- placement: on a cluster, where the state lives (--storage): the preflight, Ray's folder, the tables' copy;
- resume: Tune's saved state of an interrupted search (reads whole?, restored);
- trainable: the trial (Ray ↔ train), continuing from its own checkpoints (checkpoints); writer and progress:
  the driver-side callbacks (live: what they share);
- reaper: the mark and watchdog of a local Ray, so that a driver killed hard leaves no process behind;
- faults: the fault-injection hooks of the tests.
"""
from .algorithms import SCHEDULERS, SEARCHERS, register_scheduler, register_searcher
from .faults import DELAY_ENV, FAULT_ENV, PAUSE_ENV
from .launch import Launch
from ..errors import SearchError
from .plan import (Algorithm, Resources, RunOptions, SearchPlan, Sizes, auto_seeds_per_trial,
                   describe_plan, plan_search, previous_meta)
from ..provenance import cpu_model
from .runner import SearchOutcome, ray_session, run_search, trial_slots

__all__ = ["Algorithm", "DELAY_ENV", "FAULT_ENV", "Launch", "PAUSE_ENV",
           "Resources", "RunOptions", "SCHEDULERS", "SEARCHERS", "SearchError",
           "SearchOutcome", "SearchPlan", "Sizes", "auto_seeds_per_trial", "cpu_model", "describe_plan",
           "plan_search", "previous_meta", "ray_session", "register_scheduler", "register_searcher", "run_search",
           "trial_slots"]

