"""``tripwire demo``: the founding tutorial's whole flow, live, on a real broker.

Start the embedded broker (unless ``--bootstrap`` names a cluster), train a detector
on the tutorial's data (PyOD ``generate_data``, 50 features, contamination 0.2),
publish and promote it, start ``tripwire worker`` as a child process, stream the
test set through Kafka, read the alert topic, and print accuracy / precision /
recall / F1 against the labels, events/s, latency and the metrics URL. Everything it
started is stopped before it returns (``--keep-running`` prints the result, then
serves until Ctrl-C). A secured cluster is reached with the worker's variables
(``TRIPWIRE_SECURITY_PROTOCOL``, ``TRIPWIRE_SSL_CAFILE``, ...): the demo's clients
and its worker child read the same; no other ``TRIPWIRE_*`` variable reaches either.

It shows its steps as plain lines on stdout and keeps library logs out of view
(``--log-level INFO`` shows them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tripwire.core import kinds
from tripwire.core.config import add_arguments, env_defaults, from_args, guarded
from tripwire.core.errors import TripwireError

if TYPE_CHECKING:
    from tripwire.stream.wire.encodings import Encoded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings:
    """What ``tripwire demo`` runs against."""

    #: its own variables: a worker's TRIPWIRE_REGISTRY/BOOTSTRAP must not steer the demo
    ENV_PREFIX: ClassVar[str] = "TRIPWIRE_DEMO_"

    bootstrap: str = field(
        default="",
        metadata={"help": "existing Kafka cluster (empty: start the embedded broker)"},
    )
    model: str = field(default=kinds.DEFAULT, metadata={"help": f"detector: {kinds.described()}"})
    registry: str = field(
        default="", metadata={"help": "registry directory (empty: a temporary one)"}
    )
    input_topic: str = field(default="features", metadata={"help": "topic of feature vectors"})
    alert_topic: str = field(default="anomalies", metadata={"help": "topic of anomaly events"})
    dlq_topic: str = field(default="features.dlq", metadata={"help": "dead-letter topic"})
    partitions: int = field(default=3, metadata={"help": "partitions of the input topic"})
    rate: float = field(
        default=2000.0, metadata={"help": "events/s offered to the worker (0: as fast as possible)"}
    )
    metrics_port: int = field(default=0, metadata={"help": "worker /metrics port (0: a free one)"})
    seed: int = field(default=0, metadata={"help": "seed of the generated data and the model"})
    timeout: float = field(
        default=120.0, metadata={"help": "seconds to wait for the worker to score everything"}
    )
    keep_running: bool = field(
        default=False, metadata={"help": "leave broker and worker running until Ctrl-C"}
    )


@dataclass
class DemoResult:
    """What the demo measured (also printed)."""

    metrics: dict[str, float]
    events_per_s: float
    latency_ms: dict[str, float]
    metrics_url: str
    alerts: int
    events: int
    #: normal events sent until the worker scored one (also counted by /metrics)
    warm_up: int


def step(label: str, text: str) -> None:
    """One line of the demo's progress on stdout."""
    print(f"  {label:<9} {text}", flush=True)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the tutorial's pipeline live: train, publish, stream through Kafka, evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults, env_error = env_defaults(DemoSettings)
    add_arguments(parser, DemoSettings, defaults)
    # library INFO lines would bury the steps; an explicit --log-level still wins
    parser.set_defaults(
        func=guarded(env_error, lambda args: _run_cli(from_args(DemoSettings, args))),
        default_log_level="WARNING",
    )


def _run_cli(settings: DemoSettings) -> int:
    print("Tripwire demo", flush=True)
    # SIGTERM stops the demo as Ctrl-C does: its broker and worker are stopped too
    signal.signal(signal.SIGTERM, _interrupt)
    run_demo(settings, report=print_result)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def print_result(result: DemoResult, keep_running: bool) -> None:
    """The summary block; the metrics URL is live while it is read only with --keep-running."""
    m = result.metrics
    live = "live until Ctrl-C" if keep_running else "stopped with the demo; --keep-running keeps it"
    print(
        "\nTripwire demo: streamed the test set through Kafka and read the alert topic\n"
        f"  accuracy  {m['accuracy']:.4f}   precision {m['precision']:.4f}\n"
        f"  recall    {m['recall']:.4f}   F1        {m['f1']:.4f}\n"
        f"  events    {result.events:,} test events, {result.alerts} alerts"
        f"   (+{result.warm_up} warm-up events before them; /metrics counts both)\n"
        f"  events/s  {result.events_per_s:,.0f}\n"
        f"  latency   p50 {result.latency_ms['p50']:.1f} ms   "
        f"p99 {result.latency_ms['p99']:.1f} ms   (event time -> alert)\n"
        f"  metrics   {result.metrics_url}   ({live})",
        flush=True,
    )


def run_demo(
    settings: DemoSettings, report: Callable[[DemoResult, bool], None] | None = None
) -> DemoResult:
    """Run the whole demo; stops everything it started before returning.

    ``report(result, keep_running)`` is called as soon as the test set is scored,
    before ``--keep-running`` waits for Ctrl-C.
    """
    from tripwire.training.data import demo_data

    with ExitStack() as stack:
        _check_security(settings.bootstrap)
        bootstrap = settings.bootstrap or _start_broker(stack)
        registry = settings.registry or stack.enter_context(tempfile.TemporaryDirectory())
        name = _train(settings, registry)
        _, test = demo_data(settings.seed)
        assert test.y is not None
        asyncio.run(_create_topics(bootstrap, settings))
        port = settings.metrics_port or _free_port()
        worker = stack.enter_context(_worker(settings, bootstrap, registry, name, port))
        url = f"http://127.0.0.1:{port}/metrics"
        step("worker", f"tripwire worker started (a child process); metrics at {url}")
        result = asyncio.run(_stream_and_collect(settings, bootstrap, test.X, test.y, url, worker))
        if report is not None:
            report(result, settings.keep_running)
        if settings.keep_running:
            _wait_for_interrupt(bootstrap, url)
        return result
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack re-raises


def _start_broker(stack: ExitStack) -> str:
    from tripwire.embedded import EmbeddedBroker

    broker = stack.enter_context(EmbeddedBroker())
    step("broker", f"embedded Tansu on {broker.bootstrap}")
    return broker.bootstrap


def _train(settings: DemoSettings, registry: str) -> str:
    from tripwire.training.pipeline import train
    from tripwire.training.settings import TrainSettings

    ts = replace(
        TrainSettings(), demo=True, model=settings.model, registry=registry,
        name="demo", promote="production", seed=settings.seed, plot="none",
    )  # fmt: skip
    step("training", f"{settings.model} on the tutorial's data (normal rows only)")
    result = train(ts)
    t = result.threshold
    step("published", f"demo@{result.version} -> production (threshold {t['method']} = "
                      f"{t['value']:.6g})")  # fmt: skip
    return "demo"


async def _create_topics(bootstrap: str, settings: DemoSettings) -> None:
    from tripwire.stream.kafka.topics import create_topics

    wanted = {settings.input_topic: settings.partitions, settings.alert_topic: settings.partitions}
    await create_topics(bootstrap, {**wanted, settings.dlq_topic: 1}, **_security())


def _check_security(bootstrap: str) -> None:
    """Before training: a certificate or login that cannot work ends the demo in one line."""
    from tripwire.stream.kafka.security import check_env_security, env_security_options

    if bootstrap:
        asyncio.run(check_env_security(bootstrap))
    elif env_security_options()["security_protocol"] != "PLAINTEXT":
        raise TripwireError(
            "the embedded broker speaks PLAINTEXT only: unset TRIPWIRE_SECURITY_PROTOCOL, "
            "or pass --bootstrap to use your secured cluster"
        )


def _security() -> dict[str, Any]:
    """The TLS/SASL options of the demo's clients (as its worker reads them)."""
    from tripwire.stream.kafka.security import env_security_options

    return env_security_options()


def _free_port() -> int:
    from tripwire.embedded import free_port

    return free_port()


@contextmanager
def _worker(
    settings: DemoSettings, bootstrap: str, registry: str, name: str, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``tripwire worker`` as a child process, stopped with SIGTERM (then SIGKILL)."""
    cmd = [
        sys.executable, "-m", "tripwire", "--log-level", _worker_log_level(), "worker",
        "--bootstrap", bootstrap, "--model", f"{name}@production", "--registry", registry,
        "--input-topic", settings.input_topic, "--alert-topic", settings.alert_topic,
        "--dlq-topic", settings.dlq_topic, "--group-id", f"tripwire-demo-{uuid.uuid4().hex[:8]}",
        "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
    ]  # fmt: skip
    log.info("starting the worker: %s", " ".join(cmd[2:]))
    from tripwire.stream.kafka.security import worker_child_env

    # its options above and the cluster's security: a worker's environment cannot steer it
    proc = subprocess.Popen(cmd, env=worker_child_env())  # noqa: S603
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.warning("worker did not stop within 30 s of SIGTERM; killing it")
                proc.kill()
                proc.wait()


def _worker_log_level() -> str:
    """The worker logs warnings only, unless the demo itself is at DEBUG."""
    return "DEBUG" if logging.getLogger().isEnabledFor(logging.DEBUG) else "WARNING"


def _scraped(url: str, metric: str) -> float | None:
    """The value of an unlabelled counter/gauge on the worker's /metrics, if up."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our loopback URL
            text = resp.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(metric + " "):
            return float(line.split()[1])
    return 0.0


async def _stream_and_collect(
    settings: DemoSettings,
    bootstrap: str,
    X: np.ndarray,
    y: np.ndarray,
    url: str,
    worker: subprocess.Popen[bytes],
) -> DemoResult:
    run = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, **_security())
    await producer.start()
    try:
        warm = await _warm_up(producer, settings, X[y == 0][0], url, worker, run)
        started = time.monotonic()
        await _produce(producer, settings, X, run)
        await _wait_scored(url, warm + len(X), settings.timeout, worker)
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    expected = int(_scraped(url, "tripwire_anomalies_total") or 0)
    prefixes = (f"{run}-", f"warmup-{run}-")
    alerts = await _read_alerts(bootstrap, settings.alert_topic, prefixes, expected, 30.0)
    alerts = [a for a in alerts if a["data"]["input_id"].startswith(f"{run}-")]
    predicted = np.zeros(len(y), dtype=bool)
    for a in alerts:
        predicted[int(a["data"]["input_id"].rsplit("-", 1)[1])] = True
    lat = [_ms_between(a["data"]["event_time"], a["data"]["detection_time"]) for a in alerts]
    return DemoResult(
        metrics=classification_metrics(y.astype(bool), predicted),
        events_per_s=len(X) / elapsed,
        latency_ms={
            "p50": float(np.percentile(lat, 50)) if lat else float("nan"),
            "p99": float(np.percentile(lat, 99)) if lat else float("nan"),
        },
        metrics_url=url,
        alerts=len(alerts),
        events=len(X),
        warm_up=warm,
    )


def classification_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of boolean predictions against labels."""
    tp = float(np.sum(truth & predicted))
    fp = float(np.sum(~truth & predicted))
    fn = float(np.sum(truth & ~predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float(np.mean(truth == predicted))
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def _event(event_id: str, row: np.ndarray, key: str) -> Encoded:
    """One JSON input event, timed now."""
    from tripwire.stream.wire.encodings import Events, encoding

    events = Events(row[None, :], ids=[event_id], keys=[key], ts_ms=[int(time.time() * 1000)])
    return encoding("json").encode(events)[0]


async def _warm_up(
    producer: AIOKafkaProducer,
    settings: DemoSettings,
    row: np.ndarray,
    url: str,
    worker: subprocess.Popen[bytes],
    run: str,
) -> int:
    """Send normal events until the worker scores one; return how many were sent."""
    step("warm-up", "normal events until the worker has joined its group and scored one")
    deadline = time.monotonic() + settings.timeout
    sent = 0
    while time.monotonic() < deadline:
        _check_alive(worker)
        event = _event(f"warmup-{run}-{sent}", row, "warmup")
        await producer.send_and_wait(settings.input_topic, event.value, key=event.key)
        sent += 1
        await asyncio.sleep(0.25)
        if (_scraped(url, "tripwire_events_scored_total") or 0) > 0:
            await _wait_scored(url, sent, settings.timeout, worker)
            step("warm-up", f"{sent} events until the first was scored")
            return sent
    raise TripwireError(f"the worker scored nothing within {settings.timeout:.0f} s")


async def _produce(
    producer: AIOKafkaProducer, settings: DemoSettings, X: np.ndarray, run: str
) -> None:
    progress = Progress("streaming", len(X), f"events to {settings.input_topic}")
    t0 = time.monotonic()
    pending = []
    for i, row in enumerate(X):
        if settings.rate > 0:
            delay = t0 + i / settings.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        event = _event(f"{run}-{i}", row, f"entity-{i % 50}")
        pending.append(await producer.send(settings.input_topic, event.value, key=event.key))
        progress.update(i + 1)
    await asyncio.gather(*pending)
    progress.done()


class Progress:
    """``done/total`` on one line: redrawn in place on a terminal, in quarters otherwise."""

    def __init__(self, label: str, total: int, what: str) -> None:
        self.label, self.total, self.what = label, total, what
        self.tty = sys.stdout.isatty()
        self._shown = -1

    def update(self, done: int) -> None:
        if self.tty:
            if done % max(1, self.total // 100) == 0:
                print(
                    f"\r  {self.label:<9} {done:,}/{self.total:,} {self.what}", end="", flush=True
                )
            return
        quarter = 4 * done // max(1, self.total)
        if 0 < quarter < 4 and quarter > self._shown:
            self._shown = quarter
            step(self.label, f"{done:,}/{self.total:,} {self.what}")

    def done(self) -> None:
        if self.tty:
            print("\r", end="")
        step(self.label, f"{self.total:,}/{self.total:,} {self.what}")


async def _wait_scored(
    url: str, target: int, timeout: float, worker: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(worker)
        if (_scraped(url, "tripwire_events_scored_total") or 0) >= target:
            return
        await asyncio.sleep(0.02)
    raise TripwireError(f"the worker did not score {target} events within {timeout:.0f} s")


def _check_alive(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        raise TripwireError(f"the worker exited with code {worker.returncode} (see its log above)")


async def _read_alerts(
    bootstrap: str, topic: str, prefixes: tuple[str, ...], expected: int, timeout: float
) -> list[dict[str, Any]]:
    """The anomaly events on ``topic`` whose input id starts with one of ``prefixes``.

    Reads until ``expected`` distinct events (the worker's ``tripwire_anomalies_total``)
    were seen, or ``timeout`` passed. The count, not the partitions' end offsets, ends
    the read: some Kafka-protocol brokers (Tansu) report the last batch's base offset
    as the end.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
        auto_offset_reset="earliest", group_id=None, **_security(),
    )  # fmt: skip
    await consumer.start()
    alerts: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(alerts) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    event = json.loads(r.value or b"{}")
                    if str(event.get("data", {}).get("input_id", "")).startswith(prefixes):
                        alerts[event["id"]] = event  # de-duplicate redeliveries by id
    finally:
        await consumer.stop()
    if len(alerts) < expected:
        log.warning("read %d of %d anomaly events from %s", len(alerts), expected, topic)
    return list(alerts.values())


def _ms_between(start: str, end: str) -> float:
    def parse(s: str) -> datetime:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds() * 1000.0


def _wait_for_interrupt(bootstrap: str, url: str) -> None:
    sys.stderr.write(
        f"\nbroker {bootstrap} and worker ({url}) keep running; press Ctrl-C to stop.\n"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sys.stderr.write("stopping the worker and the broker\n")
