"""Leftover processes of a local Ray whose driver died hard (SIGKILL, the out-of-memory killer, a lost SSH
session): found and stopped, and never those of any other Ray on the machine.

When its driver is killed, a local Ray's raylet and GCS follow it, but Ray's agents and the trials' workers
can outlive it for a minute or more, the workers still training and writing checkpoints. The driver marks
the Ray it starts: every process of that Ray inherits the environment variable TUNE_DIGITS_RAY_OWNER with a
token unique to that start (workers rename themselves `ray::…`, but keep the environment they started with),
and nothing else on the machine has it. Two guards use the mark:

- a watchdog process, started beside the driver in a session of its own, waits on a pipe that only the
  driver holds open; when the driver dies the pipe closes, and the watchdog stops every process with the
  mark and exits (`ray_session` starts it);
- a search records the token next to its experiment (`.NAME.ray`), and the next search of that experiment
  stops whatever is left with it before it starts (in case the watchdog was killed too).

Linux only (/proc); elsewhere nothing is found and nothing is stopped.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path


OWNER_ENV = "TUNE_DIGITS_RAY_OWNER"


def new_token() -> str:
    return f"{os.getpid()}-{time.time_ns()}-{secrets.token_hex(4)}"


def marked_processes(token: str, exclude: tuple[int, ...] = ()) -> list[int]:
    """This user's processes whose environment holds OWNER_ENV=token (never this one, nor `exclude`)."""
    if not token or not Path("/proc").is_dir():
        return []
    mark, found, skip = f"{OWNER_ENV}={token}".encode(), [], {os.getpid(), *exclude}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if entry.stat().st_uid == os.getuid() and _state(entry) != "Z" and \
                    mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _state(proc: Path) -> str:
    """The one-letter state of /proc/<pid>/stat (Z: a zombie, already dead)."""
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def stop_marked(token: str, exclude: tuple[int, ...] = (), grace: float = 3.0) -> list[int]:
    """Stop what is left of the Ray marked with `token`: SIGTERM, then SIGKILL what is still marked after
    `grace` seconds; returns the pids that were signalled."""
    signalled = [pid for pid in marked_processes(token, exclude) if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in signalled):
        time.sleep(0.05)
    # Looked up again: a process that ended meanwhile may have left its pid to one that is not Ray's.
    for pid in set(signalled) & set(marked_processes(token, exclude)):
        _signal(pid, signal.SIGKILL)
    return signalled


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    proc = Path(f"/proc/{pid}")
    return proc.exists() and _state(proc) != "Z"


class Watchdog:
    """The watchdog of a local Ray started by this process (see the module's docstring)."""

    def __init__(self, token: str):
        read, self._write = os.pipe()  # not inherited by Ray's processes: only this one holds `_write`
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(read), token, str(os.getpid())], pass_fds=(read,),
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(read)

    def close(self, timeout: float = 10.0) -> None:
        """After ray.shutdown: let the watchdog stop any straggler and wait for it."""
        os.close(self._write)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


def _watch(read_fd: int, token: str, driver_pid: int) -> None:
    """The watchdog's body: wait until the driver closes the pipe or dies, then stop the marked processes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the driver's to handle
    while os.read(read_fd, 1):
        pass
    for _ in range(3):  # again until none is left: Ray may have started a worker while the last sweep ran
        if not stop_marked(token, exclude=(driver_pid,)):
            break


if __name__ == "__main__":
    _watch(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
