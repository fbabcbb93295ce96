"""Experiment tracking, opt-in (`--log tensorboard|mlflow|wandb`): Ray Tune's own logger callbacks, each run
tagged with its configuration id and seed(s) so MLflow and W&B group the repeats of a configuration.

Where each writes: TensorBoard event files beside each trial's checkpoints (`tensorboard --logdir
OUTPUT/SPACE/NAME/ray`); MLflow to $MLFLOW_TRACKING_URI, else a SQLite store OUTPUT/SPACE/NAME/mlflow.db
(`mlflow ui --backend-store-uri sqlite:///...`); W&B to project $WANDB_PROJECT (else tune-digits), online or as
$WANDB_MODE says (offline: run folders under $WANDB_DIR, synced later with `wandb sync`).
The trackers are Ray's; importing this module stays cheap (Ray is imported inside the functions).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..errors import SearchError
from ..registry import Registry

if TYPE_CHECKING:
    from .plan import SearchPlan

EXTRA = "tracking"  # pip install 'tune-digits[tracking]'


@dataclass(frozen=True)
class Tracker:
    name: str
    package: str  # the module it needs (installed by the extra)
    make: Callable[["SearchPlan"], object]  # → Ray Tune callback


TRACKERS: Registry[Tracker] = Registry("--log", SearchError)


def register_tracker(name: str, package: str):
    def wrap(make):
        TRACKERS.register(name, Tracker(name, package, make))
        return make
    return wrap


def check_trackers(names) -> None:
    """At plan time: each name is a tracker, and its package is installed (else the extra to install)."""
    for name in names:
        tracker = TRACKERS.get(name)
        if importlib.util.find_spec(tracker.package) is None:
            raise SearchError(f"--log {name} needs {tracker.package}: pip install -c constraints.txt "
                              f"'tune-digits[{EXTRA}]'")


def callbacks(plan: SearchPlan) -> list:
    return [TRACKERS.get(name).make(plan) for name in plan.options.log]


def config_id(config: dict) -> str:
    """The same for every seed of one configuration: a short hash of its values without seed and threads."""
    values = {k: v for k, v in config.items() if k not in ("seed", "seeds", "threads")}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_tags(config: dict) -> dict[str, str]:
    """The tags of one trial's run: its configuration id and its seed(s)."""
    seeds = config.get("seeds", [config.get("seed")])
    return {"config_id": config_id(config), "seeds": ",".join(str(s) for s in seeds)}


@register_tracker("tensorboard", "tensorboardX")
def _tensorboard(plan: SearchPlan):
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


@register_tracker("mlflow", "mlflow")
def _mlflow(plan: SearchPlan):
    # MLflow 3 refuses new file stores (./mlruns): a SQLite file is its local store now.
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{plan.experiment_dir / 'mlflow.db'}"
    return _subclass("TaggedMLflow")(tracking_uri=uri, experiment_name=f"{plan.space.name}-{plan.name}")


@register_tracker("wandb", "wandb")
def _wandb(plan: SearchPlan):
    # The run's settings travel as arguments: W&B logs from a Ray actor, which need not see this shell's env.
    env = {key: os.environ[var] for key, var in (("mode", "WANDB_MODE"), ("dir", "WANDB_DIR")) if var in os.environ}
    return _subclass("TaggedWandb")(project=os.environ.get("WANDB_PROJECT", "tune-digits"), job_type=plan.stage, **env)


def _tagged_mlflow():
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class TaggedMLflow(MLflowLoggerCallback):
        """Ray's MLflow callback, each run tagged with its configuration id and seeds, and each result logged
        as one batch at its epoch (Ray's logs metric by metric: a store commit each, BENCHMARKS.md §8)."""

        def log_trial_start(self, trial):
            if trial not in self._trial_runs:
                tags = {**self.tags, **run_tags(trial.config), "trial_name": str(trial)}
                self._trial_runs[trial] = self.mlflow_util.start_run(tags=tags, run_name=str(trial)).info.run_id
            super().log_trial_start(trial)

        def log_trial_result(self, iteration, trial, result):
            import time

            from mlflow import MlflowClient
            from mlflow.entities import Metric
            from ray.tune.utils import flatten_dict

            step, now = int(result.get("epoch") or result["training_iteration"]), int(time.time() * 1000)
            metrics = [Metric(key, float(value), now, step) for key, value in flatten_dict(result).items()
                       if isinstance(value, (int, float)) and not isinstance(value, bool)
                       and not key.startswith("config/")]  # the config is the run's params already
            if not hasattr(self, "_client"):
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            self._client.log_batch(self._trial_runs[trial], metrics=metrics)

    return TaggedMLflow


def _tagged_wandb():
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    class FlushingActor(_WandbLoggingActor):
        def run(self):
            super().run()
            # Ray kills this actor as soon as run() returns, and W&B's service process dies with it; on a
            # loaded machine `finish()` had returned before that process wrote the run's last records (an
            # offline run was left without its metrics). teardown() waits for it to finish writing.
            self._wandb.teardown()

    class TaggedWandb(WandbLoggerCallback):
        """Ray's W&B callback: a configuration's runs in one group (its id), tagged with their seeds."""

        _logger_actor_cls = FlushingActor

        def _start_logging_actor(self, trial, exclude_results, **init_kwargs):
            tags = run_tags(trial.config)
            init_kwargs.update(group=tags["config_id"], tags=[f"seeds={tags['seeds']}"])
            super()._start_logging_actor(trial, exclude_results, **init_kwargs)

    return TaggedWandb


_SUBCLASSES = {"TaggedMLflow": _tagged_mlflow, "TaggedWandb": _tagged_wandb}


def __getattr__(name: str):
    """The callback subclasses are built on first use (they import Ray), as module attributes, so Tune's
    pickle of a search that used them finds them again when it resumes."""
    if name not in _SUBCLASSES:
        raise AttributeError(name)
    cls = _SUBCLASSES[name]()
    cls.__module__, cls.__qualname__ = __name__, name
    globals()[name] = cls
    return cls


def _subclass(name: str):
    return globals().get(name) or __getattr__(name)
