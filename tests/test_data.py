"""Data protocol of docs/protocol.md §2: embedded 14×14 MNIST, IDX folders, and the pairs drawn from them."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_digits import data
from tune_digits.data import DataError, compare_target, generate_pair_sets, load_asset, load_idx_folder, pool_sums
from tune_digits.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

# docs/protocol.md §2: md5 of the uncompressed official files.
MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
       "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea"}


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist14()


@pytest.fixture(scope="module")
def many_pairs():
    # 5,000 pairs = 10,000 train digits: enough to pin P(target=1) to about ±0.7 % (1 sd).
    return generate_pair_sets(5000, seed=123, n_test=100)


def split_index(sums: np.ndarray) -> dict[bytes, int]:
    """Pooled image bytes → its index in the split (every MNIST digit is unique after pooling)."""
    return {img.tobytes(): i for i, img in enumerate(sums)}


def to_sums(images: torch.Tensor, mean: float, std: float) -> np.ndarray:
    """Undo the standardisation: (n, 14, 14) float → the uint16 2×2 sums they came from."""
    sums = np.rint((images.double().numpy() * std + mean) * 4)
    return sums.astype(np.uint16)


# ---------------------------------------------------------------- layout, targets and statistics

def test_shapes_and_dtypes():
    pairs = generate_pair_sets(40, seed=0, n_test=30)
    expected = [((40, 2, 14, 14), torch.float32), ((40,), torch.int64), ((40, 2), torch.int64),
                ((30, 2, 14, 14), torch.float32), ((30,), torch.int64), ((30, 2), torch.int64)]
    assert [(tuple(t.shape), t.dtype) for t in pairs] == expected
    for classes in (pairs.train_classes, pairs.test_classes):
        assert classes.min() >= 0 and classes.max() <= 9
    assert torch.isfinite(pairs.train_input).all() and torch.isfinite(pairs.test_input).all()


def test_target_is_less_or_equal_and_ties_count_as_one(many_pairs):
    c, y = many_pairs.train_classes, many_pairs.train_target
    assert torch.equal(y, (c[:, 0] <= c[:, 1]).long())
    ties = c[:, 0] == c[:, 1]
    assert ties.sum() > 0 and (y[ties] == 1).all()
    # Swapping a pair is NOT 1 - target when the digits are equal (docs/protocol.md §2).
    swapped = compare_target(c.flip(1))
    assert torch.equal(swapped[~ties], 1 - y[~ties])
    assert (swapped[ties] == 1).all()
    assert torch.equal(compare_target(torch.tensor([[3, 3], [2, 7], [7, 2]])), torch.tensor([1, 1, 0]))


def test_target_and_tie_rates_match_spec(many_pairs):
    c, y = many_pairs.train_classes, many_pairs.train_target
    assert y.float().mean().item() == pytest.approx(0.55, abs=0.025)
    assert (c[:, 0] == c[:, 1]).float().mean().item() == pytest.approx(0.10, abs=0.02)


def test_pairs_without_replacement_and_not_class_balanced(many_pairs):
    drawn = many_pairs.train_input.reshape(-1, 14 * 14)
    assert len(torch.unique(drawn, dim=0)) == len(drawn)  # no digit used twice (all MNIST digits differ)
    counts = torch.bincount(many_pairs.train_classes.reshape(-1), minlength=10)
    assert counts.min() > 0 and counts.max() != counts.min()


def _replay(n: int, n_test: int, seed: int, mnist) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """docs/protocol.md §2 written out independently: one permutation per split, the first 2N indices two by two."""
    g = torch.Generator().manual_seed(seed)
    train_idx = torch.randperm(60_000, generator=g)[: 2 * n]
    test_idx = torch.randperm(10_000, generator=g)[: 2 * n_test]
    train = torch.from_numpy(mnist.train_sums[train_idx.numpy()].astype(np.float64) / 4).view(n, 2, 14, 14)
    test = torch.from_numpy(mnist.test_sums[test_idx.numpy()].astype(np.float64) / 4).view(n_test, 2, 14, 14)
    return train, test, train_idx, test_idx


def test_pairs_follow_the_spec_protocol_exactly(mnist):
    pairs = generate_pair_sets(60, seed=7, n_test=50)
    train, test, train_idx, test_idx = _replay(60, 50, 7, mnist)
    mean, std = train.mean(), train.std()
    torch.testing.assert_close(pairs.train_input.double(), (train - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(pairs.test_input.double(), (test - mean) / std, atol=1e-5, rtol=0)
    assert torch.equal(pairs.train_classes, torch.from_numpy(mnist.train_labels[train_idx.numpy()]).long().view(60, 2))
    assert torch.equal(pairs.test_classes, torch.from_numpy(mnist.test_labels[test_idx.numpy()]).long().view(50, 2))


def test_standardised_with_train_statistics(mnist):
    pairs = generate_pair_sets(500, seed=3)
    assert pairs.train_input.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert pairs.train_input.std().item() == pytest.approx(1.0, abs=1e-5)
    # The test set uses the train set's mean/std, so its own statistics are close but not exact.
    train, test, _, _ = _replay(500, 500, 3, mnist)
    mean, std = train.mean(), train.std()
    torch.testing.assert_close(pairs.test_input.double(), (test - mean) / std, atol=1e-5, rtol=0)
    assert pairs.test_input.mean().item() != pytest.approx(0.0, abs=1e-6)


def test_split_standardisation_uses_the_whole_train_split(mnist, official):
    # The authors' code standardises the 28×28 train split before pooling; pooling is linear, so the pooled
    # pairs are (pooled - mean) / std with the full split's numbers, which the IDX files reproduce.
    assert (official.train_mean, official.train_std) == pytest.approx((data.MNIST_TRAIN_MEAN, data.MNIST_TRAIN_STD))
    pairs = generate_pair_sets(500, seed=3, standardise="split")
    train, test, _, _ = _replay(500, 500, 3, mnist)
    torch.testing.assert_close(pairs.train_input.double(), (train - data.MNIST_TRAIN_MEAN) / data.MNIST_TRAIN_STD,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(pairs.test_input.double(), (test - data.MNIST_TRAIN_MEAN) / data.MNIST_TRAIN_STD,
                               atol=1e-5, rtol=0)
    assert torch.equal(pairs.train_classes, generate_pair_sets(500, seed=3).train_classes)  # the same draw
    with pytest.raises(data.DataError, match="standardise"):
        generate_pair_sets(5, seed=0, standardise="digits")


def test_no_image_in_both_train_and_test(mnist):
    pairs = generate_pair_sets(1000, seed=11)
    train, test, _, _ = _replay(1000, 1000, 11, mnist)
    mean, std = float(train.mean()), float(train.std())
    train_sums = to_sums(pairs.train_input.reshape(-1, 14, 14), mean, std)
    test_sums = to_sums(pairs.test_input.reshape(-1, 14, 14), mean, std)
    in_train, in_test = split_index(mnist.train_sums), split_index(mnist.test_sums)
    # Each train image is a train-split digit with its label, each test image a test-split digit.
    train_found = [in_train.get(img.tobytes()) for img in train_sums]
    test_found = [in_test.get(img.tobytes()) for img in test_sums]
    assert None not in train_found and None not in test_found
    assert np.array_equal(mnist.train_labels[train_found], pairs.train_classes.reshape(-1).numpy())
    assert np.array_equal(mnist.test_labels[test_found], pairs.test_classes.reshape(-1).numpy())
    assert not {img.tobytes() for img in train_sums} & {img.tobytes() for img in test_sums}


def test_same_seed_same_pairs_and_different_seeds_differ():
    a, b, c = generate_pair_sets(30, seed=5), generate_pair_sets(30, seed=5), generate_pair_sets(30, seed=6)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a.train_input, c.train_input)
    assert not torch.equal(a.test_classes, c.test_classes)


def test_drawing_does_not_touch_the_global_rng():
    # Data drawing takes its own generator (STYLE habit 7): the global torch RNG is left as it was.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    generate_pair_sets(10, seed=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("n", [0, -3, 30_001])
def test_impossible_pair_counts(n):
    with pytest.raises(DataError) as err:
        generate_pair_sets(n, seed=0)
    assert "\n" not in str(err.value)


def test_pool_sums_is_2x2_block_sum():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    images = images.astype(np.uint8)
    pooled = pool_sums(images)
    assert pooled.shape == (2, 14, 14) and pooled.dtype == np.uint16
    ref = images.astype(np.int64).reshape(2, 14, 2, 14, 2).sum(axis=(2, 4))
    assert np.array_equal(pooled, ref)
    assert pool_sums(np.full((1, 28, 28), 255, np.uint8)).max() == 1020  # no uint16 overflow


# ---------------------------------------------------------------- the embedded asset vs the official files

@pytest.fixture(scope="module")
def official(mnist_raw):
    return load_idx_folder(mnist_raw)


def test_embedded_asset_equals_rebuild_from_idx(official, mnist_raw, tmp_path):
    embedded = load_asset()
    for field in ("train_sums", "train_labels", "test_sums", "test_labels"):
        a, b = getattr(embedded, field), getattr(official, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field
    # The build script kept in the repo reproduces the shipped arrays.
    spec = importlib.util.spec_from_file_location("build_mnist14", ROOT / "scripts" / "build_mnist14.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    out = tmp_path / "mnist14.npz"
    build.main(str(mnist_raw), out)
    rebuilt = load_asset(out)
    for field in ("train_sums", "train_labels", "test_sums", "test_labels"):
        assert np.array_equal(getattr(rebuilt, field), getattr(embedded, field)), field


def test_official_idx_md5_matches_spec(mnist_raw):
    for stem, digest in MD5.items():
        with gzip.open(mnist_raw / f"{stem}.gz", "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == digest, stem


@pytest.fixture(scope="module")
def plain_idx_folder(mnist_raw, tmp_path_factory):
    """The four IDX files decompressed, in the `MNIST/raw/` layout torchvision writes."""
    folder = tmp_path_factory.mktemp("plain")
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in data.IDX_FILES.values():
        with gzip.open(mnist_raw / f"{stem}.gz", "rb") as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder


def test_data_dir_gzip_and_plain_give_the_embedded_pairs(mnist_raw, plain_idx_folder, monkeypatch):
    embedded = generate_pair_sets(50, seed=9)
    from_gzip = generate_pair_sets(50, seed=9, data_dir=mnist_raw)
    from_plain = generate_pair_sets(50, seed=9, data_dir=plain_idx_folder)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(plain_idx_folder / "MNIST" / "raw"))
    from_env = generate_pair_sets(50, seed=9)
    for tensors in (from_gzip, from_plain, from_env):
        for x, y in zip(embedded, tensors):
            assert torch.equal(x, y)


# ---------------------------------------------------------------- broken data folders: one clear line

def idx_bytes(kind: str, count: int, body: bytes | None = None) -> bytes:
    magic, size = (2051, count * 28 * 28) if kind == "images" else (2049, count)
    header = magic.to_bytes(4, "big") + count.to_bytes(4, "big") + (b"\0\0\0\x1c" * 2 if kind == "images" else b"")
    return header + (body if body is not None else bytes(size))


def write_folder(folder, train_count=60_000, test_count=10_000, gz=False, skip=None, override=None):
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "train-images-idx3-ubyte": idx_bytes("images", train_count),
        "train-labels-idx1-ubyte": idx_bytes("labels", train_count),
        "t10k-images-idx3-ubyte": idx_bytes("images", test_count),
        "t10k-labels-idx1-ubyte": idx_bytes("labels", test_count),
        **(override or {}),
    }
    for stem, raw in contents.items():
        if stem == skip:
            continue
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (folder / stem).write_bytes(raw)
    return folder


def assert_one_line_data_error(folder, *fragments):
    with pytest.raises(DataError) as err:
        load_idx_folder(folder)
    message = str(err.value)
    assert message and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(err.value, UserError)  # the CLI turns it into one line and exit 1


def test_synthetic_folder_loads(tmp_path):
    # Sanity check of the helpers below: a well-formed (blank) folder loads in both encodings.
    for gz in (False, True):
        mnist = load_idx_folder(write_folder(tmp_path / str(gz), gz=gz))
        assert mnist.train_sums.shape == (60_000, 14, 14) and mnist.test_labels.shape == (10_000,)


def test_missing_folder(tmp_path):
    assert_one_line_data_error(tmp_path / "nowhere", "does not exist")


def test_missing_file(tmp_path):
    assert_one_line_data_error(write_folder(tmp_path, skip="t10k-labels-idx1-ubyte"), "t10k-labels-idx1-ubyte")


def test_truncated_file(tmp_path):
    short = idx_bytes("images", 60_000)[:-100]
    assert_one_line_data_error(write_folder(tmp_path, override={"train-images-idx3-ubyte": short}), "truncated")


def test_bad_magic_number(tmp_path):
    bad = b"\x00\x00\x99\x99" + idx_bytes("labels", 10_000)[4:]
    assert_one_line_data_error(write_folder(tmp_path, override={"t10k-labels-idx1-ubyte": bad}), "magic")


def test_wrong_split_size(tmp_path):
    assert_one_line_data_error(write_folder(tmp_path, test_count=9_999), "10000")


def test_labels_and_images_disagree(tmp_path):
    folder = write_folder(tmp_path, override={"train-labels-idx1-ubyte": idx_bytes("labels", 59_999)})
    assert_one_line_data_error(folder, "differ")


def test_corrupt_gzip(tmp_path):
    folder = write_folder(tmp_path, gz=True)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip data at all")
    assert_one_line_data_error(folder, "train-labels-idx1-ubyte")


def test_truncated_gzip(tmp_path):
    folder = write_folder(tmp_path, gz=True)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    assert_one_line_data_error(folder, "t10k-images-idx3-ubyte")


def test_corrupt_embedded_asset(tmp_path):
    broken = tmp_path / "mnist14.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError) as err:
        load_asset(broken)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError):
        load_asset(tmp_path / "absent.npz")
