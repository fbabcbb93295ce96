"""`--search race`: Tune's Searcher interface over the race's decision (report/racing.py).

Each trial is one (configuration, seed): the grid's lists crossed give the configurations, the plan's seeds
the seeds, handed out as the race says (breadth first by seed, the next seed only to survivors). The race is
a function of the results alone, so a resumed search rebuilds it from the finished trials' rows instead of
trusting a saved copy: Tune's restored trials are marked as handed out (they continue), and where Tune's
state was lost the unfinished runs are handed out again (they continue from their own checkpoints).
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from ray.tune.search import Searcher

from ..report.racing import Race
from ..results import SEARCH_JSON, TRIALS_DIR, read_meta, read_rows, trial_config
from .live import session_for

def configurations(grid: dict) -> list[dict]:
    """The grid's lists crossed, the first axis varying slowest."""
    axes = list(grid)
    return [dict(zip(axes, values)) for values in itertools.product(*(grid[a] for a in axes))]


class RaceSearcher(Searcher):
    """Hands out (configuration, seed) trials as the race decides; pickles as its experiment's folder."""

    def __init__(self, key: str, grid: dict, seeds: list[int], metric: str, epochs: int, first: int = 2,
                 alpha: float = 0.05, budget: int | None = None):
        super().__init__(metric=metric, mode="min")
        self.key, self.grid, self.seeds, self.epochs = key, grid, list(seeds), epochs
        self.settings = {"first": first, "alpha": alpha, "budget": budget}
        self.configs = configurations(grid)
        self._index = {self._key(c): i for i, c in enumerate(self.configs)}
        self.race = Race(len(self.configs), len(self.seeds), first=first, alpha=alpha, budget=budget)
        self.trials: dict[str, tuple[int, int]] = {}  # Tune's trial id → (configuration, seed index)
        self._learn(Path(key), restored=False)

    def __getstate__(self):
        return {"key": self.key, "grid": self.grid, "seeds": self.seeds, "metric": self.metric,
                "epochs": self.epochs, **self.settings}

    def __setstate__(self, state):
        self.__init__(**state)

    def suggest(self, trial_id: str):
        run = self.race.next_run()
        if run is None:
            return Searcher.FINISHED if self.race.finished else None
        self.trials[trial_id] = run
        self._publish()
        config, seed = run
        return {**self.configs[config], "seed": self.seeds[seed]}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        run = self.trials.get(trial_id)
        if run is None:
            return
        value = result.get(self.metric) if result and not error else None
        self.race.record(*run, math.nan if value is None else float(value))
        self._publish()

    def save(self, checkpoint_path: str):
        # Saved with Tune's experiment state: the trials it knows, so that a restored search does not hand out
        # again a run Tune will continue (even one still pending, never started). Results come from the rows.
        Path(checkpoint_path).write_text(json.dumps({"trials": self.trials}))

    def restore(self, checkpoint_path: str):
        trials = json.loads(Path(checkpoint_path).read_text()).get("trials", {})
        for trial_id, (config, seed) in trials.items():
            self.trials.setdefault(trial_id, (config, seed))
            self.race.mark_handed(config, seed)
        self._learn(Path(self.key), restored=True)

    def _key(self, config: dict) -> tuple:
        return tuple(str(config.get(axis)) for axis in self.grid)

    def _learn(self, exp_dir: Path, restored: bool) -> None:
        """What already ran: finished trials' last rows are results; with Tune's state restored, its other
        trials are handed out already (Tune continues them)."""
        meta = read_meta(exp_dir / SEARCH_JSON, missing_ok=True) or {}
        for trial_id, entry in meta.get("trials", {}).items():
            config = trial_config(entry) or {}
            index, seed = self._index.get(self._key(config)), config.get("seed")
            if index is None or seed not in self.seeds:
                continue
            run = (index, self.seeds.index(seed))
            value = self._final(exp_dir, trial_id) if entry.get("status") == "TERMINATED" else None
            if value is not None:
                self.race.record(*run, value)
            elif restored:
                self.race.mark_handed(*run)
                self.trials[trial_id] = run

    def _final(self, exp_dir: Path, trial_id: str) -> float | None:
        path = exp_dir / TRIALS_DIR / f"{trial_id}.csv"
        if not path.exists():
            return None
        last = [r for r in read_rows(path, default_trial=trial_id) if int(r["epoch"]) == self.epochs]
        return float(last[-1][self.metric]) if last and last[-1].get(self.metric, "").strip() else None

    def _publish(self) -> None:
        """search.json's `race`: its settings, rounds and eliminations (written with the next trial's rows)."""
        try:
            meta = session_for(self.key).meta
        except RuntimeError:  # no live search (a unit test driving the searcher)
            return
        race, alive = self.race, self.race.alive
        winner = race.winner() if race.finished else None
        meta["race"] = {
            **self.settings, "max_seeds": race.max_seeds, "configurations": race.configs, "round": race.level,
            "runs_handed_out": race.runs, "worst_case_runs": race.configs * race.max_seeds,
            "alive": len(alive), "finished": winner is not None,
            "survivor_seeds_to_come": sum(race.max_seeds - race.handed.get(c, 0) for c in alive),
            "winner": winner, "winner_config": None if winner is None else self.configs[winner],
            "eliminations": [{**e.as_dict(), "values": self.configs[e.config]} for e in race.eliminations]}
