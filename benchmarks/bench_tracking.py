"""What experiment tracking costs: one small `tune-digits search` grid, run with no tracker, with each
`--log` backend, and with all three, in alternating order; wall time of the whole command (Ray's start
included, the same for every variant). W&B runs offline (WANDB_MODE=offline), MLflow into the experiment's
SQLite store, TensorBoard beside the checkpoints: what a user gets without a server.

    .venv/bin/python benchmarks/bench_tracking.py                 # LeNet, 4 configurations × 2 seeds, 5 epochs
    .venv/bin/python benchmarks/bench_tracking.py --repeats 2 --epochs 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {"none": [], "tensorboard": ["--log", "tensorboard"], "mlflow": ["--log", "mlflow"],
            "wandb": ["--log", "wandb"], "all three": ["--log", "tensorboard", "--log", "mlflow", "--log", "wandb"]}


def run_once(args, variant: str, folder: Path) -> float:
    command = [sys.executable, "-c", "from tune_digits.cli import main; main()", "search", "lenet",
               "--set", "kernel_size=[3, 5]", "--set", "batch_norm=[true, false]", "--set", "dropout=false",
               "--set", "aux_loss=true",
               "--reps", str(args.reps), "--pairs", str(args.pairs), "--epochs", str(args.epochs),
               "--num-cpus", str(args.cpus), "--output", str(folder / "out"), "--name", f"{variant}-{time.time_ns()}",
               *VARIANTS[variant]]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(folder), "WANDB_SILENT": "true",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="bt", dir="/tmp")}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{variant}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2, help="seeds per configuration")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                walls[variant].append(run_once(args, variant, Path(tmp)))
                print(f"repeat {repeat + 1} {variant:12s} {walls[variant][-1]:7.1f} s", flush=True)
    base = statistics.mean(walls["none"])
    trials = 4 * args.reps
    print(f"\nLeNet, 4 configurations × {args.reps} seeds = {trials} trials × {args.epochs} epochs, {args.pairs} "
          f"pairs, {args.cpus} CPUs; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'variant':12s} {'wall s':>8s} {'vs none':>8s} {'per trial-epoch':>16s}")
    for variant, values in walls.items():
        mean = statistics.mean(values)
        print(f"{variant:12s} {mean:8.1f} {mean - base:+8.1f} {(mean - base) / (trials * args.epochs):+15.2f}s")


if __name__ == "__main__":
    main()
