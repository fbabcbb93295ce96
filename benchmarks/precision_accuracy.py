"""Accuracy of `precision: bf16` against fp32, from result sets that `tune-digits search` wrote.

    .venv/bin/python benchmarks/precision_accuracy.py --runs RUNS [--reference reference]

For each search space under RUNS (laid out as `tune-digits search --output RUNS` lays it out):
- `final_bf16` against REFERENCE/<space>/final: the final-epoch test comparison error over the seeds,
  mean ± std, the difference and Welch's p; within ±0.3 points passes;
- `screen_bf16` against REFERENCE/<space>/screen: how many of the report's top-5 configurations agree, and
  whether the best one does;
- `fp32_check` against REFERENCE/<space>/final: whether today's code reproduces the committed fp32 rows
  (the largest relative difference of any metric over the seeds both have; wall-clock time aside), which is
  what makes the committed final stage a fair fp32 side.
The commands that make RUNS are in BENCHMARKS.md §7.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_digits import results  # noqa: E402
from tune_digits.report import analyse, welch  # noqa: E402
from tune_digits.report.load import load_experiment  # noqa: E402

TOLERANCE = 0.3  # points of test comparison error (issue 17)


def final_errors(path: Path, space: str):
    a = analyse(load_experiment(path, space))
    return a.values(a.best, "honest"), a


def compare_finals(space: str, bf16_dir: Path, fp32_dir: Path) -> str:
    bf16, _ = final_errors(bf16_dir, space)
    fp32, _ = final_errors(fp32_dir, space)
    diff, low, high, p = welch(bf16, fp32)
    verdict = "PASS" if abs(diff) <= TOLERANCE else "FAIL"
    return (f"| {space} | {len(fp32)} / {len(bf16)} | {fp32.mean():.3f} ± {fp32.std(ddof=1):.3f} | "
            f"{bf16.mean():.3f} ± {bf16.std(ddof=1):.3f} | {diff:+.3f} [{low:+.2f}, {high:+.2f}] | {p:.2f} | {verdict} |")


def compare_screens(space: str, bf16_dir: Path, fp32_dir: Path, top: int = 5) -> str:
    ranked = [list(analyse(load_experiment(d, space)).configs["config"]) for d in (fp32_dir, bf16_dir)]
    fp32_top, bf16_top = (r[:top] for r in ranked)
    overlap = len(set(fp32_top) & set(bf16_top))
    rank = ranked[1].index(fp32_top[0]) + 1  # where bf16 puts fp32's best
    return (f"| {space} | {len(ranked[0])} | {overlap} of {top} | {'yes' if rank == 1 else f'no: rank {rank}'} | "
            f"{fp32_top[0]} | {bf16_top[0]} |")


def check_fp32(space: str, rerun_dir: Path, committed_dir: Path) -> str:
    def rows(d: Path) -> dict:
        return {(int(r["seed"]), int(r["epoch"])): r for r in results.read_rows(d / results.EPOCHS_CSV)}

    mine, theirs = rows(rerun_dir), rows(committed_dir)
    common = sorted(set(mine) & set(theirs))
    worst = 0.0
    for key in common:
        for m in results.METRICS:
            a, b = (float(x[m]) if x[m] else math.nan for x in (mine[key], theirs[key]))
            if not (math.isnan(a) and math.isnan(b)):
                worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
    seeds = sorted({s for s, _ in common})
    same = "bit for bit" if worst == 0 else ("yes (≤ 2e-6)" if worst <= 2e-6 else "NO")
    return f"| {space} | {seeds} | {len(common)} | {worst:.1e} | {same} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--reference", type=Path, default=Path("reference"))
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        print(f"error: {args.runs}: no such folder", file=sys.stderr)
        return 1
    finals, screens, checks = [], [], []
    for space_dir in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        space, ref = space_dir.name, args.reference / space_dir.name
        if (space_dir / "final_bf16" / results.EPOCHS_CSV).is_file():
            finals.append(compare_finals(space, space_dir / "final_bf16", ref / "final"))
        if (space_dir / "screen_bf16" / results.EPOCHS_CSV).is_file():
            screens.append(compare_screens(space, space_dir / "screen_bf16", ref / "screen"))
        if (space_dir / "fp32_check" / results.EPOCHS_CSV).is_file():
            checks.append(check_fp32(space, space_dir / "fp32_check", ref / "final"))
    print("Final stage, final-epoch test comparison error %:\n")
    print("| net | seeds fp32 / bf16 | fp32 | bf16 | bf16 − fp32 [95 % CI] | p (Welch) | within ±0.3 |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(finals))
    print("\nScreens, the report's ranking:\n")
    print("| net | configurations | top-5 overlap | same best (else fp32's best ranks under bf16) | fp32 best | bf16 best |"
          "\n|---|---|---|---|---|---|")
    print("\n".join(screens))
    print("\nfp32 today against the committed rows:\n")
    print("| net | seeds | epochs compared | largest relative difference | reproduced |\n|---|---|---|---|---|")
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
