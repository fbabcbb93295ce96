"""Running a plan on Ray: start (or join) Ray, hold the experiment's lock, build the Tuner or restore an
interrupted one through Tune's public API, fit, and sum up the outcome. Ray is imported inside the
functions, so importing this module stays cheap.

One experiment is `OUTPUT/<space>/<name>/`: Ray's own folder under `ray/` (checkpoints, for resuming; or
under --storage) and the tidy tables of outputs/README.md, which the ResultWriter callback writes.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from ..errors import SearchError
from ..provenance import code_version, driver_machine, relative_to, versions
from ..results import FORMAT_VERSION, has_rows, new_meta, rename_config, write_epochs_csv
from ..storage import filesystem, join
from .algorithms import param_space, scheduler, searcher, tune_config
from .checkpoints import states_dir, sweep_temporaries
from .connect import check_answers
from .launch import Launch
from .placement import (TrialLocation, archive_stored, check_storage, fetch_stored, mirror_for, probe_storage,
                        ray_location)
from .plan import Resources, SearchPlan, previous_meta
from .reaper import OWNER_ENV, Watchdog, new_token, stop_marked
from .resume import exists, restore
from .tracking import callbacks as trackers
from .trainable import run_trial, ship_network


@dataclass
class SearchOutcome:
    experiment_dir: Path
    resumed: bool
    trials: int
    finished: int
    failed: int
    interrupted: bool
    notes: list[str]
    resources: Resources = field(default_factory=Resources)  # what each trial got (after a GPU fallback)


def _start_ray(address, verbose, num_cpus, num_gpus, connect_timeout=None) -> dict | None:
    """ray.init's address_info (None when Ray was already running)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return None
    kwargs = dict(include_dashboard=False, log_to_driver=verbose, configure_logging=True,
                  logging_level="INFO" if verbose else "ERROR")
    try:
        if address:
            check_answers(address, connect_timeout)  # ray.init would wait for minutes on a silent address
            return ray.init(address=address, **kwargs).address_info
        return ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs).address_info
    except ConnectionError as err:
        raise SearchError(f"cannot reach a Ray cluster at '{address}': {err}") from None


@contextmanager
def ray_session(address: str | None = None, verbose: bool = False, num_cpus: int | None = None,
                num_gpus: int | None = None, record: Path | None = None, connect_timeout: float | None = None):
    """Ray for the block: the cluster at `address` (which must answer within `connect_timeout` seconds:
    connect.py), a running Ray, or a local one started (and shut down after the block) here. A local one is marked and watched (reaper.py): if this process dies hard, its Ray's
    processes are stopped; `record` names a file that keeps the mark, so that the next run with the same
    `record` stops whatever is still left of it first."""
    import ray

    if record is not None and record.exists():
        stop_marked(record.read_text().strip())
        record.unlink()
    local = not address and not ray.is_initialized()
    watchdog = _mark_local_ray(record) if local else None
    try:
        started = _start_ray(address, verbose, num_cpus, num_gpus, connect_timeout) is not None
    except BaseException:
        _unmark(watchdog, record)
        raise
    finally:
        os.environ.pop(OWNER_ENV, None)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
        _unmark(watchdog, record)


def _mark_local_ray(record: Path | None):
    """Mark the local Ray about to start (reaper.py) and start its watchdog first, so that even a driver
    killed while Ray starts leaves nothing behind."""
    token = new_token()
    watchdog = Watchdog(token)
    os.environ[OWNER_ENV] = token  # inherited by every process of the Ray started now, and only by them
    if record is not None:
        record.write_text(token)
    return watchdog


def _unmark(watchdog, record: Path | None) -> None:
    if watchdog is not None:
        watchdog.close()
        if record is not None:
            record.unlink(missing_ok=True)


def trial_slots(resources: Resources) -> int:
    """How many trials asking for `resources` the running Ray fits at once."""
    import ray

    cluster = ray.cluster_resources()
    slots = int(cluster.get("CPU", 1) // resources.cpus_per_trial)
    if resources.gpus_per_trial and cluster.get("GPU"):
        slots = min(slots, int(cluster["GPU"] // resources.gpus_per_trial))
    return slots


def check_gpus(plan: SearchPlan, require_gpu: bool, address: str | None) -> tuple[SearchPlan, str | None]:
    """Asking Ray for a GPU that no node has makes trials wait forever: fall back to CPU (the plan returned
    asks for no GPU, and the note says so), or fail clearly."""
    import ray

    gpus = plan.resources.gpus_per_trial
    if gpus <= 0 or ray.cluster_resources().get("GPU", 0) >= gpus:
        return plan, None
    if require_gpu and not address:
        raise SearchError(f"--gpus-per-trial {gpus:g} asked with --require-gpu, but this machine "
                          f"has no GPU Ray can use")
    if require_gpu:
        return plan, "no GPU in the cluster yet; trials wait for GPU workers (--require-gpu), e.g. from the autoscaler"
    plan = replace(plan, resources=replace(plan.resources, gpus_per_trial=0.0))
    return plan, "no GPU available to Ray: running on CPU instead (pass --require-gpu to insist)"


def run_search(plan: SearchPlan, launch: Launch | None = None, **given) -> SearchOutcome:
    """Run (or resume) the plan's experiment as `launch` says, with any of its fields `given` on top
    (`run_search(plan, progress=False)`); Ctrl-C stops it with the partial results kept."""
    launch = replace(launch or Launch(), **given)
    lock = lock_experiment(plan.experiment_dir)
    try:
        return _run_search(plan, launch)
    finally:
        lock.close()  # releases the lock


def lock_experiment(exp_dir: Path):
    """Hold an exclusive lock on OUTPUT/SPACE/.NAME.lock for the whole search: a second search under the same
    name at the same time would mix its trials into this one's folder, so it is refused instead."""
    try:
        exp_dir.parent.mkdir(parents=True, exist_ok=True)
        handle = (exp_dir.parent / f".{exp_dir.name}.lock").open("a")
    except OSError as err:  # --output names a file's subfolder, a read-only place, ...
        raise SearchError(f"cannot write the results under {exp_dir.parent}: {err.strerror or err}") from None
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


def _run_search(plan: SearchPlan, launch: Launch) -> SearchOutcome:
    from ..data import load_mnist14
    from .live import Session, running

    exp_dir = plan.experiment_dir
    probe_storage(plan)  # before Ray starts: a bucket, endpoint or credentials that fail, in one line
    fetch_stored(plan)  # a search started elsewhere (another Ray job's copy of the working dir) resumes
    previous = previous_meta(exp_dir)
    echo, restart = launch.echo, launch.restart
    if previous and not restart and previous.get("fingerprint") != plan.fingerprint():
        raise SearchError(f"{exp_dir} holds a different search (other grid, seeds or fixed values); "
                          f"use --name to start another, or --restart to archive it and start afresh")
    mnist = load_mnist14(launch.data_dir)  # fails here, before Ray starts, on a bad --data-dir
    mirror = None
    with ray_session(launch.address, launch.verbose, launch.num_cpus, launch.num_gpus,
                     record=exp_dir.parent / f".{exp_dir.name}.ray", connect_timeout=launch.connect_timeout):
        try:
            plan, note = check_gpus(plan, launch.require_gpu, launch.address)
            check_storage(plan, launch.address)
            notes = list(plan.notes)
            if note:
                notes.append(note)
                echo(f"note: {note}")
            if restart and exp_dir.exists():
                # Only now that the search can start: a refused search leaves the earlier results in place.
                notes += _archive(plan)
                previous = None
            location = ray_location(plan, previous)
            exp_dir.mkdir(parents=True, exist_ok=True)
            meta = _start_meta(plan, previous, launch.command, ray_path=location.ray_path)
            mirror = mirror_for(plan)
            location = location._replace(states=states_dir(meta["started"]))
            if previous:
                _sweep(location, echo)
            with running(Session(plan, meta, show_progress=launch.progress, mirror=mirror)) as key:
                tuner, resumed = _tuner(plan, key, previous, mnist, location, launch.verbose, echo)
                _note_trackers(plan, meta, resumed, echo)
                with _without_tune_loggers():
                    results = tuner.fit()  # Ctrl-C stops it and returns the partial results
            return _outcome(plan, meta, len(results.errors), resumed, notes, echo)
        finally:
            write_epochs_csv(exp_dir)
            if mirror:
                mirror.push(force=True)  # the final tables, also after Ctrl-C or an error


def _note_trackers(plan: SearchPlan, meta: dict, resumed: bool, echo) -> None:
    """search.json's `log`: the trackers the trials report to. Tune's restored experiment keeps the callbacks
    it started with, so a rerun's other --log cannot be applied: say so instead of dropping it silently."""
    asked, started_with = list(plan.options.log), meta.get("log")  # None: search.json from before it said
    if not resumed:
        meta["log"] = asked
    elif asked != (started_with or []) and (asked or started_with):
        before = "not recorded" if started_with is None else ", ".join(started_with) or "none"
        echo(f"note: --log {', '.join(asked) or 'none'} is not applied: a resumed search keeps the trackers it "
             f"started with ({before}); --restart starts afresh with these")


def _sweep(location: TrialLocation, echo) -> None:
    """Before a resumed search's trials start: remove the half-written checkpoint files its killed trials left."""
    fs, folder = filesystem(join(location.ray_path, location.states))
    removed = sweep_temporaries(fs, folder)
    if removed:
        echo(f"removed {removed} half-written checkpoint file(s) of trials killed while saving")


def _archive(plan: SearchPlan) -> list[str]:
    """Move an experiment's folder to OUTPUT/SPACE/.archive/NAME-<time> (and its copy on --storage likewise);
    returns the notes that say where."""
    exp_dir = plan.experiment_dir
    archive = exp_dir.parent / ".archive" / f"{plan.name}-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    archive.parent.mkdir(parents=True, exist_ok=True)
    os.replace(exp_dir, archive)
    return [f"earlier results moved to {archive}", *archive_stored(plan)]


def _start_meta(plan: SearchPlan, previous: dict | None, command: str, ray_path: str) -> dict:
    """search.json for this run: the earlier one when resuming (read in today's names, so it is written
    back as today's format), else a new one. Paths are relative to the experiment's folder."""
    from .writer import utc_now

    exp_dir = plan.experiment_dir
    if previous:
        meta = {**previous, "format_version": FORMAT_VERSION}
    else:
        grid = rename_config(plan.grid)  # the format's option names (the trials' configs are Tune's, as run)
        meta = new_meta(
            space=plan.space.name, network=plan.network, name=plan.name, stage=plan.stage,
            space_file=space_file(plan.space, exp_dir), space_origin=plan.space.origin, axes=list(grid),
            fixed=rename_config({k: v for k, v in plan.trial_base().items() if k != "threads"}), grid=grid,
            seeds=plan.seeds, seeds_per_trial=plan.options.seeds_per_trial, vectorize=plan.options.vectorize,
            num_trials=plan.num_trials, search=plan.algorithm.search, scheduler=plan.algorithm.scheduler,
            searcher_seed=plan.seeds[0] if searcher(plan.algorithm.search).seeded else None,  # None: unseeded
            metric=plan.metric, fingerprint=plan.fingerprint(), trials={}, command=command,
            ray_path=relative_to(ray_path, exp_dir), started=utc_now())
    meta.pop("finished", None)
    meta["resources"] = {"cpus_per_trial": plan.resources.cpus_per_trial,
                         "gpus_per_trial": plan.resources.gpus_per_trial}
    # Of the latest run (a resumed search may run elsewhere, with other code): its command comes first.
    meta["commands"] = [*previous.get("commands", [])] if previous else []
    meta["commands"].append(command)
    meta.update(code=code_version(), versions=versions(), machine=_machine())
    return meta


def space_file(space, exp_dir: Path) -> str:
    """Where the space came from: a shipped one by its name in the package, a user's file relative to the
    experiment's folder."""
    if space.origin == "shipped":
        return f"tune_digits/search_spaces/{space.path.name}"
    return relative_to(space.path, exp_dir)


def _tuner(plan: SearchPlan, key: str, previous: dict | None, mnist, location: TrialLocation, verbose: bool, echo):
    """(Tuner, resumed): Tune's restored experiment when there is one to resume, else a new Tuner.

    A restored Tuner brings back the callbacks pickled when the experiment started; they find this run's
    session through the experiment's folder (live.py), so nothing of the restored run config needs replacing."""
    from ray import tune

    from .progress import Progress  # progress and writer are Ray callbacks: they import ray
    from .writer import ResultWriter

    exploits = scheduler(plan.algorithm.scheduler).exploits
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, mnist=mnist, checkpoint_every=plan.options.checkpoint_every,
                             vectorize=plan.options.vectorize, networks=ship_network(plan.network),
                             states=location.states, tune_checkpoints=exploits),
        {"cpu": plan.resources.cpus_per_trial, "gpu": plan.resources.gpus_per_trial})
    ray_path = location.ray_path
    restored = restore(ray_path, trainable, plan.experiment_dir) if previous else None
    if restored is not None:
        echo(f"resuming {plan.experiment_dir} (finished trials are kept, unfinished ones continue from their "
             f"newest checkpoint)")
        return restored, True
    if previous and has_rows(plan.experiment_dir) and not exists(ray_path):
        # Results without Ray's experiment folder (e.g. a result set committed to git): rerunning would
        # replace them trial by trial, so refuse rather than overwrite.
        raise SearchError(f"{plan.experiment_dir} holds results but no Ray experiment to resume ({ray_path}); "
                          f"use --name to start another, or --restart to archive them and start afresh")
    if previous and has_rows(plan.experiment_dir):
        # Our own search, killed before Tune first saved its state: its trials start again under new ids,
        # each from its run's checkpoint (checkpoints.py), and take over the rows of the ones they replace.
        echo(f"resuming {plan.experiment_dir}: Ray's saved state is missing, its trials start again from "
             f"their checkpoints")
    # No Tune checkpoints: each trial keeps its own (checkpoints.py), so Tune's state never names a deleted one.
    run_config = tune.RunConfig(
        name=location.name, storage_path=location.storage_path, verbose=1 if verbose else 0,
        callbacks=[ResultWriter(key), Progress(key), *trackers(plan)],
        failure_config=tune.FailureConfig(max_failures=plan.options.max_failures),
        # Population Based Training clones other trials through Tune's checkpoints: those trials report them too.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=3) if exploits else None)
    return tune.Tuner(trainable, param_space=param_space(plan), tune_config=tune_config(plan),
                      run_config=run_config), False


def _outcome(plan: SearchPlan, meta: dict, failed: int, resumed: bool, notes: list[str], echo) -> SearchOutcome:
    """Say which trials failed after their retries, and why; count what finished."""
    for trial_id, entry in meta["trials"].items():
        if entry.get("status") == "ERROR":
            config = entry.get("config") or {}
            what = ", ".join(f"{k}={config[k]}" for k in [*plan.grid, "seed", "seeds"] if k in config)
            echo(f"failed: trial {trial_id} ({what}): {entry.get('error', 'unknown error')}")
    finished = [t.get("status") for t in meta["trials"].values()].count("TERMINATED")
    race = meta.get("race")
    if race is not None:  # a race ends when its test says so: its trials are those it handed out
        total, interrupted = len(meta["trials"]), not race["finished"]
        if race["finished"]:
            values = ", ".join(f"{k}={v}" for k, v in race["winner_config"].items())
            echo(f"race: {race['alive']} of {race['configurations']} configuration(s) survived, "
                 f"{race['runs_handed_out']} of {race['worst_case_runs']} runs; winner: "
                 + (f"configuration {race['winner']} ({values})" if values else "the one configuration"))
    else:
        total = plan.num_trials
        interrupted = finished + failed < total
    return SearchOutcome(plan.experiment_dir, resumed, total, finished, failed, interrupted, notes, plan.resources)


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


# ---------------------------------------------------------------------------------------------------
# Provenance: where and with what the search ran (the rest is tune_digits.provenance's)


def _machine() -> dict:
    """The driver's machine and the Ray cluster's resources (wall times depend on both)."""
    import ray

    resources = ray.cluster_resources()
    return {**driver_machine(), "ray_nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
            "ray_cpus": resources.get("CPU", 0), "ray_gpus": resources.get("GPU", 0)}
