"""``tripwire worker``: serve a registry model on a Kafka topic.

Start-up order: validate the settings; serve ``/metrics``, ``/healthz`` and
``/readyz`` (``stream.health``) and start the event loop's heartbeat and broker
probe; load the model (refusing to start, exit 2, if it cannot serve; with
``--wait-for-model`` an alias not published yet is waited for); wait for the broker
and the input topic, create missing output topics; then run the faust worker until
SIGTERM/SIGINT (graceful: in-flight batches are delivered and committed, within
``--drain-timeout``) or a fatal error (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from tripwire.core.config import (
    add_arguments,
    env_defaults,
    env_name,
    from_args,
    guarded,
    shown_default,
)

log = logging.getLogger(__name__)

#: Seconds between two looks for a model that is not published yet.
MODEL_POLL = 5.0
#: Exit code when the drain after SIGTERM exceeded ``--drain-timeout``.
EXIT_DRAIN_TIMEOUT = 1

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
    defaults, env_error = env_defaults(WorkerSettings)
    parser.add_argument(
        "--model",
        dest="model_ref",
        default=defaults.model_ref,
        metavar="REF",
        help="model NAME (= NAME@production) or NAME@ALIAS to serve and follow (required) "
        f"[env {env_name('model_ref')}{shown_default(str, defaults.model_ref)}]",
    )
    add_arguments(parser, WorkerSettings, defaults)

    parser.set_defaults(
        func=guarded(env_error, lambda args: run_worker(from_args(WorkerSettings, args)))
    )
    register_shadow(subparsers)


SHADOW_DESCRIPTION = """\
Turn the shadow counters of running workers (tripwire worker --shadow-model) into
a rollout evidence report for `tripwire registry promote --evidence`: the serving
version is the baseline, the shadow the candidate; counts are exact, score
quantiles estimated from the histogram buckets (docs/formats.md, "Rollout evidence").

examples:
  tripwire shadow report --metrics-url http://worker-1:9464/metrics --out shadow.json
  tripwire shadow report --metrics-url http://w1:9464/metrics,http://w2:9464/metrics \\
                         --window 3600 --registry /srv/registry --out shadow.json
"""


def register_shadow(subparsers: Any) -> None:
    """Add ``shadow report`` to the ``tripwire`` command."""
    from tripwire.stream.observability.shadow_report import ShadowReportSettings

    shadow = subparsers.add_parser("shadow", help="shadow scoring: evidence from workers")
    sub = shadow.add_subparsers(dest="shadow_command", required=True, metavar="COMMAND")
    parser = sub.add_parser(
        "report", help="write a rollout evidence report from the workers' shadow metrics",
        description=SHADOW_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    defaults, env_error = env_defaults(ShadowReportSettings)
    add_arguments(parser, ShadowReportSettings, defaults)
    parser.set_defaults(
        func=guarded(env_error, lambda args: shadow_report(from_args(ShadowReportSettings, args)))
    )


def shadow_report(settings: Any) -> int:
    """Write the report; one line about it on stderr."""
    import json
    import sys

    from tripwire.stream.observability.shadow_report import collect

    settings.validate()
    doc = collect(
        list(settings.metrics_url), settings.registry, settings.input_topic, settings.window
    )
    text = json.dumps(doc, indent=2) + "\n"
    if settings.out:
        with open(settings.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    (c,) = doc["comparisons"]
    base, cand = doc["models"][c["baseline"]], doc["models"][c["candidate"]]
    sys.stderr.write(
        f"{base['events']} events compared: {c['baseline']} alerted on {base['alerts']} "
        f"({base['alert_rate']:.4%}), {c['candidate']} on {cand['alerts']} "
        f"({cand['alert_rate']:.4%}); only {c['baseline']}: {c['only_baseline']}, only "
        f"{c['candidate']}: {c['only_candidate']}, both: {c['both']}"
        + (f"; written to {settings.out}\n" if settings.out else "\n")
    )
    return 0


def run_worker(settings: Any) -> int:
    """Run the worker until it is stopped; return the process exit code."""
    from tripwire.stream.observability.exporter import MetricsServer
    from tripwire.stream.observability.health import Health
    from tripwire.stream.observability.metrics import Metrics

    settings.validate()
    # First of all, so /metrics and /healthz answer while the rest starts.
    metrics, health = Metrics(CollectorRegistry()), Health()
    server = MetricsServer(metrics, health, settings.metrics_host, settings.metrics_port)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _serve(settings, metrics, health, loop)
    finally:
        server.stop()
        if not loop.is_closed():
            loop.close()


def _serve(settings: Any, metrics: Any, health: Any, loop: asyncio.AbstractEventLoop) -> int:
    from tripwire.stream import compat
    from tripwire.stream.kafka.broker_probe import probe_broker
    from tripwire.stream.kafka.topics import prepare_topics
    from tripwire.stream.observability.health import heartbeat
    from tripwire.stream.worker import StreamWorker

    helpers = [loop.create_task(heartbeat(health))]
    helpers.append(loop.create_task(probe_broker(settings, health)))
    try:
        scorer = loop.run_until_complete(_load_model(settings))
        health.model_loaded = True
        partitions = loop.run_until_complete(prepare_topics(settings))
    except BaseException:
        for task in helpers:
            task.cancel()
        # bounded: a client library that swallows a cancellation must not hang the exit
        loop.run_until_complete(asyncio.wait(helpers, timeout=5))
        raise
    log.info("input topic %s has %d partitions", settings.input_topic, partitions)
    worker = StreamWorker(settings, scorer, metrics, health)

    def on_stop_signal() -> None:
        if settings.drain_timeout > 0:
            arm_drain_deadline(settings.drain_timeout, worker.consumer.uncommitted)

    runner = compat.worker_with_stop_hook(on_stop_signal)(
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
    log.info("worker stopped (exit code %d)", code)
    return code


async def _load_model(settings: Any) -> Any:
    """The model to start with, loaded off the loop (which keeps ticking meanwhile).

    With ``--wait-for-model``, an alias that is not published yet is waited for
    (polled every ``MODEL_POLL`` seconds); anything else wrong with the model ends
    the start (``ModelLoadError``, exit 2).
    """
    from tripwire.core.registry import RegistryReader
    from tripwire.stream.processing.model_watcher import load_initial

    loop = asyncio.get_running_loop()
    reader = RegistryReader(settings.registry)
    name, alias = settings.model_name, settings.model_alias
    while settings.wait_for_model and reader.root.is_dir():
        if await loop.run_in_executor(None, reader.alias_version, name, alias) is not None:
            break
        log.warning("model %s@%s is not published yet; waiting for it", name, alias)
        await asyncio.sleep(MODEL_POLL)
    scorer = await loop.run_in_executor(None, load_initial, settings.registry, settings.model_ref)
    log.info(
        "model %s version %s loaded: %d features, threshold %.6g",
        scorer.name, scorer.version, scorer.n_features, scorer.threshold,
    )  # fmt: skip
    return scorer


def arm_drain_deadline(seconds: float, uncommitted: Callable[[], str]) -> threading.Timer:
    """Exit the process if it is still running ``seconds`` from now.

    A thread, so that it fires even if the event loop is stuck in the drain. What
    was not committed by then (``uncommitted()``, logged) is consumed and scored
    again after the restart (at-least-once holds; only duplicates grow).
    """

    def give_up() -> None:
        log.critical(
            "stopping took more than --drain-timeout %gs; exiting without waiting further. "
            "Gave up on committing: %s (those events are scored again after the restart)",
            seconds, uncommitted(),
        )  # fmt: skip
        os._exit(EXIT_DRAIN_TIMEOUT)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer
