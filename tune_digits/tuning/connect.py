"""Joining a running Ray cluster (`--address`): the address must answer within a time limit. ray.init itself
retries a silent address for minutes (a mistyped port was still waiting after 150 s), so the GCS's port is
tried first, with `--connect-timeout` seconds (TUNE_DIGITS_CONNECT_TIMEOUT) to accept a connection."""
from __future__ import annotations

import os
import socket

from ..errors import SearchError

TIMEOUT_ENV = "TUNE_DIGITS_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT = 30.0


def connect_timeout(seconds: float | None = None) -> float:
    """The limit: `seconds` when given, else $TUNE_DIGITS_CONNECT_TIMEOUT, else 30 s."""
    if seconds is None:
        text = os.environ.get(TIMEOUT_ENV, "")
        try:
            seconds = float(text) if text.strip() else DEFAULT_TIMEOUT
        except ValueError:
            raise SearchError(f"{TIMEOUT_ENV} must be a number of seconds, got '{text}'") from None
    if seconds <= 0:
        raise SearchError(f"--connect-timeout must be positive, got {seconds:g}")
    return seconds


def check_answers(address: str, seconds: float | None = None) -> None:
    """Fail in one line, within the limit, when nothing accepts a connection at the cluster's address
    ('auto' is resolved as ray.init resolves it; `local` starts a Ray, so there is nothing to join)."""
    if not address or address == "local":
        return
    limit = connect_timeout(seconds)
    target = _host_port(address)
    if target is None:
        return
    host, port = target
    try:
        socket.create_connection((host, port), timeout=limit).close()
    except socket.timeout:
        raise SearchError(f"no Ray cluster answered at {_named(address, host, port)} within {limit:g} s "
                          f"(--connect-timeout); check --address") from None
    except OSError as err:
        raise SearchError(f"cannot reach a Ray cluster at {_named(address, host, port)}: "
                          f"{err.strerror or err}; check --address") from None


def _host_port(address: str) -> tuple[str, int] | None:
    """The GCS's (or, for ray://, the Ray client server's) host and port; None: nothing to try."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    if address == "auto":  # RAY_ADDRESS, else the cluster `ray start` last started here
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as err:
            raise SearchError(f"cannot reach a Ray cluster at '{address}': {err}") from None
        if target is None:  # no cluster to be found: ray.init says so at once
            return None
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise SearchError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), 'auto' or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def _named(address: str, host: str, port: int) -> str:
    return address if address != "auto" else f"{host}:{port} (--address auto)"
