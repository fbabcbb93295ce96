"""`tune-digits reproduce`: the paper's whole protocol (docs/protocol.md §5) for each of its networks, then the report.

screen (every combination, 350 pairs) → best combination per network → final (1,000 pairs × 20 seeds ×
25 epochs) → report. The screen is raced by default (`--search race`, chosen on a validation split: every
combination gets 2 seeds, the survivors of each round's test one more, up to 3); `screen="grid"` gives every
combination the paper's 3 seeds and ranks on the test set, as the paper did. `--quick` runs the same steps
scaled down to a few minutes on 2 CPU cores. Like the CLI, this module sits above `tuning` and `report` and
joins them; neither imports it.
"""
from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
import torch

from .report import best_configuration, run_report
from .tuning import (Algorithm, Launch, Resources, RunOptions, SearchOutcome, Sizes, auto_seeds_per_trial,
                     plan_search, previous_meta, ray_session, run_search, trial_slots)
from .tuning.algorithms import race_settings
from .spaces import Space, apply_overrides, load_space
from .storage import check_writable

# The quick profile: a 1-seed screen cannot tell good configurations apart (3 seeds on 350 pairs hardly can:
# reference/<net>/screen), so it screens only a corner of each grid in which every configuration was within
# QUICK_MARGIN points of the best in the committed 3-seed screen — whatever its one seed picks, the final trains
# a good network — and the final keeps the protocol's 25 epochs (AlexNet is still at 12 % after 10 of them), on
# 2 seeds instead of 20. tests/test_reproduce_quick.py checks both on the committed results.
QUICK_STAGES = {"screen": {"pairs": 300, "reps": 1, "epochs": 5}, "final": {"pairs": 1000, "reps": 2, "epochs": 25}}
# A raced quick screen: a race's first test needs 2 seeds per configuration.
QUICK_RACE_REPS = 2
SCREENS = ("race", "grid")  # race: the default (it spends seeds on the contenders); grid: the paper's uniform seeds
QUICK_MARGIN = 1.0  # test comparison error points, against the best of reference/<net>/screen
# A checkpoint every 5 epochs halved Ray's overhead on the protocol's short trials when each one made Tune
# save the whole experiment state (BENCHMARKS.md §2; trials now keep their own), and an interrupted trial
# loses at most 4 epochs.
CHECKPOINT_EVERY = 5
# Each holds the paper's choice (the space's `best:`, what a final without a screen trains).
QUICK_GRIDS = {
    "linear": {"dropout": [False], "nodes": [128, 264], "layers": [2]},
    "lenet": {"batch_norm": [True], "dropout": [False], "kernel_size": [5], "aux_loss": [True, False]},
    "resnet": {"batch_norm": [True], "dropout": [False], "blocks": [2], "channels": [16], "kernel_size": [5, 7]},
}
# `precision="auto"`: bf16 for the networks where BENCHMARKS.md §7 measured it 1.5-1.8× faster at the same
# accuracy (20-seed finals within ±0.3 points), fp32 for the Linear net (bf16 0.94× there) and for networks it
# never measured.
BF16_MEASURED_FASTER = ("lenet", "resnet", "alexnet")


def protocol_space(name: str, quick: bool = False, precision: str = "fp32") -> Space:
    """The search space the protocol runs for `name`: the quick profile's grid with `quick`, and bf16 forward
    passes with `precision="bf16"` (fp32 adds nothing, so experiments started before the option still resume)."""
    space = load_space(name)
    overrides = dict(QUICK_GRIDS.get(name, {})) if quick else {}
    if precision != "fp32":
        overrides["precision"] = precision
    return apply_overrides(space, overrides) if overrides else space


def network_precision(name: str, precision: str, output: Path, on_gpu: bool = False) -> str:
    """The precision `name`'s stages run at: `precision` itself unless it is `auto`; with `auto`, the one its
    screen already started with (an experiment resumes rather than being refused as another search), else
    bf16 where it was measured faster (`BF16_MEASURED_FASTER`) and the hardware does bf16 natively (a GPU, or
    this CPU: AVX-512 BF16 / AMX; elsewhere oneDNN emulates it, slower than fp32), else fp32."""
    if precision != "auto":
        return precision
    started = previous_meta(output / name / "screen")
    if started is not None:
        return started.get("fixed", {}).get("precision", "fp32")
    native = on_gpu or cpu_does_bf16()
    return "bf16" if name in BF16_MEASURED_FASTER and native else "fp32"


def screen_search(name: str, screen: str | None, output: Path) -> str:
    """How `name`'s screen searches: `screen` itself; with None, what its screen already started with (it
    resumes rather than being refused as another search), else a race."""
    if screen is not None:
        return screen
    started = previous_meta(output / name / "screen")
    return started.get("search", "grid") if started is not None else "race"


def stage_plan(space: Space, stage: str, search: str, quick: bool, output: Path, resources: Resources,
               options: RunOptions, slots: int):
    """One stage's plan, its seeds grouped into trials as far as every trial slot stays busy (Ray's fixed cost
    per trial then falls on several runs: BENCHMARKS.md §2); a race groups only each configuration's first
    round, the seeds it runs whatever the results."""
    raced = stage == "screen" and search == "race"
    sizes = dict(QUICK_STAGES[stage]) if quick else {}
    if raced and quick:
        sizes["reps"] = max(sizes["reps"], QUICK_RACE_REPS)
    best = best_configuration(output / space.name / "screen", space.name) if stage == "final" else None
    plan_stage = partial(plan_search, space, stage=stage, best=best, output=output, resources=resources,
                         sizes=Sizes(**sizes), algorithm=Algorithm(search="race") if raced else Algorithm())
    plan = plan_stage(options=replace(options, seeds_per_trial=1))
    per_trial = auto_seeds_per_trial(plan, slots)
    if raced:
        per_trial = min(per_trial, race_settings({})["first"], len(plan.seeds))
    return plan_stage(options=replace(options, seeds_per_trial=per_trial))


def cpu_does_bf16() -> bool:
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def reproduce(output: str | Path = "outputs", spaces=None, quick: bool = False,
              resources: Resources = Resources(), options: RunOptions = RunOptions(checkpoint_every=CHECKPOINT_EVERY),
              fmt: str = "table", precision: str = "auto", launch: Launch | None = None, screen: str | None = None,
              **given) -> list[SearchOutcome]:
    """Screen, final stage and report for each search space in `spaces` (default: the paper's networks,
    each the space of its own name), every trial at `precision` (`fp32`: the exact path of the committed
    reference results; `bf16`; `auto`: `network_precision`), each screen a race or a grid (`screen`, one of
    SCREENS; None: `screen_search`).
    `resources` and `options` are `search`'s (the seed grouping is chosen here, per stage; with
    `options.storage` the tables go there too). `launch` (with any of its fields `given` on top) says how
    each search runs; its `command`, what search.json records, is this call unless given."""
    from .models import paper_models

    spaces = paper_models() if spaces is None else spaces
    output = Path(output)
    launch = replace(launch or Launch(), **given)
    if not launch.command:
        launch = replace(launch, command=_call(output, spaces, quick, precision, screen))
    echo = launch.echo
    started = time.monotonic()
    outcomes = []
    output.mkdir(parents=True, exist_ok=True)
    if options.storage:
        check_writable(options.storage)  # before Ray starts, as each search checks it again
    with ray_session(launch.address, launch.verbose, launch.num_cpus, record=output / ".reproduce.ray",
                     connect_timeout=launch.connect_timeout):
        slots = trial_slots(resources)
        for name in spaces:
            on_gpu = resources.gpus_per_trial > 0
            space = protocol_space(name, quick, network_precision(name, precision, output, on_gpu))
            search = screen_search(space.name, screen, output)
            for stage in ("screen", "final"):
                plan = stage_plan(space, stage, search, quick, output, resources, options, slots)
                raced = plan.algorithm.search == "race"
                echo(f"== {space.name} {stage}{' (raced)' if raced else ''}: {'at most ' if raced else ''}"
                     f"{plan.num_runs} runs ({plan.combinations} configuration(s) × {len(plan.seeds)} seed(s), "
                     f"{plan.pairs} pairs, {plan.epochs} epochs, {plan.fixed.get('precision', 'fp32')}) in "
                     f"{'at most ' if raced else ''}{plan.num_trials} trials of up to "
                     f"{plan.options.seeds_per_trial} seed(s)")
                outcome = run_search(plan, launch)
                outcomes.append(outcome)
                if outcome.interrupted:
                    echo("interrupted: rerun the same command to resume where it stopped")
                    return outcomes
    echo(f"== all searches done in {(time.monotonic() - started) / 60:.1f} min; the report:")
    run_report(output, fmt=fmt)
    return outcomes


def _call(output: Path, spaces: list[str], quick: bool, precision: str, screen: str | None) -> str:
    """This call, as search.json's command when Python called it rather than the CLI."""
    return (f"tune_digits.reproduce.reproduce({str(output)!r}, spaces={spaces!r}, quick={quick}"
            + (f", precision={precision!r}" if precision != "auto" else "")
            + (f", screen={screen!r}" if screen is not None else "") + ")")
