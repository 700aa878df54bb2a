"""``python -m benchmarks {stream,quality}``: the project's benchmarks, full tables.

Each prints its markdown, writes OUT/*.md and OUT/*.json, and with
``--update-doc PATH`` replaces the results section of that doc.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from benchmarks import quality
from benchmarks.stream import report as stream_report
from benchmarks.stream.run import HarnessSettings, run_harness
from tripwire.bench import report as quality_report
from tripwire.bench.quality_cli import EPILOG as QUALITY_EPILOG
from tripwire.bench.stream_cli import EPILOG as STREAM_EPILOG
from tripwire.cli import HelpFormatter
from tripwire.core.config import add_arguments, env_defaults, from_args, guarded
from tripwire.core.errors import TripwireError

log = logging.getLogger("benchmarks")

STREAM_HARNESS = """\
Beside the worker, on the same broker and events: ceiling A (raw aiokafka consumer
group, decode only), B (bare stock faust agent), C (batched inference alone), the
naive faust + PyOD peer, the broker alone at each offered rate, and py-spy samples of
the worker. Ratios are the headline: machines are noisy. The defaults take about 3-4
minutes on 2 cores, plus about a minute per detector of --detectors and half a
minute per variant round (--variants x --variant-repeats). See docs/performance.md."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=HelpFormatter)  # fmt: skip
    parser.add_argument("--log-level", default=os.environ.get("TRIPWIRE_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    stream = sub.add_parser("stream", help="the worker beside its ceilings and a naive peer",
                            epilog=STREAM_EPILOG + "\n\n" + STREAM_HARNESS,
                            formatter_class=HelpFormatter)  # fmt: skip
    defaults, env_error = env_defaults(HarnessSettings)
    add_arguments(stream, HarnessSettings, defaults)
    stream.set_defaults(func=guarded(env_error, _stream))
    qual = sub.add_parser("quality", help="detection quality vs PyOD on the ADBench folder",
                          epilog=QUALITY_EPILOG, formatter_class=HelpFormatter)  # fmt: skip
    qual_defaults, qual_error = env_defaults(quality.HarnessQualitySettings)
    add_arguments(qual, quality.HarnessQualitySettings, qual_defaults)
    qual.set_defaults(func=guarded(qual_error, _quality))
    return parser


def _stream(args: argparse.Namespace) -> Path:
    settings = from_args(HarnessSettings, args)
    result = run_harness(settings, command=_command())
    md, js = stream_report.write(result, Path(settings.out))
    if settings.update_doc:
        stream_report.update_doc(Path(settings.update_doc), stream_report.markdown(result))
        log.info("updated %s", settings.update_doc)
    log.info("wrote %s and %s", md, js)
    return md


def _quality(args: argparse.Namespace) -> Path:
    settings = from_args(quality.HarnessQualitySettings, args)
    result = quality.run(settings, command=_command())
    md, js = quality_report.write(result, Path(settings.out))
    if settings.update_doc:
        quality.update_doc(Path(settings.update_doc), quality_report.markdown(result))
        log.info("updated %s", settings.update_doc)
    log.info("wrote %s and %s", md, js)
    return md


def _command() -> str:
    return shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        md = args.func(args)
    except TripwireError as e:
        sys.stderr.write(f"python -m benchmarks {args.benchmark}: error: {e}\n")
        return 2
    sys.stdout.write(md.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
