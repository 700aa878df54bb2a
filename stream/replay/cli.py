"""``tripwire replay``: what would these versions have alerted on, on our real stream?"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from tripwire.core.config import add_arguments, env_defaults, env_name, from_args, guarded

DESCRIPTION = """\
Re-score a range of a Kafka topic with one or more model versions, through the
worker's own decoding and scoring, and compare them: per version events, alerts,
alert rate and score quantiles; per pair alerts only in one, in both, the entities
most affected and the score shift; with --labels precision, recall, F1 and
time-to-detect per incident. Reads with a plain consumer without a group (it
never joins or commits to the workers' group) and produces nothing.

--from/--to take an offset (the same for every partition; --to excluded) or an
ISO-8601 time with a UTC offset (Kafka record timestamps). --json writes rollout
evidence that `tripwire registry promote --evidence` reads (docs/formats.md).
Broker security: the worker's TRIPWIRE_SECURITY_*/SASL_*/SSL_* variables.

examples:
  tripwire replay --bootstrap kafka:9092 --model fraud@production --model fraud@candidate \\
                  --from 2026-11-27T00:00:00Z --json replay.json
  tripwire replay --bootstrap kafka:9092 --model fraud@3 --partitions 0,2 --from 1000 --to 5000
"""


class _Models(argparse.Action):
    """``--model`` repeated (or comma-separated) replaces the env default, in order."""

    def __call__(
        self, parser: Any, ns: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        given = getattr(ns, "_models_given", [])
        given += [v.strip() for v in str(values).split(",") if v.strip()]
        ns._models_given = given
        ns.models = tuple(given)


def register(subparsers: Any) -> None:
    """Add ``replay`` to the ``tripwire`` command."""
    from tripwire.stream.replay.settings import ReplaySettings

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="re-score a range of a topic with model versions and compare them",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    defaults, env_error = env_defaults(ReplaySettings)
    shown = ",".join(defaults.models)
    parser.add_argument(
        "--model", dest="models", action=_Models, default=defaults.models, metavar="REF",
        help="NAME@VERSION or NAME@ALIAS to replay with; repeat to compare (the first is "
        f"the baseline) [env {env_name('models')}{'; default: ' + shown if shown else ''}]",
    )  # fmt: skip
    for option, name in (("--from", "range_from"), ("--to", "range_to")):
        value = getattr(defaults, name)
        parser.add_argument(
            option, dest=name, default=value, metavar="OFFSET|TIME",
            help=f"{'start' if name == 'range_from' else 'end (excluded)'} of the range: an "
            "offset or an ISO-8601 time "
            f"[env {env_name(name)}{'; default: ' + value if value else ''}]",
        )  # fmt: skip
    add_arguments(parser, ReplaySettings, defaults)
    parser.set_defaults(
        func=guarded(env_error, lambda args: run_replay(from_args(ReplaySettings, args)))
    )


def run_replay(settings: Any) -> int:
    """Replay, print the table, write the JSON (and PNG); 0 on success."""
    from tripwire.core.errors import TripwireError
    from tripwire.core.registry.evidence import evidence_problems
    from tripwire.stream import compat
    from tripwire.stream.kafka.security import env_security_options
    from tripwire.stream.replay.labels import LabelTally, load_labels
    from tripwire.stream.replay.read import RangeReader, parse_bound
    from tripwire.stream.replay.report import ModelTally, Tally
    from tripwire.stream.replay.run import Progress, Replay, load_versions, replay_range
    from tripwire.stream.replay.table import render
    from tripwire.stream.worker import freeze_startup_objects, single_threaded_inference

    settings.validate()
    start = parse_bound(settings.range_from, "--from")
    end = parse_bound(settings.range_to, "--to")
    labels = load_labels(settings.labels) if settings.labels else None
    compat.check_versions()
    compat.install_lenient_fetch()  # a record aiokafka cannot parse is refused, not fatal
    single_threaded_inference()
    versions = load_versions(settings.registry, settings.models)
    models = [
        ModelTally(v.ref, v.scorer.name, v.scorer.version, v.scorer.threshold,
                   v.manifest_sha256, None if labels is None else LabelTally(labels))
        for v in versions
    ]  # fmt: skip
    tally = Tally(models, labels)
    replay = Replay(versions, tally, max_message_bytes=settings.max_message_bytes)
    freeze_startup_objects()  # as the worker: the models and libraries out of the GC's walks
    options = {"bootstrap_servers": settings.bootstrap_servers, **env_security_options()}
    reader = RangeReader(options, settings.input_topic, settings.partition_list(), start, end)
    asyncio.run(
        replay_range(reader, replay, settings.max_batch, Progress(enabled=settings.progress))
    )
    partitions = [s.tp.partition for s in reader.spans]
    bounds = (start.text if start else None, end.text if end else None)
    doc = tally.evidence(settings.input_topic, partitions, bounds, settings.top_entities)
    problems = evidence_problems(doc)
    if problems:  # a bug of ours: say so rather than write evidence the gate refuses
        raise TripwireError(f"the replay report is not valid evidence: {problems[:3]}")
    sys.stdout.write(render(tally, doc, settings.top_entities))
    if settings.json:
        with open(settings.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        sys.stderr.write(f"evidence written to {settings.json}\n")
    if settings.png:
        from tripwire.stream.replay.plot import plot

        plot(tally, settings.png)
        sys.stderr.write(f"plot written to {settings.png}\n")
    return 0
