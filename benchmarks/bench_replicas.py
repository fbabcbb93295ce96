"""Replica engines: one configuration × R seeds, trained one seed after another (`fit`, what one seed per
trial does), in turn (`fit_replicas`) and vectorized (`fit_replicas(vectorize=True)`, one batched model).

    .venv/bin/python benchmarks/bench_replicas.py                        # LeNet and ResNet best: 3 seeds × 350 pairs
    .venv/bin/python benchmarks/bench_replicas.py --seeds 20 --pairs 1000 --epochs 2
    .venv/bin/python benchmarks/bench_replicas.py --networks resnet --set channels=2 --set blocks=1
    .venv/bin/python benchmarks/bench_replicas.py --device cuda --seeds 16 --pairs 1000

No Ray: this isolates the compute. Each repeat runs the engines back to back, the order rotated from
repeat to repeat, after a one-epoch warm-up of each (imports, allocator, CUDA kernels). CPU runs use one
torch thread (what a search trial with 1 CPU gets). Ratio = separate time ÷ engine time (> 1: faster).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from common import BEST, mean_std, network_parser, parse_archs, parse_settings, report

ENGINES = ("separate", "in_turn", "vectorized")


def time_engines(network: str, options: dict, seeds: int, pairs: int, epochs: int, device: str, repeats: int,
                 engines=ENGINES, log=print) -> list[dict]:
    import torch

    from tune_digits.data import generate_pair_sets
    from tune_digits.train import TrainConfig, fit, fit_replicas

    threads = 1 if device == "cpu" else None

    def make(n_epochs):
        return [TrainConfig(network=network, pairs=pairs, epochs=n_epochs, seed=s, threads=threads, options=options)
                for s in range(seeds)]

    datas = [generate_pair_sets(pairs, s) for s in range(seeds)]

    def run(engine, configs):
        if engine == "separate":
            return [fit(c, d, device) for c, d in zip(configs, datas)]
        return fit_replicas(configs, datas, device, vectorize=engine == "vectorized")

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for engine in engines:  # warm-up
        run(engine, make(1))
    times = {e: [] for e in engines}
    finals = {}
    for rep in range(repeats):
        order = engines[rep % len(engines):] + engines[:rep % len(engines)]
        for engine in order:
            sync()
            start = time.perf_counter()
            finals[engine] = run(engine, make(epochs))
            sync()
            times[engine].append(time.perf_counter() - start)
            log(f"{network} repeat {rep}: {engine} {times[engine][-1]:.2f} s")
    base = statistics.median(times["separate"]) if "separate" in times else None
    rows = []
    for engine in engines:
        med = statistics.median(times[engine])
        rows.append({"network": network, "options": options, "engine": engine, "seeds": seeds, "pairs": pairs,
                     "epochs": epochs, "device": device, "times_s": times[engine], "median_s": med,
                     "per_seed_epoch_s": med / (seeds * epochs), "speedup": base / med if base else None,
                     "final_test_error": mean_std(m["test_error"] for m in finals[engine])})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| net | options | engine | seeds × pairs × epochs | median s | s per seed-epoch | × separate "
             "| final test error |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "–"
        mean, std = r["final_test_error"]
        speed = f"{r['speedup']:.2f}×" if r["speedup"] else "–"
        lines.append(f"| {r['network']} | {opts} | {r['engine']} | {r['seeds']} × {r['pairs']} × {r['epochs']} | "
                     f"{r['median_s']:.2f} | {r['per_seed_epoch_s']:.3f} | {speed} | {mean:.2f} ± {std:.2f} % |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = network_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="Replicas (default 3, the screen's seeds).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    networks = parse_archs(args.networks, BEST)
    engines = tuple(e for e in args.engines.split(",") if e)
    if networks is None:
        return 1
    if any(e not in ENGINES for e in engines):
        print(f"error: engines are {', '.join(ENGINES)}", file=sys.stderr)
        return 1
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: torch sees no GPU", file=sys.stderr)
        return 1
    extra = parse_settings(args.settings)
    if extra is None:
        return 1
    rows = []
    for network in networks:
        rows += time_engines(network, {**BEST[network], **extra}, args.seeds, args.pairs, args.epochs, args.device,
                             args.repeats, engines, log=lambda line: print(line, file=sys.stderr, flush=True))
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu, 1 thread, torch {torch.__version__}"
    return report(f"bench_replicas: {device}, {args.repeats} repeats", markdown(rows), args, rows)


if __name__ == "__main__":
    sys.exit(main())
