"""``tripwire bench stream``: argparse glue around :mod:`tripwire.bench.stream`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from tripwire.bench import stream_report
from tripwire.bench.stream import run_stream
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.core.config import add_arguments, env_defaults, from_args, guarded

log = logging.getLogger(__name__)

EPILOG = """\
Everything is measured in one run on one broker (the embedded Tansu broker unless
--bootstrap names your cluster): a model is trained, three topics are filled with the
same events (JSON, binary and packed), then the real `tripwire worker` reads each
backlog, gets binary events at fixed offered rates for the alert latency, and its RSS
is compared with the RSS after warm-up. Then the worker variants of --variants (the
defaults: drift on, no shadow; --no-drift; --shadow-model on a second version) each
serve the same model, --variant-repeats interleaved rounds of a binary backlog then
--variant-rate events/s, with the drift and shadow throughput ratios. Then every
detector of --detectors is trained on the same data, timed in-process at the worker's
batch size and served by a worker of its own: binary throughput and alert latency at
--detector-rate. --events, --packed-events, --rate-seconds and --detector-seconds
scale it; --detectors-only keeps the per-detector table alone. Writes OUT/stream.md,
OUT/stream.json and OUT/logs/."""


def register(bench_subparsers: Any) -> None:
    """Add ``stream`` to ``tripwire bench``."""
    from tripwire.cli import HelpFormatter

    parser: argparse.ArgumentParser = bench_subparsers.add_parser(
        "stream",
        help="a worker's throughput, alert latency and memory on your cluster, per detector",
        description="Throughput per encoding, alert latency at fixed offered rates and "
        "memory of the Tripwire worker, and each detector's worker throughput, latency and "
        "in-process scoring rate, in one run.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    defaults, env_error = env_defaults(StreamBenchSettings)
    add_arguments(parser, StreamBenchSettings, defaults)
    parser.set_defaults(func=guarded(env_error, run))


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write its outputs, print the markdown; exit code 0."""
    settings = from_args(StreamBenchSettings, args)
    command = shlex.join(["tripwire", *sys.argv[1:]])
    result = run_stream(settings, command=command)
    md, js = stream_report.write(result, Path(settings.out))
    sys.stdout.write(md.read_text(encoding="utf-8"))
    log.info("wrote %s and %s", md, js)
    return 0
