"""`--search race`: Tune's Searcher interface over the race's decision (report/racing.py).

Each trial is one (configuration, seed): the grid's lists crossed give the configurations, the plan's seeds
the seeds, handed out as the race says (breadth first by seed, the next seed only to survivors). With `group`
> 1 a configuration's first-round seeds, which run whatever the results, go out together in one trial of
up to `group` seeds (`seeds` in its config; one row per seed, as any grouped trial). The race is
a function of the results alone, so a resumed search rebuilds it from the finished trials' rows instead of
trusting a saved copy. The trials Tune's restored state holds are marked as handed out (Tune continues them);
any other unfinished run is handed out again (it continues from its own checkpoint): a trial search.json
saw start after Tune last saved its state, or every one where that state was lost.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ray.tune.search import Searcher

from ..report.racing import Race, configurations
from ..results import SEARCH_JSON, TRIALS_DIR, read_meta, read_rows, trial_config
from .live import session_for



class RaceSearcher(Searcher):
    """Hands out (configuration, seed) trials as the race decides; pickles as its experiment's folder."""

    def __init__(self, key: str, grid: dict, seeds: list[int], metric: str, epochs: int, first: int = 2,
                 alpha: float = 0.05, budget: int | None = None, group: int = 1):
        super().__init__(metric=metric, mode="min")
        self.key, self.grid, self.seeds, self.epochs, self.group = key, grid, list(seeds), epochs, group
        self.settings = {"first": first, "alpha": alpha, "budget": budget}
        self.configs = configurations(grid)
        self._index = {self._key(c): i for i, c in enumerate(self.configs)}
        self.race = Race(len(self.configs), len(self.seeds), first=first, alpha=alpha, budget=budget)
        self.trials: dict[str, tuple[int, list[int]]] = {}  # Tune's trial id → (configuration, seed indices)
        self._learn(Path(key))

    def __getstate__(self):
        return {"key": self.key, "grid": self.grid, "seeds": self.seeds, "metric": self.metric,
                "epochs": self.epochs, "group": self.group, **self.settings}

    def __setstate__(self, state):
        self.__init__(**state)

    def suggest(self, trial_id: str):
        run = self.race.next_runs(self.group)
        if run is None:
            return Searcher.FINISHED if self.race.finished else None
        self.trials[trial_id] = run
        self._publish()
        config, seeds = run
        if len(seeds) > 1:
            return {**self.configs[config], "seeds": [self.seeds[s] for s in seeds]}
        return {**self.configs[config], "seed": self.seeds[seeds[0]]}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        run = self.trials.get(trial_id)
        if run is None:
            return
        config, seeds = run
        for seed in seeds:
            value = self._reported(result, seed, len(seeds) > 1) if result and not error else None
            self.race.record(config, seed, math.nan if value is None else float(value))
        self._publish()

    def _reported(self, result: dict, seed: int, grouped: bool):
        """A seed's metric in a trial's last result: the result's own, or its `replicas` entry (nested as
        reported, or flattened the way Tune's loggers do)."""
        if not grouped:
            return result.get(self.metric)
        name = str(self.seeds[seed])
        replica = (result.get("replicas") or {}).get(name) or {}
        return replica.get(self.metric, result.get(f"replicas/{name}/{self.metric}"))

    def save(self, checkpoint_path: str):
        # Saved with Tune's experiment state: the trials it knows, so that a restored search does not hand out
        # again a run Tune will continue (even one still pending, never started). Results come from the rows.
        Path(checkpoint_path).write_text(json.dumps({"trials": self.trials}))

    def restore(self, checkpoint_path: str):
        trials = json.loads(Path(checkpoint_path).read_text()).get("trials", {})
        for trial_id, (config, seeds) in trials.items():
            seeds = seeds if isinstance(seeds, list) else [seeds]  # saved before first rounds were grouped
            self.trials.setdefault(trial_id, (config, seeds))
            self.race.mark_handed(config, max(seeds))

    def _key(self, config: dict) -> tuple:
        return tuple(str(config.get(axis)) for axis in self.grid)

    def _learn(self, exp_dir: Path) -> None:
        """What already ran: finished trials' last rows are results. An unfinished trial is not handed out
        by this: only Tune's saved state, which `restore` reads, says whether Tune will continue it."""
        meta = read_meta(exp_dir / SEARCH_JSON, missing_ok=True) or {}
        for trial_id, entry in meta.get("trials", {}).items():
            config = trial_config(entry) or {}
            index, seeds = self._index.get(self._key(config)), config.get("seeds", [config.get("seed")])
            if index is None or any(seed not in self.seeds for seed in seeds):
                continue
            finals = self._finals(exp_dir, trial_id) if entry.get("status") == "TERMINATED" else {}
            if all(seed in finals for seed in seeds):
                for seed in seeds:
                    self.race.record(index, self.seeds.index(seed), finals[seed])

    def _finals(self, exp_dir: Path, trial_id: str) -> dict[int, float]:
        """seed → the metric at the last epoch, from a trial's rows (one per seed and epoch)."""
        path = exp_dir / TRIALS_DIR / f"{trial_id}.csv"
        if not path.exists():
            return {}
        return {int(r["seed"]): float(r[self.metric]) for r in read_rows(path, default_trial=trial_id)
                if int(r["epoch"]) == self.epochs and r.get(self.metric, "").strip()}

    def _publish(self) -> None:
        """search.json's `race`: its settings, rounds and eliminations (written with the next trial's rows)."""
        try:
            meta = session_for(self.key).meta
        except RuntimeError:  # no live search (a unit test driving the searcher)
            return
        meta["race"] = self.race.summary(self.configs, self.settings)
