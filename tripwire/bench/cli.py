"""``tripwire bench``: one subcommand per benchmark.

Each module in ``BENCH_MODULES`` exposes ``register(bench_subparsers)``, which adds
its benchmark and sets ``func(args) -> int`` on it (the same pattern as
``tripwire.cli.COMMAND_MODULES``).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

BENCH_MODULES: tuple[str, ...] = (
    "tripwire.bench.quality_cli",  # quality
    "tripwire.bench.stream_cli",  # stream
)


def register(subparsers: Any) -> None:
    """Add ``bench`` and its benchmarks to the ``tripwire`` command."""
    from tripwire.cli import HelpFormatter

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmarks: detection quality, streaming throughput",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    bench_sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bench_sub)
