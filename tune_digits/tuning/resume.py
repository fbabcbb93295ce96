"""Tune's saved state of an interrupted search: whether it reads whole, and restoring it.

Tune writes its state files in place, so a driver killed while writing them leaves one cut short; such a
session is set aside here and the one before it used, and when nothing whole is left the search starts its
trials again, each from its own checkpoint (checkpoints.py)."""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import SearchError


def usable_state(ray_path: str) -> bool:
    """Whether Tune's newest saved state in a local Ray folder reads whole. Tune writes its files in place
    (experiment_state-<session>.json, the searcher's and the callbacks' state of the same session), so a driver
    killed while writing them leaves one cut short: that session's files are set aside (….incomplete) and
    the session before is used. False when none is left (or none was written yet). Remote storage: True."""
    folder = Path(ray_path)
    if "://" in ray_path or not folder.is_dir():
        return "://" in ray_path
    for state in sorted(folder.glob("experiment_state-*.json"), reverse=True):
        session = state.stem[len("experiment_state-"):]
        files = [f for f in folder.glob(f"*-{session}.*") if f.suffix in (".json", ".pkl")]
        if all(_reads_whole(f) for f in files):
            return True
        for f in files:
            os.replace(f, f.with_name(f.name + ".incomplete"))
    return False


def _reads_whole(path: Path) -> bool:
    """JSON or a pickle (Tune's `basic-variant-state-*.json` is a pickle), read to its end."""
    import pickle

    data = path.read_bytes()
    for load in (json.loads, pickle.loads):
        try:
            load(data)
            return True
        except Exception:  # noqa: BLE001 - not this format, or cut short
            continue
    return False


def exists(ray_path: str) -> bool:
    """Whether a Ray folder is there (on remote storage: assumed)."""
    return "://" in ray_path or Path(ray_path).is_dir()


def restore(ray_path: str, trainable, exp_dir: Path):
    """Tune's experiment restored (errored trials too: a rerun retries them), or None when there is nothing
    whole to restore."""
    import pickle

    from ray import tune

    if not (tune.Tuner.can_restore(ray_path) and usable_state(ray_path)):
        return None
    try:
        with old_module_names():
            return tune.Tuner.restore(ray_path, trainable, resume_errored=True)
    except (EOFError, pickle.UnpicklingError):  # tuner.pkl cut short by a kill while it was written
        return None
    except (AttributeError, ImportError) as err:
        # Tune's pickle of the experiment names code that is gone: it was started by an earlier tune-digits.
        raise SearchError(f"{exp_dir}: cannot resume, Ray's saved state names code this version no longer has "
                          f"({err}); use --restart to archive it and start afresh, or --name to start another") from None


# This package's name before it was renamed (it clashed with the API function `tune_digits.search`).
OLD_PACKAGE = "tune_digits.search"


@contextmanager
def old_module_names():
    """Tune's pickle of an experiment started before the rename names this package's modules by their old
    names (the callbacks: tune_digits.search.writer.ResultWriter, ...): while it is read, those names are
    today's modules, so that such a search still resumes."""
    aliases = {OLD_PACKAGE + name[len(__package__):]: module for name, module in list(sys.modules.items())
               if name == __package__ or name.startswith(__package__ + ".")}
    added = [name for name in aliases if name not in sys.modules]
    sys.modules.update({name: aliases[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)
