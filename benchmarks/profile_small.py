"""Where a small ResNet's training time goes, and what would take it back: torch.profiler by kind of op, then
training steps timed in the same run for memory layouts, bf16 and torch.compile (its compile time apart).

    .venv/bin/python benchmarks/profile_small.py                          # ResNet 5 blocks × 4 channels, k=3
    .venv/bin/python benchmarks/profile_small.py --set channels=1 --set blocks=1 --compile

One torch thread, batches of 50 pairs (100 digits) as the screen trains them, random inputs of the real
shape. Step = forward, loss, backward, SGD step (the loop's `InTurn.step`). The variants alternate, each
timed as the best of several rounds of `--steps` steps, so a shared machine's load falls on all alike.
"""
from __future__ import annotations

import argparse
import sys
import time

from common import BEST, parse_settings

CATEGORIES = (  # first match wins: op-name fragments → what the time is
    ("convolution", ("convolution", "conv2d")),
    ("batch norm", ("batch_norm",)),
    ("optimiser", ("Optimizer.", "_foreach", "SGD")),
    ("pooling", ("pool",)),
    ("elementwise + other kernels", ("aten::",)),
)


def make_step(options: dict, layout: str, precision: str, compiled: bool, batch: int = 50):
    import torch

    from tune_digits.models import create_model
    from tune_digits.train import TrainConfig, build_optimizer, pair_loss

    config = TrainConfig(network="resnet", options=options, precision=precision)
    torch.manual_seed(0)
    model = create_model("resnet", **options)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt, _ = build_optimizer(model.parameters(), config)
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch, 2, 14, 14)
    classes = torch.randint(0, 10, (batch, 2))
    target = (classes[:, 0] <= classes[:, 1]).long()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = pair_loss(forward(x), classes, target, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def profile(step, steps: int) -> tuple[list[tuple[str, float]], float, int]:
    """(category, share of the profiled time) list, milliseconds per step and aten ops per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(3):
        step()
    start = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = time.perf_counter() - start
    totals = {name: 0.0 for name, _ in CATEGORIES}
    ops = 0
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            ops += event.count
        for name, fragments in CATEGORIES:
            if any(f in event.key for f in fragments):
                totals[name] += event.self_cpu_time_total
                break
    total = sum(totals.values())
    kernels = total / 1e6 / wall  # the rest of the wall time: Python, autograd's engine, the profiler itself
    shares = [(k, v / total * kernels) for k, v in totals.items()] + [("outside aten ops", 1 - kernels)]
    return shares, 1000 * wall / steps, ops // steps


def time_steps(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="OPTION=VALUE")
    parser.add_argument("--steps", type=int, default=20, help="Steps per timed round (default 20: one 1,000-pair epoch).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="Also time torch.compile (inductor) variants.")
    args = parser.parse_args(argv)
    extra = parse_settings(args.settings)
    if extra is None:
        return 1
    import torch

    torch.set_num_threads(1)
    options = {**BEST["resnet"], "blocks": 5, "channels": 4, "kernel_size": 3, **extra}
    label = ", ".join(f"{k}={v}" for k, v in options.items())
    print(f"profile_small: resnet {label}; 1 thread, torch {torch.__version__}\n")
    print("| layout | precision | ms per step (profiled) | aten ops per step | " +
          " | ".join(name for name, _ in CATEGORIES) + " | outside aten ops |")
    print("|---|---|---|---|" + "---|" * (len(CATEGORIES) + 1))
    for layout in ("channels_last", "contiguous"):
        for precision in ("fp32", "bf16"):
            shares, ms, ops = profile(make_step(options, layout, precision, False), args.steps)
            print(f"| {layout} | {precision} | {ms:.1f} | {ops} | " +
                  " | ".join(f"{100 * s:.0f} %" for _, s in shares) + " |", flush=True)

    variants = [(layout, precision, False) for layout in ("channels_last", "contiguous") for precision in ("fp32", "bf16")]
    if args.compile:
        variants += [("channels_last", "fp32", True), ("contiguous", "fp32", True), ("contiguous", "bf16", True)]
    steps, compile_s = {}, {}
    for v in variants:
        start = time.perf_counter()
        steps[v] = make_step(options, *v)
        for _ in range(3):  # the first calls compile (forward and backward graphs)
            steps[v]()
        compile_s[v] = time.perf_counter() - start
    times = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants[r % len(variants):] + variants[:r % len(variants)]:
            times[v].append(time_steps(steps[v], args.steps))
    base = min(times[variants[0]])
    print(f"\nSteps timed in the same run (best of {args.rounds} rounds of {args.steps} steps); × = today's "
          f"(channels_last, fp32, eager) time ÷ the variant's\n")
    print("| layout | precision | compiled | first 3 steps s | ms per step | × today |\n|---|---|---|---|---|---|")
    for v in variants:
        best = min(times[v])
        print(f"| {v[0]} | {v[1]} | {'yes' if v[2] else 'no'} | {compile_s[v]:.1f} | {best:.1f} | {base / best:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
