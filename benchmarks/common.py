"""What the benchmark scripts share: the paper's best configurations and mean ± std."""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_digits.spaces import load_space  # noqa: E402

# The paper's best configuration of each net (bold in its Table I): the `best:` of each search space,
# which tests/test_spaces.py checks against the paper. Explicit data, so a change of library defaults
# cannot silently change what a benchmark measures.
BEST = {network: dict(load_space(network).best) for network in ("linear", "lenet", "resnet", "alexnet")}


def mean_std(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def parse_archs(text: str, known) -> list[str] | None:
    """`lenet,resnet` → the nets, or None after one error line when a name is not in `known`."""
    networks = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in networks if a not in known]
    if unknown:
        print(f"error: unknown net {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return None
    return networks
