"""The running search, as the driver-side callbacks find it.

Tune pickles the callbacks with the experiment (ray/<name>/tuner.pkl) and `Tuner.restore` brings back those
copies, with no public way to hand it new ones. So our callbacks carry nothing but the experiment's folder:
`run_search` registers the live `Session` (the plan and search.json's contents) under that folder before
`fit`, and every callback, fresh or restored from the pickle, looks it up when Tune calls it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ray import tune

if TYPE_CHECKING:  # annotations only: racer.py imports this module, and plan → algorithms → racer is a circle
    from ..storage import Mirror
    from .plan import SearchPlan

_SESSIONS: dict[str, "Session"] = {}


@dataclass
class Session:
    plan: SearchPlan  # as it runs (resources after a GPU fallback)
    meta: dict  # search.json's contents, kept current by the ResultWriter
    show_progress: bool = True
    rows: dict[str, int] = field(default_factory=dict)  # trial → rows in its file, kept by the ResultWriter
    mirror: Mirror | None = None  # copies the tables to --storage (None without one)

    @property
    def key(self) -> str:
        return str(self.plan.experiment_dir)


@contextmanager
def running(session: Session):
    """Make `session` what the callbacks see while the block runs (Tune's fit)."""
    _SESSIONS[session.key] = session
    try:
        yield session.key
    finally:
        _SESSIONS.pop(session.key, None)


def session_for(key: str) -> Session:
    session = _SESSIONS.get(key)
    if session is None and len(_SESSIONS) == 1:
        # The experiment folder moved since it started (the pickled key is the old path): the one live search.
        session = next(iter(_SESSIONS.values()))
    if session is None:
        raise RuntimeError(f"no running search for {key}: tune_digits' callbacks work only inside run_search")
    return session


class SessionCallback(tune.Callback):
    """A Tune callback that pickles as its experiment's folder and finds the live session through it."""

    def __init__(self, key: str):
        self.key = key

    def __getstate__(self):
        return {"key": self.key}

    def __setstate__(self, state):
        self.__init__(state["key"])

    @property
    def session(self) -> Session:
        return session_for(self.key)
