"""Stream benchmark: a ``tripwire worker``'s capacity on a cluster, in one run.

Steps (everything on one broker, the embedded one unless ``--bootstrap``):

1. Train Tripwire's AE (the tutorial's 50-feature data) into a temporary registry.
2. Fill three input topics with the same events: JSON, binary (one vector per
   record) and packed (``packed_size`` vectors per record), ``anomaly_fraction``
   of them anomalous.
3. ``tripwire worker`` (a child process) reads each topic; after the binary run the
   same worker gets events at fixed offered rates for the alert latency, and its
   RSS is compared with the RSS after warm-up.
4. Every worker variant of ``--variants`` (the defaults, ``--no-drift``, a shadow
   model) serves the AE on binary events, ``--variant-repeats`` interleaved rounds:
   throughput and the alert latency at ``--variant-rate``, and the ratios of
   issues 16 and 17 (:mod:`tripwire.bench.stream_variants`).
5. Every detector of ``--detectors`` is trained, timed in-process and served by a
   worker of its own on binary events: throughput and the alert latency at
   ``--detector-rate`` (:mod:`tripwire.bench.stream_detectors`).

See :mod:`tripwire.bench.stream_worker` for how the worker is measured. The
project's own harness (``python -m benchmarks stream``, docs/performance.md) runs
these steps beside the worker's ceilings and a naive peer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripwire.bench.stream_data import (
    ENCODINGS,
    create_topics,
    demo_rows,
    produce_all,
    records_for,
    train_tripwire_model,
)
from tripwire.bench.stream_detectors import run_detectors
from tripwire.bench.stream_meta import meta
from tripwire.bench.stream_serve import alerts_topic, serving, worker_stats
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.bench.stream_variants import run_variants
from tripwire.bench.stream_worker import (
    Offered,
    Sample,
    StartProfiler,
    Window,
    WorkerProcess,
    alert_latencies,
    offer,
    percentiles,
    throughput,
    wait_until,
)
from tripwire.core.registry import load_scorer

log = logging.getLogger(__name__)


@dataclass
class StreamResult:
    """Everything one run measured (written as stream.json)."""

    meta: dict[str, Any]
    worker: dict[str, dict[str, float]] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)
    detectors: list[dict[str, Any]] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_stream(settings: StreamBenchSettings, command: str = "") -> StreamResult:
    """Run the whole benchmark (module docstring); stop everything it started."""
    result = StreamResult(meta=meta(asdict(settings), command))
    with WorkerBench.started(settings, result) as bench:
        bench.prepare()
        if not settings.detectors_only:
            bench.workers()
            bench.variants()
        bench.detectors()
    result.meta["load_average_end"] = os.getloadavg()
    return result


def start_broker(stack: ExitStack, log_path: Path) -> str:
    """The embedded broker, stopped with ``stack``; its bootstrap address."""
    from tripwire.embedded import EmbeddedBroker

    broker = stack.enter_context(EmbeddedBroker(log_path=log_path))
    log.info("embedded broker on %s", broker.bootstrap)
    return broker.bootstrap


class WorkerBench:
    """The steps of one run, sharing topics, the model and the result.

    Subclasses add steps (``benchmarks.stream.run``) and may profile the worker
    (:meth:`profiler`) or time the broker alone at each offered rate
    (:meth:`broker_latency`); by default neither is done.
    """

    def __init__(
        self, settings: StreamBenchSettings, bootstrap: str, work: Path, logs: Path,
        result: StreamResult,
    ) -> None:  # fmt: skip
        self.s = settings
        self.bootstrap = bootstrap
        self.work = work
        self.logs = logs
        self.result = result
        tag = uuid.uuid4().hex[:8]
        self.topics = {enc: f"bench-{enc}-{tag}" for enc in ENCODINGS}
        self.tag = tag
        self.counts = {"json": settings.events, "binary": settings.events,
                       "packed": settings.packed_events}  # fmt: skip
        #: Detector spec -> model ref of the models trained so far (reused by the detectors).
        self.trained: dict[str, str] = {}

    @classmethod
    @contextmanager
    def started(cls, settings: StreamBenchSettings, result: StreamResult) -> Iterator[Any]:
        """An instance on the configured (or a fresh embedded) broker and a temp dir."""
        out = Path(settings.out)
        (out / "logs").mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            bootstrap = settings.bootstrap or start_broker(stack, out / "logs" / "tansu.log")
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-bench-")))
            yield cls(settings, bootstrap, work, out / "logs", result)

    def prepare(self) -> None:
        """The events' rows; unless ``detectors_only``, the AE and the three topics."""
        s = self.s
        self.rows = demo_rows(s.seed)
        if s.detectors_only:
            return
        log.info("training the models")
        self.model_ref = train_tripwire_model(self.work / "registry", s.seed)
        self.trained["ae"] = self.model_ref
        self.scorer = load_scorer(self.work / "registry", self.model_ref)
        self.prepare_models()
        asyncio.run(create_topics(self.bootstrap, list(self.topics.values()), s.partitions))
        for enc, topic in self.topics.items():
            records = records_for(enc, self.rows, self.counts[enc], s.anomaly_fraction,
                                  s.packed_size)  # fmt: skip
            rate = asyncio.run(produce_all(self.bootstrap, topic, records))
            log.info("produced %d %s records (%.0f/s)", len(records), enc, rate)

    def prepare_models(self) -> None:
        """Train further models before the topics are filled (none here)."""

    def n_records(self, enc: str) -> int:
        n = self.counts[enc]
        return -(-n // self.s.packed_size) if enc == "packed" else n

    def workers(self) -> None:
        for enc in ("json", "packed"):
            with worker_for(self, enc) as worker:
                self._throughput(worker, enc)
        with worker_for(self, "binary") as worker:
            window = self._throughput(worker, "binary")
            self._latency(worker, window.vectors_per_s)

    def variants(self) -> None:
        """Every worker variant of ``--variants``, interleaved rounds (stream_variants)."""
        if self.s.variants:
            run_variants(self)

    def detectors(self) -> None:
        """Every detector of ``--detectors``, in-process and in a worker of its own."""
        run_detectors(self)

    def profiler(self, enc: str) -> StartProfiler | None:
        """What samples the worker during its ``enc`` throughput run (none here)."""
        return None

    def record_profile(self, enc: str, profile: Any) -> None:
        """Keep what :meth:`profiler` measured (nothing here)."""

    def broker_latency(self, rate: float) -> list[float]:
        """Latencies (ms) of the broker alone at ``rate`` (not measured here)."""
        return []

    def _throughput(self, worker: WorkerProcess, enc: str) -> Window:
        window, profile = throughput(worker, self.counts[enc], timeout=900,
                                     profiler=self.profiler(enc))  # fmt: skip
        if profile is not None:
            self.record_profile(enc, profile)
        per_record = self.s.packed_size if enc == "packed" else 1
        self.result.worker[enc] = worker_stats(window, per_record)
        log.info("worker %s: %.0f vectors/s at %.0f%% CPU", enc, window.vectors_per_s,
                 window.cpu_percent)  # fmt: skip
        return window

    def _latency(self, worker: WorkerProcess, maximum: float) -> None:
        s = self.s
        warm = worker.memory()
        consumed = self.counts["binary"]
        phases: list[tuple[Offered, list[float]]] = []
        for rate in s.parse_rates(maximum):
            floor = self.broker_latency(rate)
            before = wait_until(worker, consumed, 60)
            offered = self.offer(self.topics["binary"], rate)
            consumed += offered.sent
            after = wait_until(worker, consumed, 120)
            window = Window.between(before, after, by_batches=False)
            phases.append((Offered(rate, offered.achieved, offered.sent, offered.prefix, window),
                           floor))  # fmt: skip
            log.info("offered %.0f/s (achieved %.0f/s)", rate, offered.achieved)
        end = worker.memory()
        last = Sample.take(worker)
        expected = int(last.anomalies) if last else 0
        latencies = asyncio.run(alert_latencies(self.bootstrap, self.alerts("binary"), expected))
        for p, floor in phases:
            lat = latencies.get(p.prefix.rstrip("-"), [])
            assert p.worker is not None
            self.result.latency.append({
                "offered": p.rate, "achieved": p.achieved, "events": p.sent, "alerts": len(lat),
                "cpu_percent": p.worker.cpu_percent, **percentiles(lat),
                "broker": percentiles(floor),
            })  # fmt: skip
        self.result.memory = {
            "rss_after_warmup": warm["VmRSS"], "rss_end": end["VmRSS"], "peak_rss": end["VmHWM"],
            "growth": (end["VmRSS"] - warm["VmRSS"]) / warm["VmRSS"],
        }  # fmt: skip

    def offer(self, topic: str, rate: float) -> Offered:
        """Offer binary events to ``topic`` at ``rate`` for ``rate_seconds``."""
        s = self.s
        return asyncio.run(offer(self.bootstrap, topic, self.rows, rate, s.rate_seconds,
                                 s.anomaly_fraction, prefix=f"r{round(rate)}-"))  # fmt: skip

    def alerts(self, enc: str) -> str:
        return alerts_topic(f"{enc}-{self.tag}")


def worker_for(bench: WorkerBench, enc: str) -> AbstractContextManager[WorkerProcess]:
    """A ``tripwire worker`` on ``enc``'s topic, stopped afterwards."""
    return serving(bench, bench.model_ref.split("@")[0], bench.topics[enc], f"{enc}-{bench.tag}")
