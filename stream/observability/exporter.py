"""Serve the metrics over HTTP and record a batch's figures in them.

The ``/metrics`` endpoint is prometheus_client's threaded HTTP server on the
worker's own ``CollectorRegistry``: it answers from its own thread, so a busy
event loop or a long model call never delays a scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import Histogram, start_http_server

from stream.metrics import Metrics
from stream.scoring import BatchResult

log = logging.getLogger(__name__)


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.port: int = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every finite ``v``, one increment per bucket.

    Same result as the loop (upper bounds are inclusive, as in ``observe``) at a
    fraction of the cost for a full micro-batch.
    """
    values = values[np.isfinite(values)]
    if not values.size:
        return
    bounds = np.asarray(histogram._upper_bounds)  # noqa: SLF001 - see test_exporter
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts):
        histogram._buckets[i].inc(int(counts[i]))  # noqa: SLF001
    histogram._sum.inc(float(values.sum()))  # noqa: SLF001


def record_batch(metrics: Metrics, result: BatchResult, threshold: float) -> None:
    """Add one delivered micro-batch to the metrics."""
    metrics.events_consumed.inc(result.consumed)
    for reason, n in result.invalid.items():
        metrics.invalid.labels(reason=reason).inc(n)
    if result.scored:
        metrics.events_scored.inc(result.scored)
        metrics.batch_size.observe(result.scored)
        if threshold > 0:
            observe_many(metrics.score_ratio, result.scores / threshold)
    if result.inference_seconds is not None:
        metrics.inference_seconds.observe(result.inference_seconds)
        metrics.inference_cpu_seconds.inc(result.inference_cpu_seconds)
    metrics.anomalies.inc(result.anomalies)
    metrics.suppressed.inc(result.suppressed)
    now = time.time()
    if result.event_ms.size:
        # An event time ahead of our clock (skew) counts as zero latency.
        observe_many(metrics.latency_seconds, np.maximum(now - result.event_ms / 1000.0, 0.0))
    metrics.last_processed.set(now)
