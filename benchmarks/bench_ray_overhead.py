"""Ray overhead: a real `tune-digits search` grid against the same trials run by plain worker processes.

    .venv/bin/python benchmarks/bench_ray_overhead.py                    # LeNet's 16-configuration grid, 5 epochs
    .venv/bin/python benchmarks/bench_ray_overhead.py --epochs 3 --repeats 1
    .venv/bin/python benchmarks/bench_ray_overhead.py --checkpoint-every 5
    .venv/bin/python benchmarks/bench_ray_overhead.py --seeds 3 --seeds-per-trial 3   # the screen, grouped

Each repeat runs, in alternating order:
- `search`: tune_digits.tuning.plan_search + run_search on a local Ray (--cpus CPUs, 1 CPU per trial, so
  `cpus` trials at a time), output to a temporary folder. Ray is started before the clock starts and its
  start-up time is reported separately: a search pays it once, not per trial.
- `plain`: the same runs (same configs, seeds, data, threads=1), one fit() per (configuration, seed), in a
  pool of `cpus` worker processes, no Ray: the runs' own training time. The pool is warmed up (imports done)
  first. With --seeds-per-trial (and --vectorize) the search groups seeds into trials; the plain pool still
  runs one fit per seed, so a slower engine shows up as overhead too.

Overhead = (search wall − ideal) ÷ search wall, where ideal = Σ trials' own fit() time ÷ concurrency,
the definition of issue 6. Also shown against the plain pool's wall time (same concurrency, real
contention), which is the fairer like-for-like comparison on a shared machine.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def warm() -> int:
    import torch  # noqa: F401

    import tune_digits.train  # noqa: F401
    from tune_digits.data import load_mnist14

    load_mnist14()
    time.sleep(1.0)  # hold this worker so the next warm-up task goes to another one
    return os.getpid()


def plain_trial(flat: dict) -> float:
    """One trial without Ray: draw the data and fit; returns fit's own time (as the trial would)."""
    import torch

    from tune_digits.data import generate_pair_sets
    from tune_digits.train import TrainConfig, fit

    torch.set_num_threads(1)
    cfg = TrainConfig.from_flat(flat)
    data = generate_pair_sets(cfg.pairs, cfg.seed, n_test=cfg.test_pairs)
    start = time.perf_counter()
    fit(cfg, data, "cpu")
    return time.perf_counter() - start


def trial_configs(plan) -> list[dict]:
    axes = {k: v for k, v in plan.grid.items()}
    return [{**plan.trial_base(), **dict(zip(axes, values)), "seed": seed}
            for values in itertools.product(*axes.values()) for seed in plan.seeds]


def read_trial_times(exp_dir: Path) -> list[float]:
    """Each run's own time_s at its last epoch (fit's clock inside the Ray worker), per (trial, seed)."""
    last: dict[tuple[str, str], float] = {}
    with (exp_dir / "epochs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            last[row["trial_id"], row["seed"]] = float(row["time_s"])
    return list(last.values())


def run_search_once(args, output: Path, name: str) -> dict:
    from tune_digits.tuning import RunOptions, plan_search, run_search
    from tune_digits.spaces import load_space

    plan = plan_search(load_space(args.space), stage="screen", name=name, output=output, sizes=_sizes(args),
                       options=RunOptions(checkpoint_every=args.checkpoint_every, seeds_per_trial=args.seeds_per_trial,
                                          vectorize=args.vectorize))
    start = time.perf_counter()
    outcome = run_search(plan, progress=False, echo=lambda _line: None)
    wall = time.perf_counter() - start
    assert outcome.finished == plan.num_trials, outcome
    times = read_trial_times(plan.experiment_dir)
    return {"wall_s": wall, "trials": plan.num_trials, "trial_times": times, "configs": trial_configs(plan)}


def run_plain_once(pool, configs: list[dict]) -> dict:
    start = time.perf_counter()
    # Longest-first would need costs; the grid order is what Ray's FIFO scheduler also uses.
    times = [f.result() for f in as_completed([pool.submit(plain_trial, c) for c in configs])]
    return {"wall_s": time.perf_counter() - start, "trial_times": times}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="lenet", help="Search space (default lenet: 16 configurations).")
    parser.add_argument("--pairs", type=int, default=350, help="Pairs per trial (default 350, the screen stage).")
    parser.add_argument("--epochs", type=int, default=5, help="Epochs per trial (default 5: short trials).")
    parser.add_argument("--seeds", type=int, default=1, help="Seeds per configuration (default 1).")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for Ray and for the plain pool (default 2).")
    parser.add_argument("--repeats", type=int, default=2, help="search/plain pairs, order alternating (default 2).")
    parser.add_argument("--checkpoint-every", type=int, default=1, help="Epochs between trial checkpoints.")
    parser.add_argument("--seeds-per-trial", type=int, default=1, help="Seeds trained in one trial (default 1).")
    parser.add_argument("--vectorize", action="store_true", help="Grouped seeds as one batched model.")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="Set an environment variable of the driver first, e.g. a Tune knob (repeatable).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for item in args.env:
        key, _, value = item.partition("=")
        os.environ[key] = value

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp, \
            ProcessPoolExecutor(max_workers=args.cpus, mp_context=get_context("spawn")) as pool:
        [f.result() for f in [pool.submit(warm) for _ in range(args.cpus)]]  # imports done before any clock
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        ray_start = time.perf_counter() - start
        try:
            for rep in range(args.repeats):
                order = ("search", "plain") if rep % 2 == 0 else ("plain", "search")
                result = {}
                for kind in order:
                    if kind == "search":
                        result["search"] = run_search_once(args, Path(tmp), f"rep{rep}")
                    else:
                        result["plain"] = run_plain_once(pool, result.get("search", {}).get("configs")
                                                         or _configs(args, Path(tmp)))
                    print(f"repeat {rep}: {kind} {result[kind]['wall_s']:.1f} s", file=sys.stderr, flush=True)
                s, p = result["search"], result["plain"]
                ideal = sum(p["trial_times"]) / args.cpus
                rows.append({
                    "repeat": rep, "trials": s["trials"], "search_wall_s": s["wall_s"], "plain_wall_s": p["wall_s"],
                    "ideal_s": ideal, "sum_fit_s": sum(p["trial_times"]),
                    "sum_fit_in_ray_s": sum(s["trial_times"]),
                    "overhead_vs_ideal": (s["wall_s"] - ideal) / s["wall_s"],
                    "overhead_vs_plain": (s["wall_s"] - p["wall_s"]) / s["wall_s"],
                    "per_trial_overhead_s": (s["wall_s"] - ideal) * min(args.cpus, s["trials"]) / s["trials"],
                })
        finally:
            ray.shutdown()

    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "repeat"}
    print(f"bench_ray_overhead: space {args.space}, {rows[0]['trials']} trials × {args.epochs} epochs × {args.pairs} "
          f"pairs, {args.cpus} CPUs (1 per trial), {args.repeats} repeats"
          + f", checkpoint every {args.checkpoint_every} epoch(s), {args.seeds} seed(s) per configuration, "
            f"{args.seeds_per_trial} per trial" + (" (vectorized)" if args.vectorize else "")
          + "".join(f", {item}" for item in args.env) + "\n")
    print("| repeat | search wall s | plain pool wall s | Σ fit s (plain) | Σ fit s (in Ray) | ideal s "
          "| overhead vs ideal | overhead vs plain pool | overhead s per trial |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows + [{"repeat": "median", **med}]:
        print(f"| {r['repeat']} | {r['search_wall_s']:.1f} | {r['plain_wall_s']:.1f} | {r['sum_fit_s']:.1f} | "
              f"{r['sum_fit_in_ray_s']:.1f} | {r['ideal_s']:.1f} | {100 * r['overhead_vs_ideal']:.1f} % | "
              f"{100 * r['overhead_vs_plain']:.1f} % | {r['per_trial_overhead_s']:.2f} |")
    print(f"\nRay start-up (once per search, not in the walls above): {ray_start:.1f} s. "
          f"Σ fit in Ray: the runs' own clocks in the workers (training and evaluation; the checkpoint "
          f"writes and reports between epochs are outside them).")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "ray_start_s": ray_start,
                                         "rows": rows, "median": med}, indent=1, default=str))
    return 0


def _configs(args, output: Path) -> list[dict]:
    from tune_digits.tuning import plan_search
    from tune_digits.spaces import load_space

    plan = plan_search(load_space(args.space), stage="screen", name="plan-only", output=output, sizes=_sizes(args))
    return trial_configs(plan)


def _sizes(args):
    from tune_digits.tuning import Sizes

    return Sizes(pairs=args.pairs, reps=args.seeds, epochs=args.epochs)


if __name__ == "__main__":
    sys.exit(main())
