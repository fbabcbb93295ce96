"""Speed of `precision: bf16` and of `train_eval: final` against today's fp32, every-epoch trial, measured in
the same run: the variants of each configuration alternate, so a shared machine's load falls on all alike.

    .venv/bin/python benchmarks/bench_precision.py                        # LeNet and ResNet best, screen size
    .venv/bin/python benchmarks/bench_precision.py --networks resnet --set channels=2 --set blocks=1
    .venv/bin/python benchmarks/bench_precision.py --pairs 1000 --epochs 3   # the final stage's size

No Ray: one `fit` per variant, one torch thread (what a search trial with 1 CPU gets), after a one-epoch
warm-up of each. Ratio = fp32/every time ÷ variant time, per repeat, median (> 1: faster). `train eval` is
the share of an fp32 epoch spent measuring the training set's error, from the every/final difference:
(T_every − T_final) ÷ (epochs − 1) ÷ (T_every ÷ epochs). A screen of 25 epochs with `train_eval: final`
skips 24 of those 25 passes.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from common import BEST, network_parser, parse_archs, parse_settings, report

VARIANTS = {"fp32/every": ("fp32", "every"), "bf16/every": ("bf16", "every"),
            "fp32/final": ("fp32", "final"), "bf16/final": ("bf16", "final")}


def time_variants(network: str, options: dict, pairs: int, epochs: int, repeats: int, seed: int = 0,
                  log=print) -> dict:
    from tune_digits.data import generate_pair_sets
    from tune_digits.train import TrainConfig, fit

    data = generate_pair_sets(pairs, seed)

    def run(variant: str, n_epochs: int) -> tuple[float, dict]:
        precision, train_eval = VARIANTS[variant]
        cfg = TrainConfig(network=network, pairs=pairs, epochs=n_epochs, seed=seed, threads=1, options=options,
                          precision=precision, train_eval=train_eval)
        start = time.perf_counter()
        last = fit(cfg, data, "cpu")
        return time.perf_counter() - start, last

    for variant in VARIANTS:  # warm-up: imports, allocator, oneDNN's kernel caches
        run(variant, 1)
    times = {v: [] for v in VARIANTS}
    finals = {}
    names = list(VARIANTS)
    for rep in range(repeats):
        for variant in names[rep % len(names):] + names[:rep % len(names)]:
            seconds, finals[variant] = run(variant, epochs)
            times[variant].append(seconds)
            log(f"{network} {options} repeat {rep}: {variant} {seconds:.2f} s")
    ratios = {v: statistics.median(a / b for a, b in zip(times["fp32/every"], times[v])) for v in VARIANTS}
    every, final = (statistics.median(times[v]) for v in ("fp32/every", "fp32/final"))
    share = (every - final) / max(epochs - 1, 1) / (every / epochs) if epochs > 1 else None
    return {"network": network, "options": options, "pairs": pairs, "epochs": epochs, "repeats": repeats,
            "times_s": times, "median_s": {v: statistics.median(t) for v, t in times.items()},
            "ratio": ratios, "train_eval_share": share,
            "final_test_error": {v: m["test_error"] for v, m in finals.items()}}


def markdown(rows: list[dict]) -> str:
    lines = ["| net | options | pairs × epochs | fp32/every s | bf16 × | fp32/final × | bf16/final × | train eval |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "–"
        share = f"{100 * r['train_eval_share']:.0f} %" if r["train_eval_share"] is not None else "–"
        lines.append(f"| {r['network']} | {opts} | {r['pairs']} × {r['epochs']} | {r['median_s']['fp32/every']:.2f} | "
                     f"{r['ratio']['bf16/every']:.2f}× | {r['ratio']['fp32/final']:.2f}× | "
                     f"{r['ratio']['bf16/final']:.2f}× | {share} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = network_parser(__doc__)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    networks = parse_archs(args.networks, BEST)
    if networks is None:
        return 1
    import torch

    extra = parse_settings(args.settings)
    if extra is None:
        return 1
    rows = [time_variants(network, {**BEST[network], **extra}, args.pairs, args.epochs, args.repeats,
                          log=lambda line: print(line, file=sys.stderr, flush=True)) for network in networks]
    return report(f"bench_precision: cpu, 1 thread, torch {torch.__version__}, {args.repeats} repeats",
                  markdown(rows), args, rows)


if __name__ == "__main__":
    sys.exit(main())
