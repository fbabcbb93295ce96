"""Build tune_digits/assets/mnist14.npz, the embedded 14×14 MNIST, from the four official IDX files.

    python scripts/build_mnist14.py ../shared/data/MNIST/raw

The file stores 2×2 block sums (uint16, 0..1020) so that dividing by 4 gives SPEC §2's average
pooling exactly; tests/test_data.py rebuilds it and checks it is identical whenever the IDX files exist.
"""
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tune_digits.data import ASSET, load_idx_folder  # noqa: E402


def main(folder: str, out: Path = ASSET) -> None:
    mnist = load_idx_folder(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, train_sums=mnist.train_sums, train_labels=mnist.train_labels,
                        test_sums=mnist.test_sums, test_labels=mnist.test_labels)
    digest = hashlib.md5(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, md5 {digest})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/build_mnist14.py IDX_FOLDER")
    main(sys.argv[1])
