"""``tripwire bench stream``: argparse glue around :mod:`tripwire.bench.stream`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from tripwire.bench import stream_report
from tripwire.bench.stream import StreamBenchSettings, run_stream
from tripwire.core.config import add_arguments, from_args, load_env

log = logging.getLogger(__name__)

EPILOG = """\
Everything is measured in one run on one broker (the embedded Tansu broker unless
--bootstrap): ceiling A (raw aiokafka consumer group, decode only), B (bare stock
faust agent), C (batched inference alone), the naive faust + PyOD peer, and the
real `tripwire worker` for JSON, binary and packed events, then alert latency at
fixed offered rates and the worker's RSS. Ratios are the headline: machines are
noisy. The defaults take about 3-4 minutes on 2 cores; --events, --packed-events
and --rate-seconds scale it. Writes OUT/stream.md, OUT/stream.json and OUT/logs/;
see docs/performance.md."""


def register(bench_subparsers: Any) -> None:
    """Add ``stream`` to ``tripwire bench``."""
    from tripwire.cli import HelpFormatter

    parser: argparse.ArgumentParser = bench_subparsers.add_parser(
        "stream",
        help="worker throughput, latency and memory vs raw aiokafka, bare faust, a naive peer",
        description="Streaming throughput and latency of the Tripwire worker beside its "
        "ceilings and a naive faust + PyOD peer, all in one run.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_arguments(parser, StreamBenchSettings, load_env(StreamBenchSettings))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write its outputs, print the markdown; exit code 0."""
    settings = from_args(StreamBenchSettings, args)
    command = shlex.join(["tripwire", *sys.argv[1:]])
    result = run_stream(settings, command=command)
    md, js = stream_report.write(result, Path(settings.out))
    if settings.update_doc:
        stream_report.update_doc(Path(settings.update_doc), stream_report.markdown(result))
        log.info("updated %s", settings.update_doc)
    sys.stdout.write(md.read_text(encoding="utf-8"))
    log.info("wrote %s and %s", md, js)
    return 0
