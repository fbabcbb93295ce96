"""The trial: Ray Tune's function trainable, run inside a Ray worker. It rebuilds the TrainConfig(s) from
Tune's flat config, calls the training loop (which knows nothing of Ray) and turns each epoch into a
`tune.report`, with a checkpoint of its own (checkpoints.py) every `checkpoint_every` epochs and at the last."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .checkpoints import RunStore
from .faults import epoch_delay, maybe_fail, maybe_pause


def run_trial(config: dict, mnist=None, checkpoint_every: int = 1, vectorize: bool = False,
              networks: tuple = (), states: str = "states", tune_checkpoints: bool = False) -> None:
    """One (configuration, seed), or with `seeds` in the config one configuration and several seeds
    (`fit_replicas`). It continues from its run's newest checkpoint, wherever one exists: a retry after a
    crash, a rerun after the driver died, or a trial Tune recreated.

    A grouped trial reports the mean over its seeds under the usual metric names (what schedulers and
    searchers see) and each seed's own metrics under `replicas`, which the ResultWriter turns into rows.
    `networks`: specs of networks defined outside tune_digits/models (`ship_network`); `states`: the folder of
    the search's checkpoints (checkpoints.states_dir). `tune_checkpoints`: also hand Tune each checkpoint, and
    start from the one Tune hands back when it is the newest: Population Based Training clones a trial that
    way (its exploit)."""
    import ray
    import torch
    from ray import tune

    from ..data import generate_pair_sets
    from ..models import register_spec
    from ..train import TrainConfig, fit, fit_replicas

    for spec in networks:
        register_spec(spec)

    seeds = config.get("seeds")
    flat = {k: v for k, v in config.items() if k != "seeds"}
    configs = [TrainConfig.from_flat({**flat, "seed": seed}) for seed in seeds] if seeds \
        else [TrainConfig.from_flat(flat)]
    # A fractional GPU from Ray is only used when torch can see one (fake GPUs in tests cannot).
    device = torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
    datas = [generate_pair_sets(c.pairs, c.seed, n_test=c.test_pairs, mnist=mnist, standardise=c.standardise)
             for c in configs]
    store = RunStore.for_trial(config, states)
    trial = tune.get_context().get_trial_id()
    saved, exploited = _newest(store.load(), _tune_checkpoint() if tune_checkpoints else None, store.key, trial)
    resume, history = (saved["state"], saved["reports"]) if saved else (None, [])
    if exploited:
        history = []  # another trial's state (PBT's exploit): its reports are that trial's rows, not this one's
        exploited = {"trial": saved.get("trial"), "run": saved["run"], "epoch": saved["state"]["epoch"]}
    if history:
        # The driver may have died before writing the rows of the epochs this checkpoint holds: send them
        # again (the ResultWriter rewrites the trial's rows from them), as one report of the last one.
        tune.report({**history[-1], "replay": history})
    on_epoch = _reporter(config, [c.seed for c in configs] if seeds else None, configs[0].epochs, checkpoint_every,
                         store, history, tune_checkpoints, exploited)
    if seeds:
        fit_replicas(configs, datas, device, on_epoch=on_epoch, resume=resume, vectorize=vectorize)
    else:
        fit(configs[0], datas[0], device, on_epoch=on_epoch, resume=resume)


def ship_network(name: str) -> tuple:
    """What run_trial needs to know the network: nothing for a network of tune_digits/models (every worker
    imports them); for one defined in a user's module or a test, its spec, pickled by value since the worker
    cannot import that module."""
    import sys

    from ray import cloudpickle

    from ..models import is_builtin, network_spec

    if is_builtin(name):
        return ()
    spec = network_spec(name)
    module = sys.modules[spec.factory.__module__]
    if module.__name__ != "__main__":  # __main__ is pickled by value already
        cloudpickle.register_pickle_by_value(module)
    return (spec,)


def _reporter(config: dict, seeds: list[int] | None, epochs: int, checkpoint_every: int, store: RunStore,
              history: list[dict], tune_checkpoints: bool = False, exploited: dict | None = None):
    """fit's `on_epoch` callback: one `tune.report` per epoch, after saving the training state and the reports
    so far (`history`) every `checkpoint_every` epochs and at the last one. `seeds`: the seeds of a grouped
    trial (metrics come as a list, one per seed), None for one seed. `exploited`: the run and epoch whose state
    this trial continues from (PBT), said in its first report so search.json records it."""
    import ray
    from ray import tune

    node, trial = ray.get_runtime_context().get_node_id(), tune.get_context().get_trial_id()

    def on_epoch(metrics, state: Callable[[], dict]) -> None:
        epoch = metrics[0]["epoch"] if seeds else metrics["epoch"]
        maybe_fail(config, epoch)
        extra = {"wall_time": time.time(), "node": node}
        if seeds:
            report = {**mean_metrics(metrics), **extra, "replicas": {str(s): m for s, m in zip(seeds, metrics)}}
        else:
            report = {**metrics, **extra}
        history.append(report)
        if exploited:
            report = {**report, "exploited": dict(exploited)}  # once, and not into the checkpoint's history
            exploited.clear()
        payload = None
        if not epoch % checkpoint_every or epoch == epochs:
            payload = {"state": state(), "reports": history, "run": store.key, "trial": trial}
            store.save(epoch, payload)
        with _as_tune_checkpoint(payload if tune_checkpoints else None) as checkpoint:
            tune.report(report, checkpoint=checkpoint)
        maybe_pause(config, epoch)
        epoch_delay()

    return on_epoch


@contextmanager
def _as_tune_checkpoint(payload: dict | None):
    """A Tune checkpoint of `payload` for the block (None for None)."""
    if payload is None:
        yield None
        return
    import tempfile

    import torch
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        torch.save(payload, Path(folder) / "state.pt")
        yield tune.Checkpoint.from_directory(folder)


def _tune_checkpoint() -> dict | None:
    """The checkpoint Tune hands the trial (under PBT, maybe another trial's), else None."""
    import torch
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / "state.pt", weights_only=False)


def _newest(own: dict | None, handed: dict | None, run: str, trial: str) -> tuple[dict | None, bool]:
    """(what the trial continues from, whether that is another trial's state). The checkpoint Tune handed over
    wins when another trial saved it (Population Based Training's exploit: this trial goes on from a better
    one's state, however far its own had got; the mutation may even have made the two the same run), else
    the later of the two (the handed one on a tie)."""
    if handed is not None and (handed.get("trial", trial) != trial or handed.get("run", run) != run):
        return handed, True
    if own is None or handed is None:
        return handed or own, False
    return (handed if handed["state"]["epoch"] >= own["state"]["epoch"] else own), False


def mean_metrics(metrics: list[dict]) -> dict:
    """The seeds' metrics of one epoch averaged, key by key (the epoch number as it is)."""
    out = {}
    for key in metrics[0]:
        values = [m[key] for m in metrics]
        out[key] = values[0] if key == "epoch" else sum(values) / len(values)
    return out
