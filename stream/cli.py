"""``tripwire worker``: serve a registry model on a Kafka topic.

Start-up order: validate the settings, load the model (refusing to start, exit 2,
if it cannot serve), wait for the broker and the input topic, create missing output
topics, start ``/metrics``, then run the faust worker until SIGTERM/SIGINT (graceful:
in-flight batches are delivered and committed) or a fatal error (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry

from tripwire.core.config import add_arguments, env_name, from_args, load_env
from tripwire.core.errors import ConfigError

log = logging.getLogger(__name__)

DESCRIPTION = """\
Consume feature vectors from Kafka, score them in micro-batches with a model from
the registry, and produce anomaly events (CloudEvents JSON), dead letters for bad
input and, optionally, every score. Follows the model alias and hot-reloads new
versions. Exposes Prometheus metrics on /metrics. Input encodings, the alert schema,
dead-letter headers and metric names: docs/formats.md.

Every option can also be set with the environment variable shown in its help.

examples:
  tripwire worker --bootstrap kafka:9092 --model fraud@production
  TRIPWIRE_BOOTSTRAP=kafka:9092 TRIPWIRE_MODEL_REF=fraud tripwire worker --cooldown 60
"""


def register(subparsers: Any) -> None:
    """Add ``worker`` to the ``tripwire`` command."""
    from tripwire.stream.settings import WorkerSettings

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="score a Kafka topic with a registry model (the stream worker)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        defaults, env_error = load_env(WorkerSettings), None
    except ConfigError as e:
        defaults, env_error = WorkerSettings(), e
    parser.add_argument(
        "--model",
        dest="model_ref",
        default=defaults.model_ref,
        metavar="REF",
        help="model NAME (= NAME@production) or NAME@ALIAS to serve and follow (required) "
        f"[env {env_name('model_ref')}; default: {defaults.model_ref or None}]",
    )
    add_arguments(parser, WorkerSettings, defaults)

    def func(args: argparse.Namespace) -> int:
        if env_error is not None:
            raise env_error
        return run_worker(from_args(WorkerSettings, args))

    parser.set_defaults(func=func)


def run_worker(settings: Any) -> int:
    """Run the worker until it is stopped; return the process exit code."""
    import faust

    from tripwire.stream.kafka.topics import prepare_topics
    from tripwire.stream.observability.exporter import MetricsServer
    from tripwire.stream.observability.metrics import Metrics
    from tripwire.stream.processing.model_watcher import load_initial
    from tripwire.stream.worker import StreamWorker

    settings.validate()
    scorer = load_initial(settings.registry, settings.model_ref)
    log.info(
        "model %s version %s loaded: %d features, threshold %.6g",
        scorer.name, scorer.version, scorer.n_features, scorer.threshold,
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    partitions = loop.run_until_complete(prepare_topics(settings))
    log.info("input topic %s has %d partitions", settings.input_topic, partitions)
    metrics = Metrics(CollectorRegistry())
    server = MetricsServer(metrics, settings.metrics_host, settings.metrics_port)
    worker = StreamWorker(settings, scorer, metrics)
    runner = faust.Worker(
        worker.app, loop=loop, loglevel=logging.getLogger().level,
        override_logging=False, redirect_stdouts=False, quiet=True,
    )  # fmt: skip
    try:
        runner.execute_from_commandline()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    else:  # pragma: no cover - execute_from_commandline always exits
        code = 0
    finally:
        worker.close()
        server.stop()
    log.info("worker stopped (exit code %d)", code)
    return code
