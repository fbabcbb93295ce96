"""Per-trial training speed: our `fit()` against a peer-style PyTorch loop, same model and hyperparameters.

    .venv/bin/python benchmarks/bench_trial.py                         # LeNet + ResNet, 1,000 pairs, 25 epochs, 5 seeds
    .venv/bin/python benchmarks/bench_trial.py --networks lenet --epochs 5 --seeds 3
    .venv/bin/python benchmarks/bench_trial.py --ablation              # also the levers one by one
    .venv/bin/python benchmarks/bench_trial.py --networks lenet --variants baseline-1t   # accuracy, cheaper baseline

Variants (each job runs alone in a fresh process, so thread settings never leak between jobs):
- `fit`        tune_digits.train.fit with threads=1, as a search trial runs it (--cpus-per-trial 1).
- `baseline`   a typical peer script: TensorDataset + DataLoader(shuffle=True), torch's default thread count,
               `loss.item()` every step, evaluation through DataLoaders too. Same model (create_model), same
               optimiser, schedule, loss, batch size and epochs, and the same per-epoch evaluation (train and
               test error in eval mode).
--ablation adds `baseline-1t` (the peer loop on 1 thread) and `baseline-1t-cl` (1 thread + channels-last
weights), which separate the thread-count lever from the memory-format lever, and `fit-default-threads`.
`fit-bf16` and `fit-bf16-default-threads` (via --variants): fit under bf16 autocast, as `tune-digits reproduce`
trains the convolutional nets by default (`--precision auto`).

The machine may be shared and noisy, so jobs of one (net, seed) run back to back with the variant order
rotated from seed to seed, and the speed ratio is the median over seeds of the per-seed ratio
(variant time ÷ fit time). Accuracy: final-epoch test comparison error, mean ± std over seeds.
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
from common import BEST as PAPER_BEST, mean_std, parse_archs  # noqa: E402
from tune_digits.tuning import cpu_model  # noqa: E402

BEST = {network: PAPER_BEST[network] for network in ('lenet', 'resnet')}  # the paper's best (benchmarks/common.py)
VARIANTS = ("fit", "baseline")
ABLATION = ("baseline-1t", "baseline-1t-cl", "fit-default-threads")
# fit under bf16 autocast (what `tune-digits reproduce` now runs for the CNNs), 1 thread and torch's default.
PRECISION = ("fit-bf16", "fit-bf16-default-threads")


def peer_loop(config, data, threads: int | None, channels_last: bool) -> list[dict]:
    """What a peer would write: Dataset/DataLoader batches, item() per step, DataLoader evaluation."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tune_digits.models import create_model
    from tune_digits.train import build_optimizer, pair_loss, seed_everything

    if threads:
        torch.set_num_threads(threads)
    seed_everything(config.seed)
    model = create_model(config.network, **config.model_kwargs())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt, sched = build_optimizer(model.parameters(), config)
    train_ds = TensorDataset(data.train_input, data.train_classes, data.train_target)
    test_ds = TensorDataset(data.test_input, data.test_classes, data.test_target)
    loader = DataLoader(train_ds, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))

    def evaluate(ds):
        model.eval()
        digit_wrong = compare_wrong = 0
        with torch.no_grad():
            for xb, cb, yb in DataLoader(ds, batch_size=1000):
                out = model(xb)
                compare_wrong += (model.predict(out) != yb).sum().item()
                digit_wrong += (out.digits.argmax(-1) != cb).sum().item()
        return 100.0 * digit_wrong / (2 * len(ds)), 100.0 * compare_wrong / len(ds)

    history = []
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total = 0.0
        for xb, cb, yb in loader:
            out = model(xb)
            loss = pair_loss(out, cb, yb, config)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if sched is not None:
            sched.step()
        train_digit, _ = evaluate(train_ds)
        test_digit, test_compare = evaluate(test_ds)
        history.append({"epoch": epoch, "train_loss": total / len(loader), "train_error": train_digit,
                        "test_digit_error": test_digit, "test_error": test_compare,
                        "time_s": time.perf_counter() - start})
    return history


def run_job(network: str, seed: int, variant: str, pairs: int, epochs: int) -> dict:
    """One trial in a fresh worker process; times the training (data drawing excluded: it is shared)."""
    import torch

    from tune_digits.data import generate_pair_sets
    from tune_digits.train import TrainConfig, fit

    default_threads = torch.get_num_threads()
    threads = None if variant in ("baseline", "fit-default-threads", "fit-bf16-default-threads") else 1
    config = TrainConfig(network=network, pairs=pairs, epochs=epochs, seed=seed, threads=threads, options=BEST[network],
                         precision="bf16" if "bf16" in variant else "fp32")
    data = generate_pair_sets(pairs, seed)
    start = time.perf_counter()
    if variant.startswith("fit"):
        history: list[dict] = []
        fit(config, data, "cpu", on_epoch=lambda m, _state: history.append(m))
    else:
        history = peer_loop(config, data, threads, channels_last=variant.endswith("-cl"))
    wall = time.perf_counter() - start
    return {"network": network, "seed": seed, "variant": variant, "wall_s": wall, "threads": threads or default_threads,
            "test_error": history[-1]["test_error"], "train_error": history[-1]["train_error"],
            "test_digit_error": history[-1]["test_digit_error"]}




def summarise(results: list[dict], networks, variants, seeds) -> list[dict]:
    rows = []
    for network in networks:
        by = {(r["variant"], r["seed"]): r for r in results if r["network"] == network}
        for v in variants:
            runs = [by[(v, s)] for s in seeds if (v, s) in by]
            if not runs:
                continue
            # Per-seed ratio against fit from the same (net, seed) block: noise common to both cancels.
            ratios = [by[(v, s)]["wall_s"] / by[("fit", s)]["wall_s"] for s in seeds if (v, s) in by and ("fit", s) in by]
            rows.append({"network": network, "variant": v, "threads": runs[0]["threads"], "n": len(runs),
                         "median_s": statistics.median(r["wall_s"] for r in runs),
                         "time_vs_fit": statistics.median(ratios) if ratios else None,
                         "ratios": ratios,
                         "test_error": mean_std([r["test_error"] for r in runs]),
                         "train_error": mean_std([r["train_error"] for r in runs])})
    return rows


def markdown(rows: list[dict], header: dict) -> str:
    lines = [f"bench_trial: {header['pairs']} pairs, {header['epochs']} epochs, seeds {header['seeds']}; "
             f"{header['cpu']} ({header['cpus']} CPUs), torch {header['torch']}; wall {header['wall_s']:.0f} s",
             "",
             "| net | variant | threads | median s/trial | time ÷ fit's (median of per-seed ratios) "
             "| final test cmp err % | final train digit err % |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['time_vs_fit']:.2f}×" if r["time_vs_fit"] is not None else "–"
        lines.append(f"| {r['network']} | {r['variant']} | {r['threads']} | {r['median_s']:.1f} | {ratio} | "
                     f"{r['test_error'][0]:.2f} ± {r['test_error'][1]:.2f} | "
                     f"{r['train_error'][0]:.2f} ± {r['train_error'][1]:.2f} |")
    lines.append("")
    lines.append("`time ÷ fit's` > 1 means the variant is that many times slower than our fit(), i.e. fit's speed-up.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="lenet,resnet")
    parser.add_argument("--seeds", type=int, default=5, help="Seeds 0..N-1 (default 5).")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--ablation", action="store_true", help="Also run " + ", ".join(ABLATION) + ".")
    parser.add_argument("--variants", help="Comma-separated variants to run instead (fit is always added): "
                        + ", ".join(VARIANTS + ABLATION + PRECISION) + ".")
    parser.add_argument("--json", type=Path, help="Write every job's result and the summary here.")
    args = parser.parse_args(argv)

    import torch

    networks = parse_archs(args.networks, BEST)
    if networks is None:
        return 1
    variants = list(VARIANTS) + (list(ABLATION) if args.ablation else [])
    if args.variants:
        variants = ["fit"] + [v.strip() for v in args.variants.split(",") if v.strip() not in ("", "fit")]
    unknown = [v for v in variants if v not in VARIANTS + ABLATION + PRECISION]
    if unknown:
        print(f"error: unknown variant {', '.join(unknown)}; known: {', '.join(VARIANTS + ABLATION)}", file=sys.stderr)
        return 1
    seeds = list(range(args.seeds))
    jobs = []
    for seed in seeds:
        for network in networks:
            k = seed % len(variants)  # rotate the order so no variant always runs first (or last)
            jobs += [(network, seed, v) for v in variants[k:] + variants[:k]]

    start = time.perf_counter()
    results = []
    # One job at a time, each in a fresh spawned process (max_tasks_per_child=1): clean torch thread state.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        for i, (network, seed, variant) in enumerate(jobs, 1):
            r = pool.submit(run_job, network, seed, variant, args.pairs, args.epochs).result()
            results.append(r)
            print(f"[{i}/{len(jobs)}] {network} seed {seed} {variant}: {r['wall_s']:.1f} s, "
                  f"test cmp err {r['test_error']:.2f} %", file=sys.stderr, flush=True)
    rows = summarise(results, networks, variants, seeds)
    header = {"pairs": args.pairs, "epochs": args.epochs, "seeds": f"0..{seeds[-1]}", "cpu": cpu_model(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "wall_s": time.perf_counter() - start}
    print(markdown(rows, header))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "summary": rows, "jobs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
