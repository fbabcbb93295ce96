"""GPU packing: LeNet runs per minute at 1, 0.5, 0.25 and 0.125 GPU per trial through the real search, and
replica-vectorised trials (all seeds of a configuration as one batched model) against one seed per trial.

    .venv/bin/python benchmarks/gpu_bench.py                  # on a GPU machine; sized for one ≤ 10-minute run
    .venv/bin/python benchmarks/gpu_bench.py --json $OUT/gpu_bench.json --time-limit 500
    .venv/bin/python benchmarks/gpu_bench.py --smoke          # anywhere: CPU, a fake Ray GPU, tiny trials

For each fraction g, one `tune_digits.tuning` run (plan_search + run_search, output in a temporary folder) of
the LeNet grid (16 configurations × --seeds seeds) with --gpus-per-trial g, so Ray packs 1/g trials on each
GPU. Then the same grid with `--seeds-per-trial SEEDS --vectorize` (one trial per configuration) at 1 and 0.25
GPU per trial. Ray is started once, before the clock. Reported: runs (configuration × seed) per minute, the
speed-up over whole-GPU single-seed trials (target: 0.125 GPU ≥ 5×), the most trials seen running at once
(checks the packing) and the device the trials really used. Last, without Ray, bench_replicas' engines
(separate fits, in turn, vectorized) on the GPU for LeNet. The whole-GPU and 0.125 settings run first, so a
--time-limit cut still answers the target.

--smoke shrinks everything (4 trials, 50 pairs, 2 epochs of ≥ 1.5 s) and gives Ray one fake GPU (num_gpus=1) on a CPU
machine: the trials run on the CPU (search.run_trial only uses CUDA when torch sees it) but Ray's fractional-GPU
packing is exercised exactly as on a GPU machine.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRACTIONS = (1.0, 0.125, 0.5, 0.25)  # whole GPU and the smallest first: they decide the target
VECTORIZED_FRACTIONS = (1.0, 0.25)


def max_overlap(exp_dir: Path) -> tuple[int, list[str]]:
    """The most trials running at once, from each trial's [first epoch start, last report] interval."""
    spans: dict[str, list[float]] = {}
    nodes = set()
    with (exp_dir / "epochs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            wall, t = float(row["wall_time"]), float(row["time_s"])
            start, end = spans.get(row["trial_id"], [float("inf"), 0.0])
            if int(row["epoch"]) == 1:
                start = min(start, wall - t)
            spans[row["trial_id"]] = [start, max(end, wall)]
            nodes.add(row.get("node", ""))
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()],
                    key=lambda ev: (ev[0], ev[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak, sorted(nodes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny run on CPU with a fake Ray GPU.")
    parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in FRACTIONS))
    parser.add_argument("--seeds", type=int, default=4,
                        help="Seeds per configuration (default 4: 64 single-seed trials, 16 vectorized ones).")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--vectorized-fractions", default=",".join(f"{f:g}" for f in VECTORIZED_FRACTIONS),
                        help="GPU per vectorized trial ('' to skip).")
    parser.add_argument("--cpus-per-trial", type=float, default=None,
                        help="Default 1 (0.25 with --smoke, so 2 CPUs never limit the packing).")
    parser.add_argument("--time-limit", type=float, default=540.0,
                        help="Skip the settings not started after this many seconds (default 540).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    import torch

    from tune_digits.tuning import Resources, RunOptions, Sizes, plan_search, run_search
    from tune_digits.spaces import load_space

    if args.smoke:
        args.seeds, args.pairs, args.epochs = 2, 50, 2
        # Trials this small end before their neighbours start; the search's test hook sleeps after each
        # epoch (inherited by the local Ray workers) so that packed trials visibly overlap.
        os.environ.setdefault("TUNE_DIGITS_EPOCH_DELAY", "1.5")
        cpus_per_trial = args.cpus_per_trial or 0.25
        num_gpus, device = 1, "cpu (fake Ray GPU)"
    else:
        if not torch.cuda.is_available():
            print("error: torch sees no GPU; use --smoke to exercise the script on CPU", file=sys.stderr)
            return 1
        cpus_per_trial = args.cpus_per_trial or 1.0
        num_gpus, device = torch.cuda.device_count(), torch.cuda.get_device_name(0)
    variants = [(float(f), False) for f in args.fractions.split(",") if f] + \
        [(float(f), True) for f in args.vectorized_fractions.split(",") if f]
    space = load_space("lenet")
    trials_override = 4 if args.smoke else None

    begin = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), num_gpus=num_gpus, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    ray_start = time.perf_counter() - begin
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
            for g, vectorize in variants:
                label = f"{g:g} GPU/trial" + (", vectorized" if vectorize else "")
                if time.perf_counter() - begin > args.time_limit:
                    print(f"skipping {label}: past --time-limit", file=sys.stderr, flush=True)
                    continue
                plan = plan_search(space, stage="screen", name=f"gpu{g:g}{'v' if vectorize else ''}", output=tmp,
                                   sizes=Sizes(pairs=args.pairs, reps=args.seeds, epochs=args.epochs),
                                   resources=Resources(cpus_per_trial, g),
                                   options=RunOptions(seeds_per_trial=args.seeds if vectorize else 1,
                                                      vectorize=vectorize))
                if trials_override:  # smoke: the first few configurations only
                    keep = dict(list(plan.grid.items())[:2])
                    plan.grid = {**{k: v[:1] for k, v in plan.grid.items()}, **keep}
                start = time.perf_counter()
                outcome = run_search(plan, progress=False, echo=lambda line: print(line, file=sys.stderr))
                wall = time.perf_counter() - start
                peak, nodes = max_overlap(plan.experiment_dir)
                runs = outcome.finished * plan.num_runs // plan.num_trials
                row = {"gpus_per_trial": g, "vectorized": vectorize, "trials": plan.num_trials,
                       "finished": outcome.finished, "runs": runs, "wall_s": wall, "runs_per_min": 60 * runs / wall,
                       "max_running": peak,
                       "expected_running": min(int(round(num_gpus / g)), int(os.cpu_count() // cpus_per_trial),
                                               plan.num_trials),
                       "gpu_used": outcome.resources.gpus_per_trial}
                rows.append(row)
                print(f"{label}: {outcome.finished}/{plan.num_trials} trials in {wall:.1f} s "
                      f"({row['runs_per_min']:.1f} runs/min), up to {peak} at once", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()

    engines = []
    if time.perf_counter() - begin <= args.time_limit:
        from bench_replicas import markdown, time_engines

        size = dict(seeds=2, pairs=50, epochs=1, repeats=1) if args.smoke else \
            dict(seeds=16, pairs=args.pairs, epochs=2, repeats=2)
        engines = time_engines("lenet", dict(space.best), **size, device="cpu" if args.smoke else "cuda",
                               log=lambda line: print(line, file=sys.stderr, flush=True))
    whole = next((r["runs_per_min"] for r in rows if r["gpus_per_trial"] == 1.0 and not r["vectorized"]), None)
    print(f"gpu_bench{' --smoke' if args.smoke else ''}: LeNet grid, {args.pairs} pairs, {args.epochs} epochs, "
          f"{args.seeds} seed(s)/configuration; device {device}, {num_gpus} GPU(s), {os.cpu_count()} CPUs, "
          f"{cpus_per_trial:g} CPU/trial; torch {torch.__version__}, ray {ray.__version__}; "
          f"Ray start-up {ray_start:.1f} s\n")
    print("| GPU per trial | seeds per trial | trials | runs | wall s | runs/min | × whole-GPU single-seed "
          "| most running at once (expected) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["vectorized"], -r["gpus_per_trial"])):
        speedup = f"{r['runs_per_min'] / whole:.2f}×" if whole else "–"
        per_trial = f"{args.seeds} (vectorized)" if r["vectorized"] else "1"
        print(f"| {r['gpus_per_trial']:g} | {per_trial} | {r['finished']}/{r['trials']} | {r['runs']} | "
              f"{r['wall_s']:.1f} | {r['runs_per_min']:.1f} | {speedup} | {r['max_running']} ({r['expected_running']}) |")
    if engines:
        print("\nEngines without Ray (bench_replicas):\n\n" + markdown(engines))
    eighth = next((r["runs_per_min"] for r in rows if r["gpus_per_trial"] == 0.125 and not r["vectorized"]), None)
    if whole and eighth:
        print(f"\n0.125 GPU/trial vs whole GPU: {eighth / whole:.2f}× (target ≥ 5×)"
              + (" — smoke run: CPU trials, the number means nothing" if args.smoke else ""))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "device": device,
                                         "ray_start_s": ray_start, "rows": rows, "engines": engines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
