"""Search spaces → a Ray Tune grid → trials. The only module that imports ray (lazily: a dry run,
`--help` and `tune-digits report` never pay for it).

One experiment is `outputs/<space>/<name>/`: Ray's own folder under `ray/` (checkpoints, for resuming)
and the tidy per-epoch tables of outputs/README.md, written by a driver-side callback as trials report,
so they work the same on a laptop and on a cluster.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .errors import UserError
from .spaces import Space
from .train import METRICS, TrainConfig

# wall_time (unix seconds at the report) and node (the Ray node the epoch ran on) place each epoch in time
# and on the cluster: how many trials overlapped, which ones a lost node moved (outputs/README.md).
ROW_HEAD = ("trial_id", "seed", "epoch", *METRICS, "time_s", "wall_time", "node")
# Config keys that are the search's own bookkeeping, not a setting of the study.
NOT_CONFIG = {"seed", "seeds", "threads"}
FAULT_ENV = "TUNE_DIGITS_FAULT"  # fault injection for the fault-tolerance tests: see _maybe_fail
DELAY_ENV = "TUNE_DIGITS_EPOCH_DELAY"  # seconds to sleep after each epoch, so tests can watch trials overlap
SEARCHERS = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")


class SearchError(UserError):
    """A search that cannot start as asked; one line for the user."""


@dataclass
class SearchPlan:
    """Everything a search needs, decided before Ray starts (so --dry-run shows exactly this)."""

    space: Space
    stage: str  # "screen", "final" or "custom"
    name: str
    pairs: int
    epochs: int
    seeds: list[int]
    fixed: dict  # values shared by every trial (pairs, epochs, training hyperparameters, ...)
    grid: dict  # axis → list of values, or a distribution spec (random/optuna searches)
    output: Path
    storage: str | None = None
    search: str = "grid"
    num_samples: int = 1
    scheduler: str = "fifo"
    metric: str = "test_error"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always checkpointed)
    seeds_per_trial: int = 1  # > 1: one trial trains that many seeds of a configuration (fit_replicas)
    vectorize: bool = False  # ... as one batched model
    notes: list[str] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return self.space.arch

    @property
    def experiment_dir(self) -> Path:
        return self.output / self.space.name / self.name

    @property
    def combinations(self) -> int:
        lists = [len(v) for v in self.grid.values() if isinstance(v, list)]
        per_sample = math.prod(lists) if self.search == "grid" else 1
        return per_sample * self.num_samples

    @property
    def seed_groups(self) -> list[list[int]]:
        """The seeds each trial of a configuration trains: one each, or `seeds_per_trial` together."""
        k = self.seeds_per_trial
        return [self.seeds[i:i + k] for i in range(0, len(self.seeds), k)]

    @property
    def num_runs(self) -> int:
        """Repetitions: configurations × seeds."""
        return self.combinations * len(self.seeds)

    @property
    def num_trials(self) -> int:
        """Ray trials: configurations × seed groups."""
        return self.combinations * len(self.seed_groups)

    def trial_base(self) -> dict:
        threads = max(1, int(self.cpus_per_trial))
        return {**self.fixed, "arch": self.arch, "pairs": self.pairs, "epochs": self.epochs, "threads": threads}

    def fingerprint(self) -> str:
        """What defines the trials; a rerun under the same name must match it to resume."""
        key = {"fixed": self.trial_base(), "grid": self.grid, "seeds": self.seeds, "search": self.search,
               "num_samples": self.num_samples, "scheduler": self.scheduler}
        key["fixed"].pop("threads")
        if self.seeds_per_trial > 1:  # other trials, so no resuming across a change (absent by default)
            key.update(seeds_per_trial=self.seeds_per_trial, vectorize=self.vectorize)
        return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_search(space: Space, *, stage: str | None = None, name: str | None = None, pairs: int | None = None,
                reps: int | None = None, epochs: int | None = None, best: dict | None = None,
                output: str | Path = "outputs", storage: str | None = None, search: str = "grid",
                num_samples: int = 1, scheduler: str = "fifo", cpus_per_trial: float = 1.0,
                gpus_per_trial: float = 0.0, max_concurrent: int | None = None, max_failures: int = 2,
                checkpoint_every: int = 1, seed_offset: int = 0, seeds_per_trial: int = 1,
                vectorize: bool = False) -> SearchPlan:
    """Turn a space, a stage and the CLI's overrides into a plan.

    `screen` runs every combination at the stage's pairs and seeds; `final` runs only `best` (the screen's
    winner, else the file's declared best) at the final stage's size; `custom` (no stage) runs the grid
    with the file's fixed values.
    """
    stage = stage or "custom"
    if stage not in ("screen", "final", "custom"):
        raise SearchError(f"unknown stage '{stage}'; use screen or final")
    if search not in SEARCHERS:
        raise SearchError(f"unknown search '{search}'; use one of {', '.join(SEARCHERS)}")
    if scheduler not in SCHEDULERS:
        raise SearchError(f"unknown scheduler '{scheduler}'; use one of {', '.join(SCHEDULERS)}")
    for label, value, low in (("--pairs", pairs, 2), ("--reps", reps, 1), ("--epochs", epochs, 1),
                              ("--num-samples", num_samples, 1), ("--max-concurrent", max_concurrent, 1),
                              ("--checkpoint-every", checkpoint_every, 1), ("--seeds-per-trial", seeds_per_trial, 1)):
        if value is not None and value < low:
            raise SearchError(f"{label} must be at least {low}, got {value}")
    if cpus_per_trial <= 0:
        raise SearchError(f"--cpus-per-trial must be positive, got {cpus_per_trial}")
    if gpus_per_trial < 0 or (gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial)):
        raise SearchError(f"--gpus-per-trial must be a fraction in (0, 1] or a whole number, got {gpus_per_trial}")

    spec = space.stages.get(stage)
    if stage != "custom" and spec is None:
        raise SearchError(f"{space.path}: no stages.{stage} section")
    fixed = dict(space.fixed)
    grid = dict(space.grid)
    notes = []
    if stage == "final":
        chosen = best if best is not None else space.best
        missing = [k for k in grid if k not in chosen]
        if missing:
            raise SearchError(f"--stage final needs the best value of {', '.join(missing)}: run --stage screen "
                              f"first or declare it under best: in {space.path}")
        grid = {k: [chosen[k]] for k in grid}
        notes.append(f"best combination ({'from the screen stage' if best is not None else 'declared in the file'}): "
                     + (", ".join(f"{k}={v}" for k, v in chosen.items() if k in grid) or "the only one"))
    pairs = pairs or (spec.pairs if spec else fixed.get("pairs", 1000))
    epochs = epochs or (spec.epochs if spec and spec.epochs else None) or fixed.get("epochs", 25)
    n_seeds = reps or (spec.seeds if spec else 1)
    fixed.pop("pairs", None)
    fixed.pop("epochs", None)
    if search == "grid" and any(isinstance(v, dict) for v in grid.values()) and num_samples == 1:
        notes.append("the grid has distributions: each is sampled once (use --num-samples N for more)")
    if scheduler == "asha" and not fixed.get("val_fraction"):
        notes.append("ASHA stops trials on test_error: set val_fraction (e.g. --set val_fraction=0.2) "
                     "so early stopping never looks at the test set")
    metric = "val_error" if fixed.get("val_fraction") else "test_error"
    seeds_per_trial = min(seeds_per_trial, n_seeds)
    if vectorize and seeds_per_trial < 2:
        raise SearchError("--vectorize trains the seeds of a trial as one model: give --seeds-per-trial 2 or more "
                          f"(this search has {n_seeds} seed(s))")
    if search != "grid" and seeds_per_trial not in (1, n_seeds):
        raise SearchError(f"--search {search} samples each configuration once: --seeds-per-trial must be 1 or "
                          f"all {n_seeds} seeds")
    # Check one full trial config before anything runs (values were checked axis by axis on load).
    try:
        TrainConfig.from_flat({**fixed, "arch": space.arch, "pairs": pairs, "epochs": epochs})
    except UserError as err:
        raise SearchError(f"{space.path}: {err}") from None
    return SearchPlan(space=space, stage=stage, name=name or (stage if stage != "custom" else "default"),
                      pairs=pairs, epochs=epochs, seeds=list(range(seed_offset, seed_offset + n_seeds)),
                      fixed=fixed, grid=grid, output=Path(output).resolve(), storage=storage, search=search,
                      num_samples=num_samples, scheduler=scheduler, metric=metric, cpus_per_trial=cpus_per_trial,
                      gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures,
                      checkpoint_every=checkpoint_every, seeds_per_trial=seeds_per_trial, vectorize=vectorize,
                      notes=notes)


def auto_seeds_per_trial(plan: SearchPlan, slots: int) -> int:
    """Seeds per trial such that there are still at least two trials per slot (trials running at once), so
    grouping never idles a CPU or GPU share and uneven trial lengths still balance out. An experiment that
    already started keeps its grouping, so that it resumes instead of being refused as another search."""
    previous = _read_meta(plan.experiment_dir / "search.json")
    if previous is not None:
        return int(previous.get("seeds_per_trial", 1))
    n = len(plan.seeds)
    groups = min(n, math.ceil(2 * max(1, slots) / plan.combinations))  # per configuration
    return math.ceil(n / groups)  # groups of even size: 20 seeds in 4 groups are 5 + 5 + 5 + 5, not 6 + 6 + 6 + 2


def describe_plan(plan: SearchPlan) -> str:
    """What --dry-run prints: the grid, the fixed values, the trial count and the resources."""
    lines = [f"search space: {plan.space.name} ({plan.space.path}), network {plan.arch}, stage {plan.stage}",
             f"experiment:   {plan.experiment_dir}"]
    for key, values in plan.grid.items():
        lines.append(f"  grid  {key}: {values}")
    for key, value in sorted(plan.fixed.items()):
        lines.append(f"  fixed {key}: {value}")
    lines += [f"  pairs: {plan.pairs}   epochs: {plan.epochs}   seeds: {len(plan.seeds)} "
              f"({plan.seeds[0]}..{plan.seeds[-1]})",
              f"trials: {plan.combinations} configuration(s) × {len(plan.seeds)} seed(s) = {plan.num_runs}"
              + (f" runs in {plan.num_trials} trials of up to {plan.seeds_per_trial} seeds"
                 + (" (vectorized)" if plan.vectorize else "") if plan.seeds_per_trial > 1 else ""),
              f"each trial: {plan.cpus_per_trial:g} CPU, {plan.gpus_per_trial:g} GPU; search {plan.search}, "
              f"scheduler {plan.scheduler}, up to {plan.max_failures} retries per trial, "
              f"checkpoint every {plan.checkpoint_every} epoch(s)"]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The trial: runs inside a Ray worker


def _maybe_fail(config: dict, epoch: int) -> None:
    """Fault injection for tests: TUNE_DIGITS_FAULT="seed=S,epoch=E,times=N,marker=DIR" makes the trial of
    seed S crash in epoch E, before reporting it (so a retry resumed from epoch E-1 crashes again), N times in
    all (N=0 means always). Each crash claims one file fail-0..fail-(N-1) in DIR, atomically, so trials
    crashing at the same moment never exceed N together."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    opts = dict(item.split("=", 1) for item in spec.split(","))
    if int(opts["seed"]) not in config.get("seeds", [config.get("seed")]) or int(opts["epoch"]) != epoch:
        return
    times = int(opts.get("times", 1))
    marker = Path(opts["marker"])
    marker.mkdir(parents=True, exist_ok=True)
    for slot in range(times) if times else [None]:
        if slot is not None:
            try:
                os.close(os.open(marker / f"fail-{slot}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue  # this crash already happened
        raise RuntimeError(f"injected fault (seed {opts['seed']}, epoch {epoch})")


def _epoch_delay() -> None:
    """For tests: TUNE_DIGITS_EPOCH_DELAY=S sleeps S seconds after each reported epoch, so that trials last
    long enough to be seen overlapping, interrupted or moved off a lost node."""
    delay = os.environ.get(DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def run_trial(config: dict, mnist=None, checkpoint_every: int = 1, vectorize: bool = False) -> None:
    """Ray Tune function trainable: one (configuration, seed), or with `seeds` in the config one configuration
    and several seeds (`fit_replicas`), checkpointed every `checkpoint_every` epochs and at the last. Each
    checkpoint also makes Tune save the experiment's state (we keep one checkpoint per trial), which is most
    of Ray's per-epoch overhead on big grids: see BENCHMARKS.md.

    A grouped trial reports the mean over its seeds under the usual metric names (what schedulers and
    searchers see) and each seed's own metrics under `replicas`, which the ResultWriter turns into rows."""
    import torch
    from ray import tune

    import ray

    from .data import generate_pair_sets
    from .train import fit, fit_replicas

    seeds = config.get("seeds")
    flat = {k: v for k, v in config.items() if k != "seeds"}
    configs = [TrainConfig.from_flat({**flat, "seed": seed}) for seed in seeds] if seeds \
        else [TrainConfig.from_flat(flat)]
    epochs = configs[0].epochs
    # A fractional GPU from Ray is only used when torch can see one (fake GPUs in tests cannot).
    device = torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
    datas = [generate_pair_sets(c.pairs, c.seed, n_test=c.test_pairs, mnist=mnist) for c in configs]
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = torch.load(Path(folder) / "state.pt", weights_only=False)

    node = ray.get_runtime_context().get_node_id()

    def on_epoch(metrics, state: Callable[[], dict]) -> None:
        epoch = metrics[0]["epoch"] if seeds else metrics["epoch"]
        _maybe_fail(config, epoch)
        extra = {"wall_time": time.time(), "node": node}
        if seeds:
            report = {**_mean_metrics(metrics), **extra,
                      "replicas": {str(c.seed): m for c, m in zip(configs, metrics)}}
        else:
            report = {**metrics, **extra}
        if epoch % checkpoint_every and epoch != epochs:
            tune.report(report)
        else:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(state(), Path(folder) / "state.pt")
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        _epoch_delay()

    if seeds:
        fit_replicas(configs, datas, device, on_epoch=on_epoch, resume=resume, vectorize=vectorize)
    else:
        fit(configs[0], datas[0], device, on_epoch=on_epoch, resume=resume)


def _mean_metrics(metrics: list[dict]) -> dict:
    out = {}
    for key in metrics[0]:
        values = [m[key] for m in metrics]
        out[key] = values[0] if key == "epoch" else sum(values) / len(values)
    return out


# ---------------------------------------------------------------------------------------------------
# Driver-side callbacks: the tidy tables, search.json and the progress line


def _write_csv(path: Path, fields, rows) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, text.getvalue())


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _make_callbacks(plan: SearchPlan, meta: dict, progress: bool):
    from ray import tune

    class ResultWriter(tune.Callback):
        """Append each reported epoch to trials/<trial_id>.csv and keep search.json's statuses current."""

        def __init__(self):
            self.dir = plan.experiment_dir
            self.last_epoch: dict[str, int] = {}

        def setup(self, **info):
            (self.dir / "trials").mkdir(parents=True, exist_ok=True)
            self._save_meta()

        def _save_meta(self):
            _atomic_write(self.dir / "search.json", json.dumps(meta, indent=1, default=str))

        def _status(self, trial, status, error=None):
            entry = meta["trials"].setdefault(trial.trial_id, {})
            entry.update(status=status, config={k: v for k, v in trial.config.items() if k != "threads"})
            if error is not None:
                entry["error"] = error
            self._save_meta()

        def on_trial_start(self, iteration, trials, trial, **info):
            self._status(trial, "RUNNING")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            config = {k: v for k, v in trial.config.items() if k not in NOT_CONFIG}
            shared = {"wall_time": result.get("wall_time"), "node": result.get("node")}
            if "seeds" in trial.config:  # a grouped trial: one row per seed, its own metrics
                # Tune hands callbacks the result as reported (nested); only its loggers flatten it.
                per_seed = [(int(seed), {**shared, **metrics}) for seed, metrics in result["replicas"].items()]
            else:
                per_seed = [(trial.config["seed"], result)]
            rows = [{"trial_id": trial.trial_id, "seed": seed,
                     **{k: _cell(metrics.get(k)) for k in ROW_HEAD[2:]}, **config} for seed, metrics in per_seed]
            path = self.dir / "trials" / f"{trial.trial_id}.csv"
            epoch = int(result["epoch"])
            last = self.last_epoch.get(trial.trial_id)
            if last is None and path.exists():
                last = _last_epoch(path)
            if last is not None and epoch <= last:
                # A trial restarted from an earlier checkpoint (or from scratch) re-reports epochs:
                # drop the rows it is about to replace, so no epoch is ever counted twice.
                _truncate_rows(path, epoch)
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                if new:
                    writer.writeheader()
                writer.writerows(rows)
            self.last_epoch[trial.trial_id] = epoch

        def on_trial_complete(self, iteration, trials, trial, **info):
            entry = meta["trials"].get(trial.trial_id, {})
            if entry.get("error"):  # it failed before and a retry finished it: history, not an error
                entry["recovered_from"] = entry.pop("error")
            self._status(trial, "TERMINATED")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._status(trial, "ERROR", error=_error_line(trial))

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._status(trial, "PENDING", error=f"retrying after: {_error_line(trial)}")

        def on_experiment_end(self, trials, **info):
            meta["finished"] = _utc_now()
            self._save_meta()
            write_epochs_csv(self.dir)

    class Progress(tune.Callback):
        """One line of progress: trials done/total, running, failed, epochs and an ETA."""

        def __init__(self):
            self.total_epochs = plan.num_runs * plan.epochs
            self.epochs_done: dict[str, int] = {}
            self.tty = sys.stderr.isatty()
            self.last_print = 0.0

        def setup(self, **info):
            self.start = time.monotonic()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.epochs_done[trial.trial_id] = int(result["epoch"]) * len(trial.config.get("seeds", [0]))

        def on_step_end(self, iteration, trials, **info):
            now = time.monotonic()
            if now - self.last_print < (1.0 if self.tty else 15.0):
                return
            self.last_print = now
            self._print(trials)

        def on_experiment_end(self, trials, **info):
            self._print(trials, final=True)

        def _print(self, trials, final=False):
            states = [t.status for t in trials]
            done, failed = states.count("TERMINATED"), states.count("ERROR")
            running = states.count("RUNNING")
            epochs = sum(self.epochs_done.values())
            elapsed = time.monotonic() - self.start
            # Epochs already in the folder before a resume count as done but took no time now.
            fraction = min(1.0, epochs / self.total_epochs) if self.total_epochs else 1.0
            eta = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else 0.0
            line = (f"[{plan.space.name}/{plan.name}] {done + failed}/{plan.num_trials} trials done "
                    f"({running} running, {failed} failed) · epochs {epochs}/{self.total_epochs} "
                    f"({100 * fraction:.0f} %) · {_duration(elapsed)} elapsed"
                    + ("" if final else f" · ETA {_duration(eta) if fraction else '…'}"))
            if self.tty:
                sys.stderr.write("\r" + line.ljust(110) + ("\n" if final else ""))
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

    callbacks = [ResultWriter()]
    if progress:
        callbacks.append(Progress())
    return callbacks


def _cell(value):
    """Missing or NaN metrics are written as empty cells (outputs/README.md)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _error_line(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text().strip().splitlines() if path else []
    except OSError:
        text = []
    return text[-1].strip()[:300] if text else "unknown error"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _last_epoch(path: Path) -> int | None:
    try:
        with path.open(newline="") as f:
            epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return None
    return max(epochs) if epochs else None


def _truncate_rows(path: Path, first_epoch: int) -> None:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if int(r["epoch"]) < first_epoch]
    _write_csv(path, fields, rows)


def write_epochs_csv(experiment_dir: Path) -> Path | None:
    """All trials' rows in one file, sorted by trial and epoch (written when a search ends)."""
    files = sorted((experiment_dir / "trials").glob("*.csv"))
    rows, fields = [], []
    for path in files:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            for name in reader.fieldnames or []:
                if name not in fields:
                    fields.append(name)
            rows += list(reader)
    if not rows:
        return None
    rows.sort(key=lambda r: (r["trial_id"], int(r["epoch"])))
    out = experiment_dir / "epochs.csv"
    _write_csv(out, fields, rows)
    return out


# ---------------------------------------------------------------------------------------------------
# Running


@dataclass
class SearchOutcome:
    experiment_dir: Path
    resumed: bool
    trials: int
    finished: int
    failed: int
    interrupted: bool
    notes: list[str]


def _param_space(plan: SearchPlan) -> dict:
    from ray import tune

    def axis(values):
        if isinstance(values, list):
            return tune.grid_search(values) if plan.search == "grid" else tune.choice(values)
        kind, args = next(iter(values.items()))
        return {"choice": lambda: tune.choice(args), "uniform": lambda: tune.uniform(*args),
                "loguniform": lambda: tune.loguniform(*args), "randint": lambda: tune.randint(args[0], args[1] + 1),
                }[kind]()

    space = {**plan.trial_base(), **{k: axis(v) for k, v in plan.grid.items()}}
    if plan.seeds_per_trial > 1:
        groups = plan.seed_groups
        space["seeds"] = tune.grid_search(groups) if len(groups) > 1 else groups[0]
    elif plan.search == "grid" or len(plan.seeds) > 1:
        space["seed"] = tune.grid_search(plan.seeds) if plan.search == "grid" else tune.choice(plan.seeds)
    else:
        space["seed"] = plan.seeds[0]
    return space


def init_ray(address: str | None, verbose: bool, num_cpus: int | None, num_gpus: int | None):
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=verbose, configure_logging=True,
                  logging_level="INFO" if verbose else "ERROR")
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    except ConnectionError as err:
        raise SearchError(f"cannot reach a Ray cluster at '{address}': {err}") from None
    return True


def check_gpus(plan: SearchPlan, require_gpu: bool, address: str | None) -> str | None:
    """Asking Ray for a GPU that no node has makes trials wait forever: fall back to CPU, or fail clearly."""
    import ray

    if plan.gpus_per_trial <= 0:
        return None
    have = ray.cluster_resources().get("GPU", 0)
    if have >= plan.gpus_per_trial:
        return None
    if require_gpu and not address:
        raise SearchError(f"--gpus-per-trial {plan.gpus_per_trial:g} asked with --require-gpu, but this machine "
                          f"has no GPU Ray can use")
    if require_gpu:
        return (f"no GPU in the cluster yet; trials wait for GPU workers (--require-gpu), "
                f"e.g. from the autoscaler")
    plan.gpus_per_trial = 0.0
    return "no GPU available to Ray: running on CPU instead (pass --require-gpu to insist)"


def run_search(plan: SearchPlan, *, address: str | None = None, restart: bool = False, verbose: bool = False,
               progress: bool = True, data_dir=None, require_gpu: bool = False, num_cpus: int | None = None,
               num_gpus: int | None = None, command: str = "", echo: Callable[[str], None] = print) -> SearchOutcome:
    exp_dir = plan.experiment_dir
    lock = _lock_experiment(exp_dir)
    try:
        return _run_search(plan, exp_dir, address=address, restart=restart, verbose=verbose, progress=progress,
                           data_dir=data_dir, require_gpu=require_gpu, num_cpus=num_cpus, num_gpus=num_gpus,
                           command=command, echo=echo)
    finally:
        lock.close()  # releases the lock


def _lock_experiment(exp_dir: Path):
    """Hold an exclusive lock on OUTPUT/ARCH/.NAME.lock for the whole search: a second search under the same
    name at the same time would mix its trials into this one's folder, so it is refused instead."""
    exp_dir.parent.mkdir(parents=True, exist_ok=True)
    handle = (exp_dir.parent / f".{exp_dir.name}.lock").open("a")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no fcntl (Windows): no lock
        pass
    except OSError:
        handle.close()
        raise SearchError(f"{exp_dir} is in use by another search that is still running; wait for it to end "
                          f"or use another --name") from None
    return handle


def _run_search(plan: SearchPlan, exp_dir: Path, *, address, restart, verbose, progress, data_dir, require_gpu,
                num_cpus, num_gpus, command, echo) -> SearchOutcome:
    import ray
    from ray import tune

    from .data import load_mnist14

    notes = list(plan.notes)
    previous = _read_meta(exp_dir / "search.json")
    if previous and not restart and previous.get("fingerprint") != plan.fingerprint():
        raise SearchError(f"{exp_dir} holds a different search (other grid, seeds or fixed values); "
                          f"use --name to start another, or --restart to archive it and start afresh")
    mnist = load_mnist14(data_dir)  # fails here, before Ray starts, on a bad --data-dir

    started_ray = init_ray(address, verbose, num_cpus, num_gpus)
    try:
        note = check_gpus(plan, require_gpu, address)
        if note:
            notes.append(note)
            echo(f"note: {note}")
        if restart and exp_dir.exists():
            # Only now that the search can start: a refused search leaves the earlier results in place.
            archive = exp_dir.parent / ".archive" / f"{plan.name}-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
            archive.parent.mkdir(parents=True, exist_ok=True)
            os.replace(exp_dir, archive)
            notes.append(f"earlier results moved to {archive}")
            previous = None
        if plan.storage:
            storage_path, exp_name = plan.storage, f"{plan.space.name}-{plan.name}"
        else:
            storage_path, exp_name = str(exp_dir), "ray"
        ray_path = f"{storage_path.rstrip('/')}/{exp_name}"
        exp_dir.mkdir(parents=True, exist_ok=True)
        meta = previous or {
            "arch": plan.space.name, "network": plan.arch, "name": plan.name, "stage": plan.stage,
            "space_file": str(plan.space.path), "axes": list(plan.grid),
            "fixed": {**{k: v for k, v in plan.trial_base().items() if k != "threads"}},
            "grid": plan.grid, "seeds": plan.seeds, "seeds_per_trial": plan.seeds_per_trial,
            "vectorize": plan.vectorize, "num_trials": plan.num_trials, "search": plan.search,
            "scheduler": plan.scheduler, "fingerprint": plan.fingerprint(), "trials": {},
            "command": command, "versions": _versions(), "ray_path": ray_path, "started": _utc_now(),
        }
        meta.pop("finished", None)
        meta["resources"] = {"cpus_per_trial": plan.cpus_per_trial, "gpus_per_trial": plan.gpus_per_trial}
        meta["machine"] = _machine()  # of the latest run (a resumed search may run elsewhere)

        resources = {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial}
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, mnist=mnist, checkpoint_every=plan.checkpoint_every,
                                 vectorize=plan.vectorize), resources)
        callbacks = _make_callbacks(plan, meta, progress)
        resumed = bool(previous) and tune.Tuner.can_restore(ray_path)
        if previous and not resumed and _has_results(exp_dir):
            # Results without Ray's experiment folder (e.g. a result set committed to git): rerunning would
            # replace them trial by trial, so refuse rather than overwrite.
            raise SearchError(f"{exp_dir} holds results but no Ray experiment to resume ({ray_path}); "
                              f"use --name to start another, or --restart to archive them and start afresh")
        if resumed:
            echo(f"resuming {exp_dir} (finished trials are kept, unfinished ones continue from their checkpoint)")
            tuner = tune.Tuner.restore(ray_path, trainable, resume_errored=True)
            # The restored run config holds the callbacks pickled last time; give it fresh ones.
            tuner._local_tuner.get_run_config().callbacks = callbacks
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=_param_space(plan),
                tune_config=tune.TuneConfig(
                    num_samples=plan.num_samples, max_concurrent_trials=plan.max_concurrent, reuse_actors=True,
                    search_alg=_searcher(plan), scheduler=_scheduler(plan),
                    metric=plan.metric if plan.search == "optuna" or plan.scheduler == "asha" else None,
                    mode="min" if plan.search == "optuna" or plan.scheduler == "asha" else None),
                run_config=tune.RunConfig(
                    name=exp_name, storage_path=storage_path, verbose=1 if verbose else 0, callbacks=callbacks,
                    failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
            )
        with _without_tune_loggers():
            results = tuner.fit()  # Ctrl-C stops it and returns the partial results
        for trial_id, entry in meta["trials"].items():
            if entry.get("status") == "ERROR":  # failed after its retries: say which and why
                config = entry.get("config") or {}
                what = ", ".join(f"{k}={config[k]}" for k in [*plan.grid, "seed", "seeds"] if k in config)
                echo(f"failed: trial {trial_id} ({what}): {entry.get('error', 'unknown error')}")
        statuses = [t.get("status") for t in meta["trials"].values()]
        finished = statuses.count("TERMINATED")
        failed = len(results.errors)
        interrupted = finished + failed < plan.num_trials
        return SearchOutcome(exp_dir, resumed, plan.num_trials, finished, failed, interrupted, notes)
    finally:
        write_epochs_csv(exp_dir)
        if started_ray:
            ray.shutdown()


@contextmanager
def _without_tune_loggers():
    """Tune's default CSV, JSON and TensorBoard logger callbacks write every result a second time, into ray/
    (the tidy tables are ours): the driver, which shares the cores with the trials, does that work between
    each epoch's report and the trial's next one. Off unless the user set TUNE_DISABLE_AUTO_CALLBACK_LOGGERS:
    BENCHMARKS.md §2 measures what it saves."""
    name = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    if name in os.environ:
        yield
        return
    os.environ[name] = "1"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _searcher(plan: SearchPlan):
    if plan.search != "optuna":
        return None
    try:
        from ray.tune.search.optuna import OptunaSearch
        import optuna  # noqa: F401
    except ImportError:
        raise SearchError("--search optuna needs optuna: pip install -c constraints.txt 'tune-digits[optuna]'") from None
    return OptunaSearch()


def _scheduler(plan: SearchPlan):
    if plan.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", max_t=plan.epochs, grace_period=max(1, plan.epochs // 5))


def _has_results(exp_dir: Path) -> bool:
    return (exp_dir / "epochs.csv").exists() or any((exp_dir / "trials").glob("*.csv"))


def _read_meta(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SearchError(f"{path} is corrupt ({err}); use --restart to archive it or --name to start another")
    if not isinstance(meta, dict):
        raise SearchError(f"{path} is corrupt (not a JSON object); use --restart or --name")
    return meta


def cpu_model() -> str:
    """This machine's CPU model name (benchmarks print it beside their timings too)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine() -> dict:
    """Where the search ran: the driver's CPU and the Ray cluster's resources (wall times depend on both)."""
    import platform

    import ray

    resources = ray.cluster_resources()
    return {"driver_cpu": cpu_model(), "driver_cpus": os.cpu_count(), "platform": platform.platform(),
            "ray_nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
            "ray_cpus": resources.get("CPU", 0), "ray_gpus": resources.get("GPU", 0)}


def _versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for package in ("tune-digits", "torch", "ray"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out
