"""MNIST → pairs of 14×14 digits (docs/protocol.md §2). No device, no Ray.

The package ships every MNIST digit already pooled to 14×14 (`assets/mnist14.npz`, built by
`scripts/build_mnist14.py`), so nothing is downloaded. `--data-dir` / `TUNE_DIGITS_DATA_DIR` points at a
folder with the four official IDX files instead; both sources give bit-identical pooled images.
"""
from __future__ import annotations

import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .errors import UserError

ASSET = Path(__file__).parent / "assets" / "mnist14.npz"
DATA_DIR_ENV = "TUNE_DIGITS_DATA_DIR"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
# Mean and (n - 1) std of every pixel of the 60,000 28×28 train images of the official files: the
# authors' standardisation (`standardise="split"`), computed by `load_idx_folder` from IDX files.
MNIST_TRAIN_MEAN = 33.318421449829934
MNIST_TRAIN_STD = 78.56749081851163
STANDARDISE = ("pairs", "split")


class DataError(UserError):
    """A data folder or file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Mnist14:
    """All digits of both splits, 2×2-summed (0..1020, uint16) so the pooled mean is exact."""

    train_sums: np.ndarray  # (60000, 14, 14) uint16
    train_labels: np.ndarray  # (60000,) uint8
    test_sums: np.ndarray  # (10000, 14, 14) uint16
    test_labels: np.ndarray  # (10000,) uint8
    train_mean: float = MNIST_TRAIN_MEAN  # of the 28×28 train split, before pooling
    train_std: float = MNIST_TRAIN_STD


class PairSet(NamedTuple):
    """The six tensors of docs/protocol.md §2 (plus an optional validation split carved from the train pairs)."""

    train_input: torch.Tensor  # (N, 2, 14, 14) float32, standardised
    train_target: torch.Tensor  # (N,) int64, 1 if first digit <= second
    train_classes: torch.Tensor  # (N, 2) int64
    test_input: torch.Tensor
    test_target: torch.Tensor
    test_classes: torch.Tensor


def pool_sums(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 → (n, 14, 14) uint16 sums of each 2×2 block; /4 is the protocol's average pooling (docs/protocol.md §2)."""
    n = images.shape[0]
    return images.reshape(n, 14, 2, 14, 2).astype(np.uint16).sum(axis=(2, 4), dtype=np.uint16)


def _read_idx(path: Path, kind: str) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    magic = 2051 if kind == "images" else 2049
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an IDX {kind} file (bad magic number)")
    count = int.from_bytes(raw[4:8], "big")
    offset, shape = (16, (count, 28, 28)) if kind == "images" else (8, (count,))
    if len(raw) != offset + int(np.prod(shape)):
        raise DataError(f"{path} is truncated or corrupt: expected {count} {kind}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "MNIST" / "raw" / stem,
                      folder / "MNIST" / "raw" / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder} has no {stem}[.gz] (expected the four official MNIST IDX files)")


def load_idx_folder(folder: str | os.PathLike) -> Mnist14:
    """Read the four official IDX files (gzip or plain) from `folder` and pool them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    arrays = {}
    for key, stem in IDX_FILES.items():
        arrays[key] = _read_idx(_find_idx(folder, stem), key.split("_")[1])
    for split, size in SPLIT_SIZES.items():
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataError(f"{folder}: {split} images and labels differ in count")
        if len(arrays[f"{split}_images"]) != size:
            raise DataError(f"{folder}: the {split} split has {len(arrays[f'{split}_images'])} images, not {size}")
    train = arrays["train_images"]
    return Mnist14(pool_sums(train), arrays["train_labels"].copy(),
                   pool_sums(arrays["test_images"]), arrays["test_labels"].copy(),
                   float(train.mean(dtype=np.float64)), float(train.std(dtype=np.float64, ddof=1)))


def load_asset(path: Path = ASSET) -> Mnist14:
    try:
        with np.load(path) as z:
            data = Mnist14(z["train_sums"], z["train_labels"], z["test_sums"], z["test_labels"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"embedded data {path} is missing or corrupt ({err}); reinstall tune-digits") from None
    if data.train_sums.shape != (60_000, 14, 14) or data.test_sums.shape != (10_000, 14, 14):
        raise DataError(f"embedded data {path} has unexpected shapes; reinstall tune-digits")
    return data


_CACHE: dict[str, Mnist14] = {}


def load_mnist14(data_dir: str | os.PathLike | None = None) -> Mnist14:
    """The embedded digits, or the IDX files of `data_dir` (default: $TUNE_DIGITS_DATA_DIR). Cached per process."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    key = str(Path(data_dir).resolve()) if data_dir else ""
    if key not in _CACHE:
        _CACHE[key] = load_idx_folder(data_dir) if data_dir else load_asset()
    return _CACHE[key]


def _draw_pairs(sums: np.ndarray, labels: np.ndarray, n: int, generator: torch.Generator):
    """docs/protocol.md §2: one permutation of the split; the first 2n indices, two by two, are the pairs."""
    if 2 * n > len(labels):
        raise DataError(f"{n} pairs need {2 * n} digits but the split has {len(labels)}")
    index = torch.randperm(len(labels), generator=generator)[: 2 * n].numpy()
    images = torch.from_numpy(sums[index].astype(np.float32) / 4.0).view(n, 2, 14, 14)
    classes = torch.from_numpy(labels[index].astype(np.int64)).view(n, 2)
    return images, classes


def compare_target(classes: torch.Tensor) -> torch.Tensor:
    """(N, 2) classes → (N,) int64 target: 1 when the first digit is <= the second (ties count as 1)."""
    return (classes[:, 0] <= classes[:, 1]).long()


def generate_pair_sets(n: int, seed: int, data_dir: str | os.PathLike | None = None,
                       n_test: int | None = None, mnist: Mnist14 | None = None,
                       standardise: str = "pairs") -> PairSet:
    """`n` train pairs (train split) and `n_test` (default n) test pairs (test split), fixed by `seed`.

    Inputs are standardised with the mean and std of the drawn train images, as docs/protocol.md §2 asks
    (`standardise="pairs"`), or with those of the whole 28×28 train split before pooling, as the authors'
    code does (`"split"`; pooling is linear, so standardising after it with the same numbers is the same).
    `mnist` (already loaded digits, e.g. shipped once to Ray workers) takes precedence over `data_dir`.
    """
    if n < 1:
        raise DataError(f"the number of pairs must be positive, got {n}")
    if standardise not in STANDARDISE:
        raise DataError(f"standardise must be one of {list(STANDARDISE)}, got {standardise!r}")
    n_test = n if n_test is None else n_test
    mnist = mnist if mnist is not None else load_mnist14(data_dir)
    generator = torch.Generator().manual_seed(seed)
    train_input, train_classes = _draw_pairs(mnist.train_sums, mnist.train_labels, n, generator)
    test_input, test_classes = _draw_pairs(mnist.test_sums, mnist.test_labels, n_test, generator)
    mean, std = (train_input.mean(), train_input.std()) if standardise == "pairs" else \
        (mnist.train_mean, mnist.train_std)
    return PairSet(
        (train_input - mean) / std, compare_target(train_classes), train_classes,
        (test_input - mean) / std, compare_target(test_classes), test_classes,
    )
