"""Seeding, device choice and the epoch loop. Pure PyTorch: nothing here knows about Ray.

`fit(config, data, device, on_epoch=callback)` trains one repetition and hands the metrics of docs/protocol.md §3
to `on_epoch` after every epoch; tests, benchmarks, `tune-digits train` and the Ray trainable all call it.
`fit_replicas` trains several seeds of one configuration in the same loop (loop.py): one seed is R = 1.

    config.py   TrainConfig, ConfigError, seeding, device
    loss.py     pair_loss: the objective of every engine
    augment.py  random shifts, rotations, elastic distortions, swaps and re-pairing of the training digits
    engines.py  in turn (R models) or vectorized (one vmapped model): build, step, evaluate, state, weight averages
    loop.py     the epoch loop over the replica axis, snapshots and resuming; fit, fit_replicas
"""
from .augment import random_affine, random_shift, random_swap
from .config import (OPTIMIZERS, PRECISIONS, SCHEDULES, TRAIN_EVALS, ConfigError, TrainConfig, choose_device, prepare_device,
                     modern_names, parameter_count, seed_everything)
from .engines import ENGINES, InTurn, Vectorized, build_optimizer, evaluate
from ..results import METRICS  # one tuple of metric names: the results format's
from .loop import check_replicas, fit, fit_replicas, load_data, replica_epochs, train_epochs, train_once
from .loss import pair_loss

__all__ = ["ENGINES", "METRICS", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "TRAIN_EVALS", "ConfigError", "InTurn", "TrainConfig", "Vectorized",
           "build_optimizer", "check_replicas", "choose_device", "evaluate", "fit", "fit_replicas", "load_data",
           "modern_names", "pair_loss", "parameter_count", "prepare_device", "random_affine", "random_shift", "random_swap",
           "replica_epochs", "seed_everything", "train_epochs", "train_once"]
