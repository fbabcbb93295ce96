"""Result tables on a search's shared storage (`--storage`): s3://, gs://, file:// or a folder every node mounts.

Ray keeps an experiment's checkpoints there (under `<space>/<name>/ray/`); this module puts the tidy tables
beside them (`<space>/<name>/search.json`, `trials/`, `epochs.csv`: the layout of an output folder), so that
`tune-digits report --output URI` reads a cluster's results where they are, with no rsync from the head.
Files move through pyarrow's filesystems, resolved from the URI exactly as Ray resolves its storage_path.
No torch, no Ray: the report imports this.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .errors import UserError
from .results import EPOCHS_CSV, REPORT_DIR, SEARCH_JSON, TRIALS_DIR

TABLE_FILES = (SEARCH_JSON, EPOCHS_CSV)  # and every trials/<trial_id>.csv
# The schemes pyarrow's FileSystem.from_uri resolves, as Ray resolves a storage_path: any other fails only when
# the first trial checkpoints, after the search started.
SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
PROBE = ".tune-digits-probe"  # written and deleted by check_writable
# Errors of S3 that mean the credentials, not the place, and the variables credentials may come from (else a
# config file or the machine's role): a refused probe says which applies.
_CREDENTIAL_ERRORS = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "EXPIRED_TOKEN",
                      "INVALID_TOKEN")
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
_WHERE_CREDENTIALS = "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the machine's role)"


class StorageError(UserError):
    """Storage that cannot be reached or written; one line for the user."""


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def local_path(location: str | Path) -> Path | None:
    """The folder a location names on this machine (a path or a file:// URI), None for remote storage."""
    text = str(location)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return None if is_uri(text) else Path(text).expanduser()


def normalize(storage: str) -> str:
    """Ray wants an absolute storage_path: a relative folder is made absolute, URIs are kept as given."""
    if is_uri(storage):
        path, sep, query = storage.partition("?")
        return path.rstrip("/") + sep + query
    return str(Path(storage).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """`location/part/...`; a URI's query (`s3://bucket/path?endpoint_override=...`, e.g. MinIO) stays last."""
    path, sep, query = location.partition("?")
    return "/".join([path.rstrip("/"), *parts]) + sep + query


def check_scheme(location: str) -> None:
    """A storage location pyarrow (and so Ray) can resolve: a folder or a URI of a known scheme. No network."""
    if not is_uri(location):
        return
    scheme = location.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise StorageError(f"--storage {location}: unknown scheme '{scheme}://'; use one of "
                           f"{', '.join(s + '://' for s in SCHEMES)} or a folder")


def check_writable(location: str) -> None:
    """The storage answers and takes a write: its bucket exists, its endpoint is reachable and the credentials
    are accepted. A small object is written there and deleted, so that a search fails here, in one line, rather
    than at its first checkpoint, once its trials started."""
    fs, root = filesystem(location)
    probe = join(root, f"{PROBE}-{os.getpid()}")
    try:
        _check_bucket(fs, root)
        fs.create_dir(root, recursive=True)
        write_file(fs, probe, b"")
        fs.delete_file(probe)
    except OSError as err:
        message = " ".join(str(err).split())
        raise StorageError(f"cannot use storage {location}: {message}{_credentials_hint(location, message)}") \
            from None


def _credentials_hint(location: str, message: str) -> str:
    if not location.startswith("s3://"):
        return ""
    if any(code in message for code in _CREDENTIAL_ERRORS):
        return f"; check the credentials {_WHERE_CREDENTIALS}"
    if not any(os.environ.get(name) for name in _CREDENTIAL_VARIABLES):
        return f"; no AWS credentials are set in the environment {_WHERE_CREDENTIALS}"
    return ""


def _check_bucket(fs, root: str) -> None:
    """An object store creates no bucket on a write (pyarrow refuses to), so a missing one is said as such."""
    import pyarrow.fs

    if fs.type_name not in ("s3", "gcs", "abfs"):  # a folder: created as needed
        return
    bucket = root.split("/", 1)[0]
    if fs.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound:
        raise FileNotFoundError(f"bucket '{bucket}' does not exist")


def filesystem(uri: str):
    """(pyarrow filesystem, path in it) for a URI or an absolute folder, as Ray's storage resolves it."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri if is_uri(uri) else str(Path(uri).resolve()))
    except (pyarrow.ArrowInvalid, OSError) as err:
        raise StorageError(f"cannot use storage '{uri}': {' '.join(str(err).split())}") from None


class Mirror:
    """Copies one experiment's tables to `<storage>/<space>/<name>/`: only files changed since the last copy,
    and at most every `interval` seconds unless forced (a search reports far more often than storage needs)."""

    def __init__(self, experiment_dir: Path, destination: str, interval: float = 30.0):
        self.source = experiment_dir
        self.fs, self.root = filesystem(destination)
        self.destination = destination
        self.interval = interval
        self.copied: dict[Path, tuple[int, int]] = {}  # file → (mtime_ns, size) when last copied
        # The trials' files here (fetched from the storage, or written since): those to drop there once gone here.
        self.trials = {f.name for f in (experiment_dir / TRIALS_DIR).glob("*.csv")}
        self.last = float("-inf")

    def push(self, force: bool = False) -> int:
        """Copy what changed; returns how many files were copied."""
        if not force and time.monotonic() - self.last < self.interval:
            return 0
        self.last = time.monotonic()
        trials = sorted((self.source / TRIALS_DIR).glob("*.csv"))
        # The tables that sum the trials up go last, so a final epochs.csv is newer than every trial's file
        # there too (the report reads the newer: report/load.py).
        files = trials + [self.source / name for name in TABLE_FILES]
        changed = [f for f in files if f.is_file() and self.copied.get(f) != _stamp(f)]
        try:
            self.fs.create_dir(join(self.root, TRIALS_DIR), recursive=True)
            self._drop_removed({f.name for f in trials})
            for f in changed:
                stamp = _stamp(f)
                write_file(self.fs, join(self.root, *f.relative_to(self.source).parts), f.read_bytes())
                self.copied[f] = stamp
        except OSError as err:
            message = f"cannot write the results to {self.destination}: {' '.join(str(err).split())}"
            if force:
                raise StorageError(message) from None
            # A hiccup of the storage in the middle of a search: the next copy takes what this one could not
            # (the final, forced copy does raise), instead of every trial of a long cluster search stopping.
            print(f"warning: {message}; retrying at the next copy", file=sys.stderr)
            return 0
        return len(changed)

    def _drop_removed(self, now: set[str]) -> None:
        """Trial files this search has removed here since (rows taken over by a trial that replaced theirs, an
        earlier run's strays) go from the storage too, or a report read there would count them. Only those: a
        file on the storage that was never here is another run's to keep."""
        for name in sorted(self.trials - now):
            try:
                self.fs.delete_file(join(self.root, TRIALS_DIR, name))
            except FileNotFoundError:  # never copied there
                pass
            self.copied.pop(self.source / TRIALS_DIR / name, None)
        self.trials = now


def write_file(fs, path: str, data: bytes) -> None:
    """Object stores replace an object whole; on a shared folder, write aside and rename, so that a reader
    (a report during the search) never sees half a file."""
    import pyarrow.fs

    local = isinstance(fs, pyarrow.fs.LocalFileSystem)
    target = f"{path}.{os.getpid()}.tmp" if local else path
    with fs.open_output_stream(target) as stream:
        stream.write(data)
    if local:
        fs.move(target, path)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def fetch_tables(uri: str, into: Path) -> int:
    """Copy every experiment's tables under storage `uri` (`<space>/<name>/...`; checkpoints stay where they
    are) into the folder `into`, in the same layout; returns how many experiments were found."""
    fs, root = filesystem(uri)
    try:
        return sum(_fetch(fs, exp.path, into / space.base_name / exp.base_name)
                   for space in _subfolders(fs, root) if space.base_name != REPORT_DIR
                   for exp in _subfolders(fs, space.path))
    except OSError as err:
        raise StorageError(f"cannot read results from {uri}: {' '.join(str(err).split())}") from None


def fetch_experiment(uri: str, into: Path) -> bool:
    """Copy one experiment's tables from storage (`<storage>/<space>/<name>`) into `into`; False when the
    storage has none (a search that has not started there)."""
    import pyarrow.fs

    fs, root = filesystem(uri)
    try:
        return fs.get_file_info(root).type == pyarrow.fs.FileType.Directory and _fetch(fs, root, into)
    except OSError as err:
        raise StorageError(f"cannot read results from {uri}: {' '.join(str(err).split())}") from None


def _fetch(fs, path: str, into: Path) -> bool:
    import pyarrow.fs

    listing = {i.base_name: i for i in fs.get_file_info(pyarrow.fs.FileSelector(path))}
    trials = [i for i in fs.get_file_info(pyarrow.fs.FileSelector(join(path, TRIALS_DIR)))
              if i.base_name.endswith(".csv")] if TRIALS_DIR in listing else []
    if SEARCH_JSON not in listing and not trials:
        return False  # not an experiment (e.g. an older search's Ray folder)
    for info in [listing[n] for n in TABLE_FILES if n in listing] + trials:
        target = into / info.path[len(path):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as stream:
            target.write_bytes(stream.read())
        if info.mtime_ns is not None:  # the report compares epochs.csv's time with the trials' (report/load.py)
            os.utime(target, ns=(info.mtime_ns, info.mtime_ns))
    return True


def _subfolders(fs, path: str) -> list:
    import pyarrow.fs

    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=False))
    return sorted((i for i in infos if i.type == pyarrow.fs.FileType.Directory), key=lambda i: i.base_name)


def upload_folder(folder: Path, uri: str) -> None:
    """Copy the files of a local folder (the report's) to `uri`."""
    fs, root = filesystem(uri)
    try:
        fs.create_dir(root, recursive=True)
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            write_file(fs, join(root, f.name), f.read_bytes())
    except OSError as err:
        raise StorageError(f"cannot write the report to {uri}: {' '.join(str(err).split())}") from None


def archive_remote(space_uri: str, name: str) -> str | None:
    """Move `<space_uri>/<name>` (an experiment on storage) to `<space_uri>/.archive/<name>-<time>`, as a
    restarted search does with its local folder; returns the note that says where (None: nothing there)."""
    from datetime import datetime

    import pyarrow.fs

    fs, root = filesystem(space_uri)
    source, target = join(root, name), join(root, ".archive", f"{name}-{datetime.now():%Y%m%d-%H%M%S-%f}")
    try:
        if fs.get_file_info(source).type == pyarrow.fs.FileType.NotFound:
            return None
        fs.create_dir(join(root, ".archive"), recursive=True)
        fs.move(source, target)
    except OSError as err:
        raise StorageError(f"cannot archive {join(space_uri, name)}: {' '.join(str(err).split())}; move or "
                           f"delete it yourself, or use another --name") from None
    return f"earlier results on the storage moved to {join(space_uri, '.archive', target.rsplit('/', 1)[1])}"
