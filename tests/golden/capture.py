"""Regenerate tests/golden/train.json: exact per-epoch metrics of one small configuration per network,
plus shift, re-pairing, a pair strategy with a validation split, and in-turn and vectorised replicas.

Run only when a change is *meant* to alter the numbers (and say so in the commit):
    .venv/bin/python tests/golden/capture.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tune_digits.data import generate_pair_sets
from tune_digits.train import TrainConfig, fit, fit_replicas

HERE = Path(__file__).resolve().parent
BASE = {"pairs": 40, "epochs": 2, "threads": 1}
# name → (flat config, seeds, engine): engine None trains one seed with `fit`.
CASES = {
    "linear": ({"network": "linear", "dropout": True}, [0], None),
    "lenet": ({"network": "lenet"}, [0], None),
    "resnet": ({"network": "resnet", "blocks": 1, "channels": 4, "kernel_size": 3}, [0], None),
    "alexnet": ({"network": "alexnet", "pairs": 20}, [0], None),
    "lenet_shift": ({"network": "lenet", "shift": 1.0}, [0], None),
    "lenet_repair": ({"network": "lenet", "repair": True}, [0], None),
    "lenet_pair_val": ({"network": "lenet", "strategy": "pair", "digit_loss_weight": 0.5, "val_fraction": 0.25},
                       [0], None),
    "lenet_in_turn": ({"network": "lenet", "dropout": True, "repair": True}, [3, 4], "in_turn"),
    "lenet_vectorized": ({"network": "lenet", "shift": 1.0}, [3, 4], "vectorized"),
}


def run(flat: dict, seeds: list[int], engine: str | None) -> list[list[dict]]:
    """Per seed, per epoch: the metrics without their wall-clock time."""
    configs = [TrainConfig.from_flat({**BASE, **flat, "seed": s}) for s in seeds]
    datas = [generate_pair_sets(c.pairs, c.seed) for c in configs]
    epochs: list[list[dict]] = []
    if engine is None:
        fit(configs[0], datas[0], on_epoch=lambda m, _s: epochs.append([m]))
    else:
        fit_replicas(configs, datas, on_epoch=lambda ms, _s: epochs.append(ms), vectorize=engine == "vectorized")
    return [[{k: v for k, v in e[i].items() if k != "time_s"} for e in epochs] for i in range(len(seeds))]


def main() -> None:
    torch.set_num_threads(1)
    golden = {name: {"config": {**BASE, **flat}, "seeds": seeds, "engine": engine, "metrics": run(flat, seeds, engine)}
              for name, (flat, seeds, engine) in CASES.items()}
    (HERE / "train.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
