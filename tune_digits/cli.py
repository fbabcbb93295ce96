"""`tune-digits`: thin click commands that parse, validate and delegate."""
from __future__ import annotations

import sys

import rich_click as click  # click, with help in panels

from .cli_options import (EXIT_BAD_INPUT, EXIT_FAILED_TRIALS, EXIT_INTERRUPTED, SEARCH_PANELS, cluster_options,
                          option_panels)
from .errors import UserError
from .tuning.algorithms import SCHEDULERS, SEARCHERS, help_text
from .tuning.selection import METRICS
from .tuning.tracking import TRACKERS

DATA_DIR_HELP = ("Folder with the four official MNIST IDX files (gzip or plain) to use instead of the "
                 "embedded copy.")


class FriendlyGroup(click.RichGroup):
    """Turn a user's mistake into one line on stderr and exit 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:  # a second Ctrl-C, while Tune was still stopping the trials of the first
            click.echo("\ninterrupted: rerun the same command to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tune-digits")
def main():
    """Reproduce and extend 'Classification, weight sharing, auxiliary losses' on MNIST digit pairs.

    Typical use: `tune-digits search lenet` runs a Ray Tune grid from search_spaces/lenet.yaml,
    then `tune-digits report` prints the paper's tables beside yours.
    """


def parse_option_values(pairs: tuple[str, ...]) -> dict:
    """`--set key=value` strings → dict of training values in today's names (see `key_values`)."""
    from .train import modern_names

    return modern_names(key_values(pairs), "--set ")


def key_values(pairs: tuple[str, ...]) -> dict:
    """`key=value` strings → dict, values read as YAML scalars (`true`, `5`, `1.0e-3`, `[3, 5]`)."""
    import yaml

    parsed = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"expected key=value, got '{item}'")
        try:
            parsed[key.strip()] = _number_if_numeric(yaml.safe_load(value))
        except yaml.YAMLError:
            raise UserError(f"cannot read the value of '{item}'") from None
    return parsed


def _number_if_numeric(value):
    """PyYAML reads `1e-3` as a string (YAML 1.1); on the command line that is surely a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_number_if_numeric(v) for v in value]
    return value


@main.command()
def models():
    """List the networks with their options (defaults) and parameter counts."""
    from .models import count_parameters, create_model, list_models, model_options

    from tabulate import tabulate

    rows = []
    for name in list_models():
        options = ", ".join(f"{k}={v}" for k, v in model_options(name).items())
        rows.append([name, f"{count_parameters(create_model(name)):,}", options])
    click.echo(tabulate(rows, headers=["model", "parameters (defaults)", "options (defaults)"]))


@main.command()
@click.argument("network")
@click.option("--pairs", type=int, default=1000, show_default=True, help="Train pairs (and test pairs).")
@click.option("--epochs", type=int, default=25, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes the pairs drawn and the initial weights.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A model option or training value, e.g. --set kernel_size=3 --set lr=0.01. Repeatable.")
@click.option("--gpu/--cpu", default=None, help="Force the device (default: CUDA when available).")
@click.option("--data-dir", type=click.Path(), envvar="TUNE_DIGITS_DATA_DIR", help=DATA_DIR_HELP)
def train(network, pairs, epochs, seed, settings, gpu, data_dir):
    """Train one configuration of NETWORK (`tune-digits models` lists them) and print a per-epoch table.

    The simplest way to try a setting: `tune-digits train lenet --set aux_loss=false --epochs 10`.
    """
    from .train import TrainConfig, choose_device, parameter_count, train_once

    # --set wins over the plain options, so `--set epochs=3` is never silently ignored.
    config = TrainConfig.from_flat({"pairs": pairs, "epochs": epochs, "seed": seed,
                                    **parse_option_values(settings), "network": network})
    device = choose_device(gpu)
    members = f" × {config.ensemble} members" if config.ensemble > 1 else ""
    click.echo(f"{network} on {device}: {pairs} pairs, {epochs} epochs, seed {seed}, "
               f"{config.optimizer} lr={config.lr} batch={config.batch_size}, {config.precision}, "
               f"{parameter_count(config):,} parameters{members}")
    click.echo(f"{'epoch':>5} {'loss':>8} {'train err%':>10} {'test digit%':>11} {'test cmp%':>9} {'time s':>7}")

    def show(m, _state):
        click.echo(f"{m['epoch']:>5} {m['train_loss']:>8.4f} {m['train_error']:>10.2f} "
                   f"{m['test_digit_error']:>11.2f} {m['test_error']:>9.2f} {m['time_s']:>7.1f}")

    train_once(config, device=device, on_epoch=show, data_dir=data_dir)


@main.command()
@click.argument("space", required=False)
@click.option("--output", "output_dir", type=click.Path(file_okay=False),
              help="The folder `tune-digits search` wrote to; tables and figures go to its report/ folder. "
                   "Default: outputs/, or the committed reference/ results while outputs/ has none.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "latex", "json", "html"]),
              default="table", show_default=True,
              help="How tables are printed and written (a .csv copy of each table is always written). html: "
                   "print only the path of report.html, the whole report as one self-contained page (every "
                   "format writes it).")
@click.option("--compare", metavar="OPTION",
              help="Compare the values of one grid option (e.g. dropout, strategy): mean ± std per value, "
                   "difference, 95% CI and Welch t-test p-value. Prints only this table.")
@click.option("--figure", metavar="SPACE[/NAME][:OPTION=VALUE,...]",
              help="What Figure 1 draws, e.g. `lenet`, `resnet/final` or `lenet/screen:aux_loss=false`; "
                   "`none` for no figure. Default: ResNet's best configuration (SPACE's when given).")
@click.option("--figure-format", "figure_formats", type=click.Choice(["png", "pdf", "svg"]), multiple=True,
              default=("png",), show_default=True, help="Figure file type. Repeatable.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="Configurations of each Table I printed (the files have them all).")
@click.option("--all", "show_all", is_flag=True,
              help="Print every table, configuration and column (wide); by default the findings, Table II and "
                   "the head of each Table I.")
def report(space, output_dir, fmt, compare, figure, figure_formats, top, show_all):
    """Print the paper's tables from search results, beside the paper's numbers; write them to OUTPUT/report/.

    Reads every experiment under OUTPUT/<space>/<name>/ (or only search space SPACE's, e.g. `tune-digits
    report lenet`): Table II shows each space's best in the paper's optimistic view (best epoch: the first of
    lowest test digit error) and an honest one (final epoch, or chosen on a validation split), Tables III/IV
    repeat the paper's dropout and auxiliary-loss ablations, a table sets the authors' setup beside the paper
    and ours, Table I ranks each screen's configurations, and the last table says
    which code and command made each result set; Figure 1 draws mean ± std curves. The printed tables fit 120
    columns (the top 10 configurations of each ranking); the files keep every row and column. Never needs Ray
    or a GPU. File names and columns: outputs/README.md, "Report files".
    """
    from .report import WIDTH, View, default_results_dir, run_report  # pandas only: no torch, no ray

    if output_dir is None:
        output_dir, note = default_results_dir()
        if note:
            click.echo(f"note: {note}", err=True)
    view = View() if show_all else View(top=top, width=WIDTH, short=True)
    run_report(output_dir, space=space, fmt=fmt, compare=compare, figure=figure, figure_formats=figure_formats,
               view=view)


SPACES_DIR_HELP = ("A folder of your own search spaces (NAME.yaml), looked up before the shipped ones; "
                   "TUNE_DIGITS_SPACES may list more folders.")


@main.command()
@click.option("--spaces-dir", type=click.Path(file_okay=False), help=SPACES_DIR_HELP)
def spaces(spaces_dir):
    """List the search spaces (yours, then those shipped with tune-digits) with their grid sizes, trial counts
    per stage and where each file is."""
    from tabulate import tabulate

    from .spaces import list_spaces, load_space

    rows = []
    for origin, path in list_spaces(spaces_dir):
        space = load_space(str(path))
        # The final stage runs only the best combination.
        stages = "; ".join(f"{name} {s.pairs}×{s.seeds} → {(space.grid_size() if name == 'screen' else 1) * s.seeds}"
                           for name, s in space.stages.items())
        where = "shipped" if origin == "shipped" else str(path)
        rows.append([space.name, space.network, " × ".join(space.axes) or "(none)", space.grid_size(), stages, where])
    click.echo(tabulate(rows, headers=["space", "network", "grid axes", "configs",
                                         "stages: pairs×seeds → runs", "from"]))
    shipped = next((p.parent for o, p in list_spaces(spaces_dir) if o == "shipped"), None)
    if shipped is not None:
        click.echo(f"\nshipped spaces: {shipped}")


@main.command()
@option_panels(SEARCH_PANELS)
@click.argument("space_name", metavar="SPACE")
@click.option("--stage", type=click.Choice(["screen", "final"]),
              help="screen: every combination at the stage's size (350 pairs, a few seeds). final: only the best "
                   "combination (the screen's winner, else the file's `best:`) at 1,000 pairs × 20 seeds. "
                   "Default: the whole grid with the file's fixed values.")
@click.option("--pairs", type=int, help="Train (and test) pairs per trial; overrides the stage's.")
@click.option("--reps", type=int, help="Repetitions: the seed axis of the grid (seeds 0..REPS-1).")
@click.option("--epochs", type=int, help="Epochs per trial.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Fix a value (--set lr=0.01) or replace a grid axis (--set 'kernel_size=[3, 5]'). Repeatable.")
@click.option("--name", help="Experiment name: results go to OUTPUT/SPACE/NAME (default: the stage, or 'default').")
@click.option("--output", default="outputs", show_default=True, type=click.Path(file_okay=False),
              help="Where results are written (and read by `tune-digits report`).")
@click.option("--seeds-per-trial", type=int, default=1, show_default=True,
              help="Train this many seeds of a configuration in one trial, epoch by epoch in turn (same metrics as "
                   "one seed per trial, less Ray overhead per run). Use on grids of short trials.")
@click.option("--vectorize", is_flag=True,
              help="Train the seeds of a trial as one batched model (torch.func.vmap); needs --seeds-per-trial 2+. "
                   "Dropout masks and float rounding differ from one seed per trial. See BENCHMARKS.md for when it pays.")
@click.option("--search", "searcher", type=click.Choice(list(SEARCHERS)),
              help="How configurations are chosen (default: the space's search: block, else grid). "
                   + help_text(SEARCHERS))
@click.option("--num-samples", type=int,
              help="Configurations drawn by the searchers other than grid (required by them, unless the space's "
                   "search: block gives samples); grid: runs of the whole grid, each distribution drawn anew.")
@click.option("--scheduler", type=click.Choice(list(SCHEDULERS)),
              help="When trials stop (default: the search: block's, else fifo). " + help_text(SCHEDULERS))
@click.option("--race", "race", multiple=True, metavar="KEY=VALUE",
              help="--search race's settings: first=N seeds per configuration before the first test (default 2), "
                   "alpha=P (0.05), budget=N runs at most (none); a survivor gets up to --reps seeds. Repeatable.")
@click.option("--metric", type=click.Choice(list(METRICS)),
              help="What searchers and schedulers that choose minimise. Default val_error on a validation "
                   "split (val_fraction 0.2 unless the space sets one); test_error chooses on the test set, with "
                   "a warning.")
@click.option("--log", "trackers", multiple=True, metavar="BACKEND",
              help=f"Track the search in {', '.join(TRACKERS)} (Ray Tune's callbacks; repeatable; needs "
                   f"'tune-digits[tracking]'). README: 'Watch a search'.")
@click.option("--restart", is_flag=True, help="Start afresh: earlier results of this name move to OUTPUT/SPACE/.archive/.")
@click.option("--dry-run", is_flag=True, help="Print the grid and the trial count; run nothing.")
@click.option("--data-dir", type=click.Path(), envvar="TUNE_DIGITS_DATA_DIR", help=DATA_DIR_HELP)
@click.option("--spaces-dir", type=click.Path(file_okay=False), help=SPACES_DIR_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Show Ray's own output.")
@cluster_options
def search(space_name, stage, pairs, reps, epochs, settings, name, output, seeds_per_trial, vectorize, searcher,
           num_samples, scheduler, race, metric, trackers, restart, dry_run, data_dir, spaces_dir, verbose, cluster):
    """Run the Ray Tune grid of search space SPACE: a name (`tune-digits spaces` lists them) or a YAML file.

    Examples: `tune-digits search lenet --stage screen`, then `tune-digits search lenet --stage final`
    (results in outputs/lenet/; `tune-digits report` shows them); `tune-digits search resnet --reps 2
    --epochs 5 --set 'blocks=[1, 2]' --dry-run`. Rerunning the same search resumes it, after a Ctrl-C or a
    crash: finished trials are kept, the others continue from their newest checkpoint, failed ones are retried.

    \b
    Exit status: 0 every trial finished; 1 bad input (one line on stderr);
    2 some trials failed after their retries; 130 interrupted (Ctrl-C, or a
    search that stopped before every trial ended): rerun the same command.
    """
    from .api import plan_space
    from .provenance import command_line
    from .tuning import Algorithm, Sizes, describe_plan, run_search

    plan = plan_space(space_name, stage, output=output, name=name, overrides=parse_option_values(settings),
                      spaces_dir=spaces_dir, sizes=Sizes(pairs=pairs, reps=reps, epochs=epochs),
                      algorithm=Algorithm(search=searcher, num_samples=num_samples, scheduler=scheduler, metric=metric,
                                          settings=key_values(race)),
                      resources=cluster.resources,
                      options=cluster.run_options(seeds_per_trial=seeds_per_trial, vectorize=vectorize, log=trackers))
    click.echo(describe_plan(plan))
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if dry_run:
        return
    outcome = run_search(plan, cluster.launch(restart=restart, verbose=verbose, data_dir=data_dir,
                                              command=command_line(), echo=lambda line: click.echo(line, err=True)))
    _summarise(outcome, plan.space.name, output)


def _summarise(outcome, space_name: str, output: str) -> None:
    import shlex
    from pathlib import Path

    from .report import ReportError, top_configurations

    for note in outcome.notes:
        click.echo(f"note: {note}")
    click.echo(f"\n{outcome.finished}/{outcome.trials} trials finished, {outcome.failed} failed"
               + (" — interrupted: rerun the same command to resume" if outcome.interrupted else ""))
    try:
        click.echo(top_configurations(outcome.experiment_dir, space_name))
    except ReportError as err:
        click.echo(f"(no summary: {err})")
    where = "" if Path(output) == Path("outputs") else f" --output {shlex.quote(str(output))}"
    click.echo(f"results: {outcome.experiment_dir}  →  tune-digits report {space_name}{where}")
    if outcome.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if outcome.failed:
        sys.exit(EXIT_FAILED_TRIALS)


@main.command()
@click.option("--quick", is_flag=True,
              help="Scaled down to a few minutes on 2 CPU cores: a screen (raced on 2 seeds, or 1 seed with "
                   "--screen grid) of the corner of each grid that the committed 3-seed screens found good, then "
                   "each network's best on 1,000 pairs × 2 seeds × 25 epochs.")
@click.option("--output", help="Where results go (default: outputs/, or outputs/quick/ with --quick).",
              type=click.Path(file_okay=False))
@click.option("--only", "only", multiple=True, metavar="NETWORK",
              help="Run only these of the paper's networks (repeatable; `tune-digits models` lists them first).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "latex", "json"]), default="table",
              show_default=True, help="Format of the final report.")
@click.option("--data-dir", type=click.Path(), envvar="TUNE_DIGITS_DATA_DIR", help=DATA_DIR_HELP)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="fp32: the exact path of the committed reference results. bf16: forward passes under bfloat16 "
                   "autocast, float32 weights (1.5-1.8× faster on the convolutional nets on CPUs with AVX-512 BF16, "
                   "20-seed finals within ±0.3 points: BENCHMARKS.md §7). auto: bf16 for LeNet, ResNet and AlexNet "
                   "where the CPU or a GPU does bf16 natively, else fp32; a network whose screen already started "
                   "keeps its precision.")
@click.option("--screen", type=click.Choice(["race", "grid"]), default=None,
              help="race (default): every combination gets 2 seeds, then each round's test (Friedman, Conover vs "
                   "the best) drops the significantly worse and the survivors get one seed more, up to 3; chosen "
                   "on a validation split. grid: every combination the paper's 3 seeds, ranked on the test set as "
                   "the paper did. A screen that already started keeps its kind.")
@click.option("-v", "--verbose", is_flag=True, help="Show Ray's own output.")
@cluster_options
def reproduce(quick, output, only, fmt, data_dir, precision, screen, verbose, cluster):
    """Run the paper's protocol for each of its networks: screen → best → final → report.

    Full size: every combination on 350 pairs, raced (2 seeds each, a third for those not significantly worse
    than the best; --screen grid: 3 seeds each), then each network's best on 1,000 pairs × 20 seeds × 25 epochs.
    Interrupted? Run the same command again: finished trials are kept.

    \b
    Exit status: 0 every trial finished; 1 bad input (one line on stderr);
    2 some trials failed after their retries; 130 interrupted (Ctrl-C, or a
    search that stopped before every trial ended): rerun the same command.
    """
    from .models import paper_models  # torch: imported here, not for --help, so --only is checked here too
    from .provenance import command_line
    from .reproduce import CHECKPOINT_EVERY, reproduce as run

    networks = paper_models()
    unknown = [n for n in only if n not in networks]
    if unknown:
        raise UserError(f"--only {unknown[0]}: not one of the paper's networks ({', '.join(networks)})")
    output = output or ("outputs/quick" if quick else "outputs")
    outcomes = run(output, spaces=list(only) or networks, quick=quick, resources=cluster.resources, screen=screen,
                   options=cluster.run_options(checkpoint_every=CHECKPOINT_EVERY), fmt=fmt, precision=precision,
                   launch=cluster.launch(data_dir=data_dir, verbose=verbose, command=command_line(),
                                         echo=lambda line: click.echo(line, err=True)))
    if outcomes and outcomes[-1].interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if any(o.failed for o in outcomes):
        sys.exit(EXIT_FAILED_TRIALS)
