"""Provenance: which code, command, packages and machine made a result set (search.json's `code`, `command`,
`versions`, `machine`). Standard library only, so the report can show it without torch or Ray.

The git commit and dirty flag are recorded when tune_digits is imported from a git checkout (an editable
install or PYTHONPATH); an installed wheel has no checkout, and its version says which code it is."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The packages whose versions change the numbers or the way a search runs.
PACKAGES = ("tune-digits", "torch", "ray", "numpy", "pandas", "scipy")


def command_line(argv: list[str] | None = None, program: str = "tune-digits") -> str:
    """The command as typed, quoted so a shell runs it again: `tune-digits search lenet --set 'k=[3, 5]'`."""
    argv = sys.argv if argv is None else argv
    return shlex.join([program, *argv[1:]])


def code_version() -> dict:
    """The package version and, from a git checkout, its commit and whether the tree had changes."""
    from importlib import metadata

    try:
        version = metadata.version("tune-digits")
    except metadata.PackageNotFoundError:
        version = "unknown"
    code: dict = {"version": version, "git_commit": None, "git_dirty": None}
    top = _git("rev-parse", "--show-toplevel")
    if top and Path(top).resolve() / "tune_digits" == PACKAGE_DIR:
        code["git_commit"] = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no")
        code["git_dirty"] = None if status is None else bool(status)
    return code


def _git(*args: str) -> str | None:
    """One git command in the package's folder; None when git or a checkout is missing."""
    try:
        done = subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


def cpu_model() -> str:
    """This machine's CPU model name (benchmarks print it beside their timings too)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def driver_machine() -> dict:
    """The machine the command ran on (the search adds its Ray cluster's nodes, CPUs and GPUs)."""
    return {"driver_cpu": cpu_model(), "driver_cpus": os.cpu_count(), "platform": platform.platform()}


def relative_to(path: str | Path, base: str | Path) -> str:
    """`path` relative to `base` (with `..` where needed), so search.json names no folder of the machine that
    wrote it; a URI (s3://…) is kept as it is."""
    text = str(path)
    if "://" in text:
        return text
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())
