"""One ``tripwire worker`` of its own on a binary backlog, then at one offered rate.

What the per-detector step (:mod:`tripwire.bench.stream_detectors`) and the worker
variants (:mod:`tripwire.bench.stream_variants`) both measure, and the one place
that starts a worker for the run (:func:`serving`, also used by the encodings' runs):

1. a fresh binary topic gets a backlog of ``n`` events (the run's rows,
   ``anomaly_fraction`` anomalous);
2. a worker serving ``model`` (with any extra worker settings) reads it all: its
   throughput, as :func:`tripwire.bench.stream_worker.throughput`;
3. the same worker then gets ``rate`` binary events/s for ``--rate-seconds``: the
   latency from event time to alert of that phase (:func:`fixed_rate_latency`);
4. the worker's last scrape is kept, so a caller can check what its settings did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tripwire.bench.stream_data import create_topics, produce_all, records_for
from tripwire.bench.stream_worker import (
    Sample,
    Window,
    WorkerProcess,
    alert_latencies,
    percentiles,
    throughput,
    wait_until,
)

if TYPE_CHECKING:
    from tripwire.bench.stream import WorkerBench

#: Tansu delays a group join by half the session timeout.
SESSION_TIMEOUT = 4.0


@contextmanager
def serving(
    bench: WorkerBench, model: str, topic: str, name: str, **settings: Any
) -> Iterator[WorkerProcess]:
    """A ``tripwire worker`` serving ``model`` on ``topic``, stopped afterwards.

    ``name`` makes its log, output topics and consumer group its own; ``settings``
    are further worker settings (``TRIPWIRE_<KEY>``), e.g. ``drift=False``.
    """
    worker = WorkerProcess(
        bench.logs / f"worker-{name}.log", bootstrap=bench.bootstrap,
        registry=bench.work / "registry", model_ref=model, input_topic=topic,
        alert_topic=alerts_topic(name), dlq_topic=f"bench-dlq-{name}",
        group_id=f"bench-worker-{name}", max_batch=bench.s.max_batch,
        session_timeout=SESSION_TIMEOUT, **settings,
    )  # fmt: skip
    try:
        yield worker
    finally:
        worker.stop()


def alerts_topic(name: str) -> str:
    """The alert topic of the worker :func:`serving` starts as ``name``."""
    return f"bench-alerts-{name}"


@dataclass(frozen=True)
class Served:
    """What :func:`backlog_then_rate` measured."""

    worker: dict[str, float]
    latency: dict[str, Any]
    #: the worker's unlabelled metrics at the end
    metrics: dict[str, float]


def backlog_then_rate(
    bench: WorkerBench, model: str, n: int, name: str, rate: float,
    settings: Mapping[str, Any] | None = None,
) -> Served:  # fmt: skip
    """Steps 1-4 of the module docstring for a worker started as ``name``."""
    s = bench.s
    topic = f"bench-in-{name}"
    asyncio.run(create_topics(bench.bootstrap, [topic], s.partitions))
    records = records_for("binary", bench.rows, n, s.anomaly_fraction, s.packed_size)
    asyncio.run(produce_all(bench.bootstrap, topic, records))
    with serving(bench, model, topic, name, **(settings or {})) as worker:
        window, _ = throughput(worker, n, timeout=600)
        latency = fixed_rate_latency(bench, worker, topic, n, rate, window.vectors_per_s,
                                     alerts_topic(name))  # fmt: skip
        return Served(worker_stats(window), latency, worker.metrics())


def fixed_rate_latency(
    bench: WorkerBench, worker: WorkerProcess, topic: str, consumed: int, rate: float,
    maximum: float, alerts: str,
) -> dict[str, Any]:  # fmt: skip
    """Offer ``rate`` events/s to ``topic``; event time -> alert latency of that phase.

    ``maximum`` is the worker's measured events/s: one slower than the offered rate
    falls behind, and the wait for it to catch up allows twice as long as that rate takes.
    """
    before = wait_until(worker, consumed, 60)
    offered = bench.offer(topic, rate)
    after = wait_until(worker, consumed + offered.sent, 60 + 2 * offered.sent / maximum)
    window = Window.between(before, after, by_batches=False)
    last = Sample.take(worker)
    expected = int(last.anomalies) if last else 0
    latencies = asyncio.run(alert_latencies(bench.bootstrap, alerts, expected))
    lat = latencies.get(offered.prefix.rstrip("-"), [])
    return {
        "offered": rate, "achieved": offered.achieved, "events": offered.sent,
        "scored_per_s": window.vectors_per_s, "alerts": len(lat),
        "cpu_percent": window.cpu_percent, **percentiles(lat),
    }  # fmt: skip


def worker_stats(window: Window, per_record: int = 1) -> dict[str, float]:
    """What the result keeps of a worker's throughput window."""
    return {
        "vectors": window.vectors, "seconds": window.seconds,
        "vectors_per_s": window.vectors_per_s,
        "records_per_s": window.vectors_per_s / per_record,
        "cpu_percent": window.cpu_percent, "cpu_seconds": window.cpu_seconds,
        "inference_seconds": window.inference_seconds,
        "inference_cpu_seconds": window.inference_cpu_seconds,
        "mean_batch": window.vectors / max(window.batches, 1),
    }  # fmt: skip
