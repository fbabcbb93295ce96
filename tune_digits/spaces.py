"""Search-space YAML → a validated `Space` (format: search_spaces/README.md). No Ray here.

Where spaces come from, first match wins: a path to a .yaml file; the user's folders (`--spaces-dir`, then
the TUNE_DIGITS_SPACES folders); the spaces shipped inside the package. The repository's top-level
`search_spaces/` is their source: the wheel ships it as `tune_digits/search_spaces/` (pyproject.toml's
package-dir), read with importlib.resources; a checkout (editable install, PYTHONPATH) reads it in place.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .errors import UserError
from .train import TRAIN_EVALS, ConfigError, TrainConfig, modern_names

SPACES_ENV = "TUNE_DIGITS_SPACES"  # a folder of the user's own spaces (os.pathsep-separated for several)
TOP_KEYS = {"network", "description", "fixed", "grid", "best", "stages", "search"}
# The `search:` block (as in W&B sweep files): how the grid is searched by default; command-line flags win.
SEARCH_KEYS = {"method": str, "metric": str, "samples": int, "scheduler": (str, dict), "race": dict}
STAGE_KEYS = {"pairs", "seeds", "epochs", "train_eval"}
STAGES = ("screen", "final")
DISTRIBUTIONS = {"choice", "uniform", "loguniform", "randint"}
# Keys owned by the search itself: the seed axis and the trial's thread count.
RESERVED = {"seed", "threads", "network"}


class SpaceError(UserError):
    """A search-space file that cannot be used; the message names the file and the key."""


@dataclass
class Stage:
    pairs: int
    seeds: int
    epochs: int | None = None
    train_eval: str | None = None  # None: the stage's default (tuning/plan.py: final-only for a screen)


@dataclass
class Space:
    name: str  # the file's stem: one name for the file, the CLI argument and outputs/<name>/
    path: Path
    network: str
    description: str = ""
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # key → list (grid axis) or {distribution: args}
    best: dict = field(default_factory=dict)
    stages: dict[str, Stage] = field(default_factory=dict)
    origin: str = "path"  # "shipped", "folder" (a user's spaces folder) or "path" (a file named on its own)
    # method, metric, samples, scheduler (a name) and settings (the scheduler's); names checked by the plan
    search: dict = field(default_factory=dict)

    @property
    def axes(self) -> list[str]:
        return list(self.grid)

    def grid_size(self) -> int:
        """Configurations per seed; a sampled (distribution) axis counts once per sample."""
        return math.prod(len(v) for v in self.grid.values() if isinstance(v, list))

    def combinations(self) -> list[dict]:
        lists = {k: v for k, v in self.grid.items() if isinstance(v, list)}
        return [dict(zip(lists, values)) for values in itertools.product(*lists.values())]

    def has_distributions(self) -> bool:
        return any(isinstance(v, dict) for v in self.grid.values())


def shipped_dir() -> Path:
    """The spaces shipped with tune-digits: package data in an installed wheel, else the checkout's folder."""
    packaged = resources.files("tune_digits") / "search_spaces"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "search_spaces"


SPACES_DIR = shipped_dir()


def space_folders(spaces_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """(origin, folder) in the order names are looked up: the user's folders first, the shipped one last."""
    user = [Path(spaces_dir)] if spaces_dir else []
    user += [Path(p) for p in os.environ.get(SPACES_ENV, "").split(os.pathsep) if p.strip()]
    for folder in user:
        if not folder.is_dir():
            raise SpaceError(f"{folder}: no such folder of search spaces (from --spaces-dir or {SPACES_ENV})")
    return [*(("folder", f) for f in user), ("shipped", SPACES_DIR)]


def list_spaces(spaces_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Every space found, (origin, file), sorted by name; a user's space hides a shipped one of its name."""
    found: dict[str, tuple[str, Path]] = {}
    for origin, folder in space_folders(spaces_dir):
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, (origin, path))
    return [found[name] for name in sorted(found)]


def resolve_space_path(name_or_path: str, spaces_dir: str | Path | None = None) -> tuple[str, Path]:
    """`resnet` → (origin, its file) from the user's folders or the shipped ones; a .yaml path is taken as is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise SpaceError(f"{candidate}: no such search-space file")
        return "path", candidate
    for origin, path in list_spaces(spaces_dir):
        if path.stem == name_or_path:
            return origin, path
    known = ", ".join(path.stem for _, path in list_spaces(spaces_dir)) or "none"
    raise SpaceError(f"unknown search space '{name_or_path}'; known: {known} (or give a path to a .yaml file)")


def load_space(name_or_path: str, spaces_dir: str | Path | None = None) -> Space:
    origin, path = resolve_space_path(name_or_path, spaces_dir)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpaceError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    except OSError as err:
        raise SpaceError(f"{path}: cannot read: {err.strerror}") from None
    space = parse_space(raw, path)
    space.origin = origin
    return space


def parse_space(raw, path: Path) -> Space:
    def fail(key: str, message: str):
        raise SpaceError(f"{path}: {key}: {message}")

    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping with keys {sorted(TOP_KEYS)}")
    raw = _modern_names(raw, path)
    for key in raw:
        if key not in TOP_KEYS:
            fail(key, f"unknown key; allowed: {', '.join(sorted(TOP_KEYS))}")
    if "network" not in raw:
        fail("network", "missing (the network: linear, lenet, resnet or alexnet)")
    for key in ("fixed", "grid", "best", "stages", "search"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            fail(key, "must be a mapping")
    if raw.get("description") is not None and not isinstance(raw["description"], str):
        fail("description", "must be text")
    space = Space(name=path.stem, path=path, network=raw["network"], description=str(raw.get("description") or ""),
                  fixed=dict(raw.get("fixed") or {}), grid=dict(raw.get("grid") or {}),
                  best=dict(raw.get("best") or {}))
    try:
        TrainConfig(network=space.network)
    except ConfigError as err:
        fail("network", str(err))

    for section in ("fixed", "grid", "best"):
        for key in getattr(space, section):
            if key in RESERVED:
                fail(f"{section}.{key}", "is set by the search (--reps gives the seeds, --cpus-per-trial the threads)")
    if "epochs" in space.grid:  # a race and the schedulers read every trial's result at the one final epoch
        fail("grid.epochs", "every trial of a search runs the same epochs; search each length under its own "
                            "--name with --epochs N")
    overlap = set(space.fixed) & set(space.grid)
    if overlap:
        fail(f"grid.{sorted(overlap)[0]}", "is also in fixed; a key is either fixed or searched")
    for key, values in space.grid.items():
        _check_axis(f"grid.{key}", values, fail)
    _check_values(space, fail)
    space.stages = _parse_stages(raw.get("stages") or {}, fail)
    space.search = _parse_search(raw.get("search") or {}, fail)
    return space


def _check_axis(key: str, values, fail) -> None:
    """A grid axis is a non-empty list of distinct values or a distribution."""
    if isinstance(values, list):
        if not values:
            fail(key, "empty list; give at least one value")
        if len({yaml.safe_dump(v) for v in values}) != len(values):
            fail(key, "has repeated values")
    elif isinstance(values, dict):
        _check_distribution(key, values, fail)
    else:
        fail(key, "must be a list of values or a distribution such as {loguniform: [1.0e-3, 1.0e-1]}")


def _check_values(space: Space, fail) -> None:
    """Every value must make a valid trial. Each fixed value and each grid value is checked on its own first,
    so the error names the key that is wrong; then together."""
    # A value valid only beside another fixed one (the authors' AlexNet needs dropout: false) is checked with
    # the rest of `fixed`: each key alone only when they fail together.
    if not _valid(space.fixed, space.network):
        for key, value in space.fixed.items():
            _check_config({key: value}, space.network, f"fixed.{key}", fail, value)
    _check_config(space.fixed, space.network, "fixed", fail)
    for key, values in space.grid.items():
        for value in _examples(values):
            _check_config({**space.fixed, key: value}, space.network, f"grid.{key}", fail, value)
    _check_config({**space.fixed, **{k: _examples(v)[0] for k, v in space.grid.items()}}, space.network, "grid", fail)
    for key in space.best:
        if key not in space.grid:
            fail(f"best.{key}", "is not a grid axis")
        if isinstance(space.grid[key], list) and space.best[key] not in space.grid[key]:
            fail(f"best.{key}", f"{space.best[key]!r} is not one of the grid's values {space.grid[key]}")


def _parse_search(block: dict, fail) -> dict:
    """The `search:` block → {method, metric, samples, scheduler, settings, race}; `scheduler` is a name or a
    mapping of `name` and the scheduler's settings (numbers); `race` the race's settings (numbers, or null for
    no budget), used when the search is a race."""
    for key, value in block.items():
        kinds = SEARCH_KEYS.get(key)
        if kinds is None:
            fail(f"search.{key}", f"unknown key; allowed: {', '.join(sorted(SEARCH_KEYS))}")
        if isinstance(value, bool) or not isinstance(value, kinds):
            what = {int: "a positive integer", dict: "a mapping, e.g. {first: 2, alpha: 0.05}"}.get(kinds, "a name")
            fail(f"search.{key}", f"must be {what}, got {value!r}")
    for key, value in block.get("race", {}).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            fail(f"search.race.{key}", f"must be a number, got {value!r}")
    if block.get("samples", 1) < 1:
        fail("search.samples", f"must be a positive integer, got {block['samples']!r}")
    parsed = {k: v for k, v in block.items() if k != "scheduler"}
    scheduler = block.get("scheduler")
    if isinstance(scheduler, dict):
        settings = dict(scheduler)
        name = settings.pop("name", None)
        if not isinstance(name, str):
            fail("search.scheduler.name", "missing: the scheduler's name, e.g. {name: asha, grace_period: 2}")
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                fail(f"search.scheduler.{key}", f"must be a number, got {value!r}")
        parsed.update(scheduler=name, settings=settings)
    elif scheduler is not None:
        parsed["scheduler"] = scheduler
    return parsed


def _parse_stages(stages: dict, fail) -> dict[str, Stage]:
    """The `stages:` section: screen/final sizes (positive integers) and optionally `train_eval`."""
    parsed = {}
    for stage, spec in stages.items():
        if stage not in STAGES:
            fail(f"stages.{stage}", f"unknown stage; allowed: {', '.join(STAGES)}")
        if not isinstance(spec, dict):
            fail(f"stages.{stage}", "must be a mapping with pairs, seeds (and optionally epochs, train_eval)")
        for key, value in spec.items():
            if key not in STAGE_KEYS:
                fail(f"stages.{stage}.{key}", f"unknown key; allowed: {', '.join(sorted(STAGE_KEYS))}")
            if key == "train_eval":
                if value not in TRAIN_EVALS:
                    fail(f"stages.{stage}.{key}", f"must be one of {', '.join(TRAIN_EVALS)}, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"stages.{stage}.{key}", f"must be a positive integer, got {value!r}")
        if "pairs" not in spec or "seeds" not in spec:
            fail(f"stages.{stage}", "needs pairs and seeds")
        parsed[stage] = Stage(**spec)
    return parsed


def _check_distribution(key: str, spec: dict, fail) -> None:
    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        fail(key, f"a distribution is one of {', '.join(sorted(DISTRIBUTIONS))} with its arguments")
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            fail(key, "choice takes a non-empty list")
        return
    numeric = isinstance(args, list) and len(args) == 2 and all(
        isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if not numeric or not args[0] < args[1]:
        fail(key, f"{kind} takes [low, high] with low < high (write floats as 1.0e-3, not 1e-3)")
    if kind == "loguniform" and args[0] <= 0:
        fail(key, "loguniform needs low > 0")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        fail(key, "randint takes integer bounds")


def _examples(values) -> list:
    """The values to check of a grid axis: all of a list or a choice, the bounds of a range (as Ray draws
    them: floats for uniform and loguniform, so an integer field given a float range fails here)."""
    if isinstance(values, list):
        return values
    kind, args = next(iter(values.items()))
    if kind in ("uniform", "loguniform"):
        return [float(a) for a in args]
    return list(args)


def _valid(flat: dict, network: str) -> bool:
    try:
        TrainConfig.from_flat({**flat, "network": network})
    except UserError:
        return False
    return True


def _check_config(flat: dict, network: str, key: str, fail, value=None) -> None:
    try:
        TrainConfig.from_flat({**flat, "network": network})
    except UserError as err:  # ConfigError, and the models' own ModelOptionError
        fail(key, str(err) + _float_hint(value))


def _float_hint(value) -> str:
    """PyYAML 1.1 reads `1e-3` (no dot) as the string '1e-3': say so where that is the likely cause."""
    if not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return f" (YAML reads {value} as text: write floats with a dot and a signed exponent, e.g. 1.0e-3)"


def _modern_names(raw: dict, path: Path) -> dict:
    """A space written before the renames (`arch:`, `aux_weight`, `aux_loss_weight`) reads as a new one."""
    try:
        raw = modern_names(raw, f"{path.name}: ")
        for section in ("fixed", "grid", "best"):
            if isinstance(raw.get(section), dict):
                raw[section] = modern_names(raw[section], f"{path.name}: {section}.")
    except ConfigError as err:
        raise SpaceError(str(err)) from None
    return raw


def _search_block(search: dict) -> dict:
    """A parsed `search:` block as the YAML writes it (the inverse of _parse_search)."""
    block = {k: v for k, v in search.items() if k != "settings"}
    if search.get("settings"):
        block["scheduler"] = {"name": search["scheduler"], **search["settings"]}
    return block


def apply_overrides(space: Space, overrides: dict) -> Space:
    """`--set key=value`: a list replaces a grid axis, a scalar fixes the key (removing it from the grid)."""
    raw = {"network": space.network, "description": space.description, "fixed": dict(space.fixed),
           "grid": dict(space.grid), "best": dict(space.best),
           "stages": {k: vars(v) for k, v in space.stages.items()}, "search": _search_block(space.search)}
    for key, value in overrides.items():
        if key in RESERVED:
            raise SpaceError(f"--set {key}: use --reps for seeds and --cpus-per-trial for threads")
        if isinstance(value, (list, dict)):
            raw["fixed"].pop(key, None)
            raw["grid"][key] = value
            if isinstance(value, list) and raw["best"].get(key) not in value:
                raw["best"].pop(key, None)  # a narrowed axis may leave out the file's best value
        else:
            raw["grid"].pop(key, None)
            raw["best"].pop(key, None)
            raw["fixed"][key] = value
            if key in ("pairs", "epochs"):  # the command's size wins over every stage's, as --epochs does
                for stage in raw["stages"].values():
                    stage[key] = value
    raw["stages"] = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in raw["stages"].items()}
    try:
        changed = parse_space(raw, space.path)
    except SpaceError as err:
        raise SpaceError(f"after --set: {err}") from None
    changed.origin = space.origin
    return changed
