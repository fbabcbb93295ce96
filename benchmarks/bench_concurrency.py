"""CPU concurrency: N trials × 1 thread at once against 1 trial × N threads at a time, on the same work.

    .venv/bin/python benchmarks/bench_concurrency.py                  # N=2, LeNet, 1,000 pairs, 5 epochs, 3 repeats
    .venv/bin/python benchmarks/bench_concurrency.py --network resnet --epochs 2 --repeats 2

The work is N trials (seeds 0..N-1) of the paper's best net. `parallel`: N worker processes, torch threads = 1,
one trial each, all at once (what a search does with --cpus-per-trial 1). `threaded`: one worker process with
torch threads = N running the N trials one after the other (--cpus-per-trial N). Workers are spawned and warmed
up before the clock starts. The two modes alternate in order; the throughput ratio is the median over repeats
of threaded wall ÷ parallel wall (> 1: N × 1 thread is faster). The load average is printed beside it: on a
shared machine, threads that wait for each other at every op suffer most when other work takes the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import BEST as PAPER_BEST  # noqa: E402

BEST = {network: PAPER_BEST[network] for network in ('lenet', 'resnet')}  # the paper's best (benchmarks/common.py)


def warm(threads: int) -> int:
    import torch

    import tune_digits.train  # noqa: F401
    from tune_digits.data import load_mnist14

    torch.set_num_threads(threads)
    load_mnist14()
    time.sleep(1.0)  # hold this worker so the next warm-up task lands on another one
    return os.getpid()


def trials(network: str, seeds: list[int], pairs: int, epochs: int, threads: int) -> float:
    """Run the trials of `seeds` one after the other on `threads` threads; returns the wall time."""
    from tune_digits.data import generate_pair_sets
    from tune_digits.train import TrainConfig, fit

    start = time.perf_counter()
    for seed in seeds:
        cfg = TrainConfig(network=network, pairs=pairs, epochs=epochs, seed=seed, threads=threads, options=BEST[network])
        fit(cfg, generate_pair_sets(pairs, seed), "cpu")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2, help="Trials = threads (default 2, the machine's cores here).")
    parser.add_argument("--network", default="lenet", choices=sorted(BEST))
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    seeds = list(range(args.n))
    ctx = get_context("spawn")
    rows = []
    with ProcessPoolExecutor(args.n, mp_context=ctx) as many, ProcessPoolExecutor(1, mp_context=ctx) as one:
        [f.result() for f in [many.submit(warm, 1) for _ in range(args.n)] + [one.submit(warm, args.n)]]
        for rep in range(args.repeats):
            walls = {}
            for mode in (("parallel", "threaded") if rep % 2 == 0 else ("threaded", "parallel")):
                load = os.getloadavg()[0]
                start = time.perf_counter()
                if mode == "parallel":
                    [f.result() for f in [many.submit(trials, args.network, [s], args.pairs, args.epochs, 1)
                                          for s in seeds]]
                else:
                    one.submit(trials, args.network, seeds, args.pairs, args.epochs, args.n).result()
                walls[mode] = (time.perf_counter() - start, load)
                print(f"repeat {rep}: {mode} {walls[mode][0]:.1f} s (load average {load:.1f})",
                      file=sys.stderr, flush=True)
            rows.append({"repeat": rep, "parallel_s": walls["parallel"][0], "threaded_s": walls["threaded"][0],
                         "ratio": walls["threaded"][0] / walls["parallel"][0],
                         "load": (walls["parallel"][1] + walls["threaded"][1]) / 2})
    med = statistics.median(r["ratio"] for r in rows)
    print(f"bench_concurrency: {args.n} trials of {args.network} ({args.pairs} pairs, {args.epochs} epochs), "
          f"{os.cpu_count()} CPUs\n")
    print(f"| repeat | {args.n} trials × 1 thread, s | 1 trial × {args.n} threads (×{args.n} in turn), s "
          f"| throughput ratio | load average (1 min) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['repeat']} | {r['parallel_s']:.1f} | {r['threaded_s']:.1f} | {r['ratio']:.2f}× | {r['load']:.1f} |")
    print(f"\nMedian throughput ratio ({args.n} × 1 thread ÷ 1 × {args.n} threads): {med:.2f}×  (target ≥ 1.4×)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "median_ratio": med}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
