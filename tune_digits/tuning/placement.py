"""Where a search's state lives when it runs on a cluster (--storage): the preflight that refuses a multi-node
search without shared storage, Ray's experiment folder (`<storage>/<space>/<name>/ray`, the layout of a local
experiment), and the copy of the tidy tables beside it (the `Mirror` of tune_digits/storage.py), which a
search started elsewhere resumes from and a restart archives."""
from __future__ import annotations

from typing import NamedTuple

from ..provenance import relative_to
from ..results import SEARCH_JSON
from ..storage import Mirror, archive_remote, check_writable, fetch_experiment, join
from ..errors import SearchError
from .plan import SearchPlan


def stored(plan: SearchPlan) -> str:
    """The experiment's folder on the storage: `<storage>/<space>/<name>`."""
    return join(plan.options.storage, plan.space.name, plan.name)


class TrialLocation(NamedTuple):
    """Where Tune keeps an experiment, and the trials their own checkpoints."""

    storage_path: str  # Tune's storage_path
    name: str  # Tune's experiment name under it
    ray_path: str  # the two joined: Tune's experiment folder
    states: str = ""  # the folder of the trials' checkpoints in it (checkpoints.py), named when the run starts


def ray_location(plan: SearchPlan, previous: dict | None) -> TrialLocation:
    """Tune's storage_path, experiment name and the path of its folder: the experiment's own ray/ folder,
    under --storage as locally (`<storage>/<space>/<name>/ray`, beside the tables the Mirror copies there)."""
    if not plan.options.storage:
        storage_path, exp_name = str(plan.experiment_dir), "ray"
    elif previous and previous.get("ray_path") in _old_layout(plan):
        storage_path, exp_name = plan.options.storage, f"{plan.space.name}-{plan.name}"  # kept where it started
    else:
        storage_path, exp_name = stored(plan), "ray"
    return TrialLocation(storage_path, exp_name, join(storage_path, exp_name))


def check_storage(plan: SearchPlan, address: str | None) -> None:
    """Trials checkpoint from the node they run on, so on several nodes Tune needs storage every node can
    reach; without it a search fails at its first checkpoint, after its trials started. Refuse before."""
    import ray

    if plan.options.storage:
        return
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cluster = ray.cluster_resources()
    later = address and (cluster.get("CPU", 0) < plan.resources.cpus_per_trial
                         or cluster.get("GPU", 0) < plan.resources.gpus_per_trial)
    if nodes > 1 or later:
        where = f"this Ray cluster has {nodes} nodes" if nodes > 1 else "the trials will run on nodes still to join"
        raise SearchError(f"{where}: pass --storage with a place every node can write, e.g. "
                          f"--storage s3://BUCKET/tune-digits or a folder mounted at the same path on every node")


def probe_storage(plan: SearchPlan) -> None:
    """--storage answers and takes a write (storage.check_writable), checked before Ray and any trial start."""
    if plan.options.storage:
        check_writable(plan.options.storage)


def _old_layout(plan: SearchPlan) -> set[str]:
    """Where searches before the tables were copied to storage kept Ray's folder: `<storage>/<space>-<name>`
    (search.json records it as written, or relative to the experiment)."""
    path = join(plan.options.storage, f"{plan.space.name}-{plan.name}")
    return {path, relative_to(path, plan.experiment_dir)}


def mirror_for(plan: SearchPlan) -> Mirror | None:
    return Mirror(plan.experiment_dir, stored(plan)) if plan.options.storage else None


def fetch_stored(plan: SearchPlan) -> None:
    """No search.json here but one on the storage: the search started elsewhere (another Ray job's copy of the
    working dir, another machine); its tables are fetched so that it resumes instead of starting again."""
    if plan.options.storage and not (plan.experiment_dir / SEARCH_JSON).is_file():
        fetch_experiment(stored(plan), plan.experiment_dir)


def archive_stored(plan: SearchPlan) -> list[str]:
    """A restarted search's copy on the storage moved aside, like its local folder (the note that says where)."""
    if not plan.options.storage:
        return []
    note = archive_remote(join(plan.options.storage, plan.space.name), plan.name)
    return [note] if note else []
