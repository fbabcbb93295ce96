"""What experiment tracking costs: one small `tune-digits search` grid, run with no tracker, with each
`--log` backend, and with all three, in alternating order; wall time of the whole command (Ray's start
included, the same for every variant). W&B runs offline (WANDB_MODE=offline), MLflow into the experiment's
SQLite store, TensorBoard beside the checkpoints: what a user gets without a server.

    .venv/bin/python benchmarks/bench_tracking.py                 # LeNet, 4 configurations × 2 seeds, 5 epochs
    .venv/bin/python benchmarks/bench_tracking.py --repeats 2 --epochs 3
    .venv/bin/python benchmarks/bench_tracking.py --driver-time     # time inside each tracker's hooks, one search

With --driver-time, one search with all three trackers runs in this process and the time the driver spends in
each tracker's hooks is summed: Tune's driver runs callbacks between trials' reports, so that time delays the
search directly, whatever the machine's load. W&B's per-trial logging processes come on top (wall time only).
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


HOOKS = ("log_trial_start", "log_trial_result", "log_trial_end", "on_experiment_end")


def driver_time(args) -> None:
    """One search (4 configurations × --reps seeds, linear net) with all three trackers; seconds in each hook."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune.logger import TBXLoggerCallback

    from tune_digits.tuning import Algorithm, RunOptions, Sizes, plan_search, run_search
    from tune_digits.spaces import apply_overrides, load_space

    spent: dict[tuple[str, str], list[float]] = {}

    def timed(name, cls, hook):
        inner = getattr(cls, hook)

        def wrapper(self, *a, **k):
            start = time.perf_counter()
            try:
                return inner(self, *a, **k)
            finally:
                spent.setdefault((name, hook), []).append(time.perf_counter() - start)
        setattr(cls, hook, wrapper)

    from tune_digits.tuning import tracking

    for name, base, ours in (("tensorboard", TBXLoggerCallback, TBXLoggerCallback),
                             ("mlflow", MLflowLoggerCallback, tracking.TaggedMLflow),
                             ("wandb", WandbLoggerCallback, tracking.TaggedWandb)):
        for hook in HOOKS:  # the outermost definition only, so no call is counted twice
            cls = ours if hook in vars(ours) else base
            if hook in vars(cls):
                timed(name, cls, hook)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(WANDB_MODE="offline", WANDB_DIR=tmp, WANDB_SILENT="true")
        space = apply_overrides(load_space("linear"), {"nodes": [16, 32], "layers": [1, 2], "dropout": False})
        plan = plan_search(space, output=tmp, sizes=Sizes(pairs=args.pairs, reps=args.reps, epochs=args.epochs),
                           algorithm=Algorithm(), options=RunOptions(log=("tensorboard", "mlflow", "wandb")))
        start = time.perf_counter()
        outcome = run_search(plan, progress=False, num_cpus=args.cpus, echo=lambda _: None)
        wall = time.perf_counter() - start
    results = plan.num_trials * args.epochs
    print(f"{outcome.finished}/{outcome.trials} trials × {args.epochs} epochs = {results} results, wall {wall:.1f} s, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'tracker':12s} {'hook':18s} {'calls':>6s} {'total s':>8s} {'mean ms':>8s}")
    for (name, hook), values in sorted(spent.items()):
        print(f"{name:12s} {hook:18s} {len(values):6d} {sum(values):8.2f} {1000 * sum(values) / len(values):8.1f}")
    for name in ("tensorboard", "mlflow", "wandb"):
        total = sum(sum(v) for (n, _), v in spent.items() if n == name)
        print(f"{name}: {total:.2f} s on the driver, {1000 * total / results:.1f} ms per reported epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2, help="seeds per configuration")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--driver-time", action="store_true", help="time inside each tracker's hooks instead")
    args = parser.parse_args()
    if args.driver_time:
        return driver_time(args)
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
