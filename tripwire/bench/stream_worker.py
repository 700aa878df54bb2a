"""The Tripwire worker under test: the real ``tripwire worker`` as a child process.

Throughput: the input topic is filled first, then the worker starts and reads it
all; the rate is the worker's own count (``tripwire_events_consumed_total``)
between the first scrape that saw events and the first that saw them all, timed by
the worker's ``tripwire_last_processed_timestamp_seconds`` (end of its last batch),
so the scrape interval does not blur it. CPU is ``utime + stime`` of the process
from ``/proc/<pid>/stat`` over the same scrapes; memory is ``VmRSS``/``VmHWM``.

Latency: events are offered at a fixed rate, each stamped with its send time as
the Kafka record timestamp (the worker's event time; the producer's 5 ms linger
comes after it, so it counts); an alert's latency is its own record timestamp (set
by the worker's producer when it is handed the alert) minus that event time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from aiokafka import AIOKafkaConsumer

from tripwire.bench.stream_data import Record, Rows, encode, new_producer, vectors
from tripwire.embedded import free_port
from tripwire.stream.kafka.security import env_security_options, worker_child_env

SCRAPE_EVERY = 0.04
#: Producer linger of the offered load (Kafka 4's default): with none, a flood of tiny
#: produce requests made the broker's own p99 several times worse (docs/performance.md).
OFFER_LINGER_MS = 5
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """One ``tripwire worker`` child with its settings as ``TRIPWIRE_*`` variables."""

    def __init__(self, log_path: Path, **settings: Any) -> None:
        self.port = free_port()
        env = worker_child_env()  # the caller's security settings pass
        env.update({f"TRIPWIRE_{k.upper()}": str(v) for k, v in settings.items()})
        env.update(TRIPWIRE_METRICS_PORT=str(self.port), TRIPWIRE_METRICS_HOST="127.0.0.1")
        self._log = open(log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire", "--log-level", "WARNING", "worker"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """Unlabelled samples of ``/metrics`` (empty while it is not up)."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read().decode()
        except OSError:
            return {}
        pairs = (line.rsplit(" ", 1) for line in body.splitlines() if line[:1] not in ("#", ""))
        return {k: float(v) for k, v in pairs if "{" not in k}

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK

    def memory(self) -> dict[str, int]:
        """``VmRSS`` and ``VmHWM`` (peak RSS) in bytes."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
        return out

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"tripwire worker exited with {self.proc.returncode}")

    def stop(self) -> int:
        stop(self.proc, timeout=30)
        self._log.close()
        return self.proc.returncode


@dataclass(frozen=True)
class Sample:
    """One scrape: the worker's counters and the process's CPU seconds."""

    consumed: float
    scored: float
    anomalies: float
    batches: float
    inference_seconds: float
    inference_cpu_seconds: float
    last_batch_at: float
    cpu_seconds: float
    at: float

    @classmethod
    def take(cls, worker: WorkerProcess) -> Sample | None:
        m = worker.metrics()
        if not m:
            return None
        return cls(
            m.get("tripwire_events_consumed_total", 0.0),
            m.get("tripwire_events_scored_total", 0.0),
            m.get("tripwire_anomalies_total", 0.0),
            m.get("tripwire_batch_size_count", 0.0),
            m.get("tripwire_inference_seconds_sum", 0.0),
            m.get("tripwire_inference_cpu_seconds_total", 0.0),
            m.get("tripwire_last_processed_timestamp_seconds", 0.0),
            worker.cpu_seconds(),
            time.time(),
        )


@dataclass(frozen=True)
class Window:
    """The worker between two samples."""

    vectors: float
    seconds: float
    cpu_seconds: float
    inference_seconds: float
    inference_cpu_seconds: float
    batches: float

    @classmethod
    def between(cls, a: Sample, b: Sample, *, by_batches: bool = True) -> Window:
        seconds = (b.last_batch_at - a.last_batch_at) if by_batches else (b.at - a.at)
        return cls(
            b.consumed - a.consumed, seconds, b.cpu_seconds - a.cpu_seconds,
            b.inference_seconds - a.inference_seconds,
            b.inference_cpu_seconds - a.inference_cpu_seconds, b.batches - a.batches,
        )  # fmt: skip

    @property
    def vectors_per_s(self) -> float:
        return self.vectors / self.seconds

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds


def wait_until(worker: WorkerProcess, consumed: float, timeout: float) -> Sample:
    """Scrape until the worker consumed ``consumed`` vectors; the sample that saw it."""
    deadline = time.monotonic() + timeout
    while True:
        worker.check_alive()
        sample = Sample.take(worker)
        if sample is not None and sample.consumed >= consumed:
            return sample
        if time.monotonic() > deadline:
            seen = sample.consumed if sample else 0
            raise TimeoutError(f"worker consumed {seen:.0f} of {consumed:.0f} in {timeout}s")
        time.sleep(SCRAPE_EVERY)


class Stoppable(Protocol):
    """A running profiler: ``stop()`` ends it and returns what it measured."""

    def stop(self) -> Any: ...


#: Starts profiling the process ``pid``; returns what stops it.
StartProfiler = Callable[[int], Stoppable]


def throughput(
    worker: WorkerProcess, total: int, timeout: float, profiler: StartProfiler | None = None
) -> tuple[Window, Any]:
    """The worker's rate over a backlog of ``total`` vectors (from its first batch).

    With ``profiler``, it samples the worker over the same window; the second value
    is what its ``stop()`` returned (``None`` without one).
    """
    first = wait_until(worker, 1, timeout)
    if first.consumed > total / 2:
        raise RuntimeError(
            f"the worker read {first.consumed:.0f} of {total} vectors before the first scrape: "
            "too few to time, use more events"
        )
    running = profiler(worker.proc.pid) if profiler is not None else None
    try:
        last = wait_until(worker, total, timeout)
    finally:
        profile = running.stop() if running is not None else None
    return Window.between(first, last), profile


@dataclass(frozen=True)
class Offered:
    """One fixed-rate phase: what was sent and how the worker did."""

    rate: float
    achieved: float
    sent: int
    prefix: str
    worker: Window | None = None


async def offer(
    bootstrap: str, topic: str, rows: Rows, rate: float, seconds: float, fraction: float,
    prefix: str,
) -> Offered:  # fmt: skip
    """Send ``rate`` binary events/s for ``seconds``, each timestamped when sent."""
    total = max(1, int(rate * seconds))
    records = encode("binary", vectors(rows, 0, total, fraction), 0, prefix=prefix)
    producer = new_producer(bootstrap, linger_ms=OFFER_LINGER_MS)
    await producer.start()
    try:
        started = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            for r in records[sent:due]:
                await _send(producer, topic, r)
            sent = max(sent, due)
            await asyncio.sleep(0.0005)
        await producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return Offered(rate, total / elapsed, total, prefix)


async def _send(producer: Any, topic: str, r: Record) -> None:
    await producer.send(
        topic, r.value, key=r.key, headers=r.headers, timestamp_ms=int(time.time() * 1000)
    )


async def alert_latencies(
    bootstrap: str, topic: str, expected: int, timeout: float = 60.0
) -> dict[str, list[float]]:
    """Latency (ms) of every alert on ``topic``, by input-id prefix (up to the ``-``)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, **env_security_options(),
    )  # fmt: skip
    await consumer.start()
    seen: dict[str, tuple[str, float]] = {}
    try:
        deadline = time.monotonic() + timeout
        while len(seen) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for r in batch:
                    alert = json.loads(r.value)
                    data = alert["data"]
                    if data["event_time"] is None:
                        continue
                    event_ms = _epoch_ms(data["event_time"])
                    seen[alert["id"]] = (data["input_id"], r.timestamp - event_ms)
    finally:
        await consumer.stop()
    by_prefix: dict[str, list[float]] = {}
    for input_id, latency in seen.values():
        by_prefix.setdefault(input_id.split("-", 1)[0], []).append(latency)
    return by_prefix


def _epoch_ms(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000.0


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)), "max": float(a.max()),
    }  # fmt: skip


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, wait, SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
