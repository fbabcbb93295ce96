"""A raced protocol beside a grid one: per network, what each screen spent (runs, trials, wall minutes,
trial-minutes of training and evaluation), which configuration each chose, where the race's choice ranks in the
grid screen (Table I's order), how many of the grid's top 5 the race kept, and the two finals' final-epoch test
comparison error with Welch's p. From the rows alone (no training).

    .venv/bin/python benchmarks/race_vs_grid.py --race reference/reproduce-race --grid reference/reproduce-auto \\
        > race_vs_grid.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy import stats

from screen_usage import usage
from tune_digits import paper
from tune_digits.report.analysis import analyse
from tune_digits.report.load import load_experiment, values_label

TOP = 5


def chosen(folder: Path, net: str) -> str:
    """The configuration a screen chose (the race's winner, else Table I's first), as Table I names it."""
    meta = json.loads((folder / "search.json").read_text())
    axes = meta["axes"]
    winner = (meta.get("race") or {}).get("winner_config")
    if winner:
        return values_label(winner, axes)
    return analyse(load_experiment(folder, net)).best


def compare(net: str, race_root: Path, grid_root: Path, slots: int) -> dict:
    raced, grid = race_root / net / "screen", grid_root / net / "screen"
    r, g = usage(raced, slots), usage(grid, slots)
    ranking = analyse(load_experiment(grid, net)).configs["config"].tolist()
    race_meta = json.loads((raced / "search.json").read_text())
    dropped = {values_label(e["values"], race_meta["axes"]) for e in race_meta["race"]["eliminations"]}
    pick = chosen(raced, net)
    finals = [analyse(load_experiment(root / net / "final", net)) for root in (race_root, grid_root)]
    errors = [f.values(f.best, "honest") for f in finals]
    p = stats.ttest_ind(*errors, equal_var=False).pvalue if min(map(len, errors)) > 1 else float("nan")
    return {"net": net, "race": r, "grid": g, "pick": pick, "grid_pick": ranking[0],
            "rank": ranking.index(pick) + 1 if pick in ranking else None, "configs": len(ranking),
            "top_kept": sum(c not in dropped for c in ranking[:TOP]), "finals": errors, "p": p}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--race", type=Path, required=True, help="a raced reproduce's output folder")
    parser.add_argument("--grid", type=Path, required=True, help="a grid reproduce's output folder")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--networks", default=",".join(paper.TABLE_II))
    args = parser.parse_args()
    rows = [compare(net, args.race, args.grid, args.slots) for net in args.networks.split(",")]
    print("| net | screen | runs | trials | wall min | trial-min | idle |")
    print("|---|---|---|---|---|---|---|")
    for c in rows:
        for kind in ("race", "grid"):
            u = c[kind]
            print(f"| {c['net']} | {kind} | {u['runs']} | {u['trials']} | {u['wall_min']:.1f} | "
                  f"{u['busy_trial_min']:.1f} | {100 * u['idle']:.1f} % |")
    print()
    print(f"| net | race's choice | its rank in the grid screen | grid's top {TOP} kept by the race | "
          "final, race (%) | final, grid (%) | p (Welch) |")
    print("|---|---|---|---|---|---|---|")
    for c in rows:
        race, grid = c["finals"]
        print(f"| {c['net']} | {c['pick']} | {c['rank']} of {c['configs']} | {min(c['top_kept'], c['configs'])} | "
              f"{race.mean():.3f} ± {race.std(ddof=1):.3f} | {grid.mean():.3f} ± {grid.std(ddof=1):.3f} | "
              f"{c['p']:.2f} |")


if __name__ == "__main__":
    main()
