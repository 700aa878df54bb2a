"""The ``tripwire`` command: one entry point, one subcommand per job.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
subcommands and sets ``func(args) -> int`` on them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from tripwire.core.errors import TripwireError

log = logging.getLogger("tripwire")

COMMAND_MODULES = (
    "tripwire.training.cli",  # train, score, registry
    "tripwire.demo",  # demo
    "tripwire.bench.cli",  # bench quality
    "tripwire.stream.cli",  # worker, shadow
    "tripwire.stream.replay.cli",  # replay
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (settings options show their own env and default)."""


#: Commands whose process must start fast (the worker serves /healthz within its
#: first second): only their own module is imported to parse their arguments.
FAST_COMMANDS = {"worker": "tripwire.stream.cli"}


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tripwire",
        description="Streaming anomaly detection on Kafka: train, publish, score, serve.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("TRIPWIRE_LOG_LEVEL", argparse.SUPPRESS),
        help="logging level [env TRIPWIRE_LOG_LEVEL; default: INFO, WARNING for demo]",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (after the top-level options), if any."""
    args = iter(argv)
    for arg in args:
        if arg == "--log-level":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the deepest subcommand ``args`` chose."""
    for action in parser._actions:  # argparse keeps no other record of the chosen one
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return innermost(chosen, args)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fast = FAST_COMMANDS.get(command_of(argv) or "")
    parser = build_parser((fast,) if fast else COMMAND_MODULES)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the subcommand's usage, not the top level's
        innermost(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=getattr(args, "log_level", getattr(args, "default_log_level", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except TripwireError as e:
        log.debug("failed", exc_info=True)
        sys.stderr.write(f"tripwire {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
