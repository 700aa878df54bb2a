"""``tripwire bench quality``: argparse glue around :mod:`tripwire.bench.quality`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from tripwire.bench import report
from tripwire.bench.detectors import BASELINES
from tripwire.bench.quality import QualitySettings, run_quality
from tripwire.core.config import add_arguments, env_defaults, from_args, guarded

log = logging.getLogger(__name__)

EPILOG = f"""\
protocol: per seed, each detector is split, fitted and calibrated by tripwire
train's own code (same --test-size, --calibration-size and seed give the same rows
and threshold: held-out scores pooled with the detector's own out-of-sample scores of
training rows where it has them); tested on the test split's normal rows and every anomaly.
PyOD baselines: {", ".join(BASELINES)}. Anything else is a Tripwire detector spec.
Writes OUT/quality.md and OUT/quality.json; see docs/quality.md."""


def register(bench_subparsers: Any) -> None:
    """Add ``quality`` to ``tripwire bench``."""
    from tripwire.cli import HelpFormatter

    parser: argparse.ArgumentParser = bench_subparsers.add_parser(
        "quality",
        help="detection quality and threshold calibration vs PyOD on .npz datasets",
        description="Detection quality and threshold calibration of Tripwire's detectors "
        "beside PyOD's, on every .npz dataset of a folder.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    defaults, env_error = env_defaults(QualitySettings)
    add_arguments(parser, QualitySettings, defaults)
    parser.set_defaults(func=guarded(env_error, run))


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write its outputs, print the markdown; exit code 0."""
    settings = from_args(QualitySettings, args)
    command = shlex.join(["tripwire", *sys.argv[1:]])
    result = run_quality(settings, command=command)
    md, js = report.write(result, Path(settings.out))
    sys.stdout.write(md.read_text(encoding="utf-8"))
    log.info("wrote %s and %s", md, js)
    return 0
