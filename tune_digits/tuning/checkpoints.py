"""The trials' own checkpoints, in the experiment's Ray folder: `states-<start>/<run key>-<epoch>.pt`, one
run per file name (a configuration and its seed or seeds), written whole or not at all. `<start>` is when
the search first started (search.json's `started`), so that a search started afresh with --restart never
continues from the checkpoints of the one it replaced (on --storage they stay where they were).

Why not Tune's checkpoints: Tune deletes a trial's older checkpoint as soon as a newer one arrives, but saves
its experiment state (which names the checkpoint to restore) only now and then, so a driver killed in between
leaves a state that points at a deleted checkpoint, and that trial fails on every rerun. Here Tune holds no
checkpoint at all: a trial, first run, retried or resumed, looks up the newest readable file of its run and
continues from it (from its first epoch when there is none). The key is the run's config, not Tune's trial
id, so a trial that Tune recreated under a new id (its state was saved before the trial existed) finds the
files of the one it replaces. The files live on Tune's storage (a local folder, NFS or s3://), through its
pyarrow filesystem, so trials on any node of a cluster write and read them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os


def states_dir(started: str) -> str:
    """The folder of a search's checkpoints, from search.json's `started` (digits only: a portable name)."""
    return "states-" + "".join(c for c in started if c.isdigit())


def run_key(config: dict) -> str:
    """A trial config → the name of its run: the same for every trial that trains that configuration and seed(s)."""
    fixed = {k: v for k, v in config.items() if k != "threads"}  # the CPUs it got, not what it trains
    return hashlib.sha1(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunStore:
    """The checkpoint files of one run: `save` writes epoch E's file and then drops the older ones, `load`
    reads the newest one that reads whole (and drops the unreadable ones it passes)."""

    def __init__(self, fs, folder: str, key: str):
        self.fs, self.folder, self.key = fs, folder.rstrip("/"), key

    @classmethod
    def for_trial(cls, config: dict, states: str) -> "RunStore":
        """The store of the running trial's run, in folder `states` of the experiment's folder on Tune's storage."""
        from ray import tune

        storage = tune.get_context().get_storage()
        folder = f"{storage.experiment_fs_path}/{states}"
        return cls(storage.storage_filesystem, folder, run_key(config))

    def _path(self, epoch: int) -> str:
        return f"{self.folder}/{self.key}-{epoch:04d}.pt"

    def epochs(self) -> list[int]:
        """Epochs of this run's complete files, newest first (a half-written one has a temporary name)."""
        from pyarrow import fs as pafs

        found = []
        for info in self.fs.get_file_info(pafs.FileSelector(self.folder, allow_not_found=True)):
            stem, _, suffix = info.base_name.rpartition(".")
            key, _, epoch = stem.rpartition("-")
            if suffix == "pt" and key == self.key and epoch.isdigit():
                found.append(int(epoch))
        return sorted(found, reverse=True)

    def save(self, epoch: int, payload: dict) -> None:
        """Write epoch `epoch`'s file under a temporary name, rename it into place (a rename is atomic on a
        local or NFS folder; an S3 object appears whole), then remove the run's other files."""
        import torch

        buffer = io.BytesIO()
        torch.save(payload, buffer)
        self.fs.create_dir(self.folder, recursive=True)
        final = self._path(epoch)
        temporary = f"{final}.{os.getpid()}.tmp"
        with self.fs.open_output_stream(temporary) as out:
            out.write(buffer.getvalue())
        self.fs.move(temporary, final)
        # Only the older files: a newer one is another live trial's of the same run (a searcher's repeat),
        # ahead of this one, and is its newest checkpoint. An unreadable newer one `load` removes itself.
        for other in self.epochs():
            if other < epoch:
                self._delete(self._path(other))

    def _delete(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:  # another live trial of the same run took it first
            pass

    def load(self) -> dict | None:
        """The newest file that reads whole (an unreadable one, e.g. cut short by a power loss, is skipped
        for the one before it), else None."""
        import torch

        for epoch in self.epochs():
            try:
                with self.fs.open_input_stream(self._path(epoch)) as f:
                    return torch.load(io.BytesIO(f.readall()), weights_only=False)
            except FileNotFoundError:  # another live trial of the same run moved past it meanwhile
                continue
            except Exception:  # noqa: BLE001 - unreadable: fall back to the one before it
                # Files appear whole (renamed into place), so this one was cut short, e.g. by a power loss:
                # never worth reading again.
                self._delete(self._path(epoch))
        return None


def sweep_temporaries(fs, folder: str) -> int:
    """Remove the half-written files (`*.tmp`) that trials killed in mid-save left in a search's checkpoint
    folder; the driver calls it before any trial of the search starts, so none of them is still being written.
    Returns how many it removed."""
    from pyarrow import fs as pafs

    found = [info.path for info in fs.get_file_info(pafs.FileSelector(folder.rstrip("/"), allow_not_found=True))
             if info.base_name.endswith(".tmp")]
    for path in found:
        fs.delete_file(path)
    return len(found)
