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


def parse_settings(items) -> dict | None:
    """`--set KEY=VALUE` items → {key: YAML value}, or None after one error line when one has no `=`."""
    import yaml

    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set expects OPTION=VALUE, got {item!r}", file=sys.stderr)
            return None
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def network_parser(doc: str, pairs: int = 350):
    """The options the per-network speed benchmarks share: --networks, --set, --pairs, --epochs, --repeats."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--networks", default="lenet,resnet")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="OPTION=VALUE",
                        help="A model option on top of the net's best configuration (repeatable; YAML value).")
    parser.add_argument("--pairs", type=int, default=pairs, help=f"Train (and test) pairs (default {pairs}).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def report(title: str, table: str, args, rows: list[dict]) -> int:
    """Print the title line and the Markdown table; write args and rows to `args.json` when given."""
    import json

    print(f"{title}\n")
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1))
    return 0
