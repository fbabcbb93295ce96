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
    return _cpuinfo().get("model name") or platform.processor() or "unknown CPU"


def driver_machine() -> dict:
    """The machine the command ran on (the search adds its Ray cluster's nodes, CPUs and GPUs)."""
    return {"driver_cpu": cpu_model(), "driver_cpus": os.cpu_count(), "platform": platform.platform(),
            "hardware": hardware()}


# The instruction sets that choose torch's, oneDNN's and MKL's float32 kernels (torch's CPU capability is
# DEFAULT, AVX2 or AVX512 from the first nine; oneDNN adds its VNNI, BF16 and AMX paths).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16")
# Settings that cap or pin those kernels; a run made with one set is another run.
ISA_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")


def hardware() -> dict:
    """What, besides the code, the packages and the thread count, decides a float32 run bit for bit: the CPU
    (vendor, family and model, as /proc/cpuinfo numbers them), its instruction sets among ISA_FLAGS and the
    settings that cap them. Kernels for other instruction sets or other cache sizes add in another order; the
    1e-7 differences that makes grow, epoch by epoch, into another run from the same distribution
    (tests/reference_check.py compares bit for bit only where this record matches)."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    out = {"vendor": info.get("vendor_id", platform.machine() or "unknown"),
           "family": _number(info.get("cpu family")), "model": _number(info.get("model")),
           "isa": [f for f in ISA_FLAGS if f in flags],
           "isa_settings": {k: os.environ[k] for k in ISA_SETTINGS if k in os.environ}}
    return out


def same_hardware(recorded: dict | None, here: dict) -> bool:
    """Whether `recorded` (a result set's machine.hardware) is this CPU, on every field both name; a set that
    records no hardware is not known to be."""
    if not recorded:
        return False
    return all(recorded[key] == here[key] for key in ("vendor", "family", "model", "isa", "isa_settings")
               if key in recorded and key in here)


def _cpuinfo() -> dict:
    """The first processor's `key: value` lines of /proc/cpuinfo ({} where there is none)."""
    out: dict = {}
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        if not line.strip():
            break  # the end of the first processor's block
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def relative_to(path: str | Path, base: str | Path) -> str:
    """`path` relative to `base` (with `..` where needed), so search.json names no folder of the machine that
    wrote it; a URI (s3://…) is kept as it is."""
    text = str(path)
    if "://" in text:
        return text
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())
