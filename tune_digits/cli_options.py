"""The options several commands share (resources, cluster, storage: one definition for `search` and
`reproduce`), `search`'s help panels and the exit statuses."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import rich_click as click

from .tuning.launch import Launch
from .tuning.plan import Resources, RunOptions

# Exit statuses of `search` and `reproduce` (README, "Exit statuses"): finished, bad input, failed trials,
# interrupted (128 + SIGINT, as shells report a Ctrl-C).
EXIT_FINISHED, EXIT_BAD_INPUT, EXIT_FAILED_TRIALS, EXIT_INTERRUPTED = 0, 1, 2, 130


# `search`'s options in help panels, by what they decide. An option left out lands in a last "Options" panel
# (tests/test_cli_core.py wants every option placed).
SEARCH_PANELS = {
    "Grid and size": ["--stage", "--set", "--reps", "--pairs", "--epochs", "--spaces-dir", "--data-dir"],
    "Algorithm": ["--search", "--num-samples", "--scheduler", "--race", "--metric"],
    "Resources": ["--cpus-per-trial", "--gpus-per-trial", "--require-gpu", "--max-concurrent", "--num-cpus"],
    "Cluster": ["--address", "--connect-timeout", "--storage"],
    "Run management": ["--name", "--output", "--dry-run", "--restart", "--max-failures", "--checkpoint-every",
                       "--log", "--verbose", "--help"],
    "Performance": ["--seeds-per-trial", "--vectorize"],
}


def option_panels(panels: dict[str, list[str]]):
    """Decorator: a command's options shown in these help panels, in this order."""
    def decorate(command):
        for name, options in reversed(panels.items()):  # decorators apply bottom-up
            command = click.option_panel(name, options=options)(command)
        return command
    return decorate


@dataclass(frozen=True)
class ClusterArgs:
    """The resource and cluster options of `search` and `reproduce`, parsed once (`cluster_options`)."""

    resources: Resources
    address: str | None
    storage: str | None
    require_gpu: bool
    num_cpus: int | None
    max_failures: int
    checkpoint_every: int | None  # None: the command's own default
    connect_timeout: float  # seconds --address has to answer

    def run_options(self, checkpoint_every: int = 1, **more) -> RunOptions:
        """RunOptions with these options; `checkpoint_every` is the command's default, used unless given."""
        every = checkpoint_every if self.checkpoint_every is None else self.checkpoint_every
        return RunOptions(checkpoint_every=every, max_failures=self.max_failures, storage=self.storage, **more)

    def launch(self, **more) -> Launch:
        """The Launch of these options; `more`: the command's own fields (verbose, data_dir, command, ...)."""
        return Launch(address=self.address, num_cpus=self.num_cpus, connect_timeout=self.connect_timeout,
                      require_gpu=self.require_gpu, **more)


# One definition of the options `search` and `reproduce` share: what each trial gets, where Ray runs and keeps
# its checkpoints, retries (SEARCH_PANELS places them in search's help).
CLUSTER_OPTIONS = (
    click.option("--address", help="Join a running Ray cluster ('auto' on a `ray up` head node or in a Ray job). "
                                   "Default: start a local Ray."),
    click.option("--connect-timeout", type=float, default=30.0, show_default=True, metavar="SECONDS",
                 envvar="TUNE_DIGITS_CONNECT_TIMEOUT",
                 help="How long the cluster at --address has to answer before the command fails, naming it "
                      "(also TUNE_DIGITS_CONNECT_TIMEOUT)."),
    click.option("--storage", metavar="URI",
                 help="Where every node writes checkpoints, and where the results tables are copied: s3://bucket/path, "
                      "gs://..., or a folder every node mounts at the same path. Required on a cluster of 2+ nodes; "
                      "`tune-digits report --output URI` reads it."),
    click.option("--cpus-per-trial", type=float, default=1.0, show_default=True,
                 help="CPUs per trial (also torch's thread count). 1 packs the most trials on a CPU machine."),
    click.option("--gpus-per-trial", type=float, default=0.0, show_default=True,
                 help="GPU share per trial: 0.25 packs 4 trials on each GPU. Falls back to CPU when there is no GPU."),
    click.option("--require-gpu", is_flag=True,
                 help="Fail (locally) or wait for GPU workers (cluster) instead of falling back to CPU."),
    click.option("--max-concurrent", type=int, help="Cap on trials running at once (default: as many as resources allow)."),
    click.option("--max-failures", type=int, default=2, show_default=True,
                 help="Retries of a failing trial; a trial lost with its node (a Ray node that died) is retried "
                      "without using one, when at least one is allowed."),
    click.option("--checkpoint-every", type=int,
                 help="Epochs between trial checkpoints: an interrupted trial resumes from its last one. Fewer "
                      "checkpoints cut Ray's overhead on big grids. Default: 1 for search, 5 for reproduce."),
    click.option("--num-cpus", type=int, help="CPUs of the local Ray (default: all)."),
)
_CLUSTER_KEYS = ("address", "storage", "require_gpu", "num_cpus", "max_failures", "checkpoint_every", "connect_timeout")


def cluster_options(command):
    """Add the shared resource and cluster options to `command`; it receives them as one `cluster` argument."""
    @functools.wraps(command)
    def with_cluster(*args, **kwargs):
        resources = Resources(kwargs.pop("cpus_per_trial"), kwargs.pop("gpus_per_trial"), kwargs.pop("max_concurrent"))
        cluster = ClusterArgs(resources, **{key: kwargs.pop(key) for key in _CLUSTER_KEYS})
        return command(*args, cluster=cluster, **kwargs)

    for option in reversed(CLUSTER_OPTIONS):
        with_cluster = option(with_cluster)
    return with_cluster
