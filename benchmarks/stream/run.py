"""The project's stream benchmark: the worker beside its ceilings and a naive peer.

The worker-only steps of ``tripwire bench stream`` (:mod:`tripwire.bench.stream`)
plus, on the same broker and the same events:

- ceiling A: a plain aiokafka consumer group reads and decodes each topic
  (:mod:`benchmarks.stream.ceilings`);
- ceiling C: the model scores micro-batches of ``max_batch`` in-process;
- ceiling B: a stock faust agent doing nothing reads the binary topic, and the naive
  peer: a faust agent scoring one binary event at a time with PyOD
  (:mod:`benchmarks.stream.peers`);
- the broker alone at each offered rate (:mod:`benchmarks.stream.probe`), and py-spy
  samples of the worker during its binary and packed runs
  (:mod:`benchmarks.stream.profile`);
- the worker variants of ``--variants`` (:mod:`tripwire.bench.stream_variants`);
- every detector of ``--detectors`` in a worker of its own and in-process
  (:mod:`tripwire.bench.stream_detectors`), with issue 12's speed targets.

docs/performance.md has the results and what they mean.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.common import code_revision
from benchmarks.stream.ceilings import Rate, inference, raw_aiokafka
from benchmarks.stream.peers import PeerResult, run_peer, train_pyod_model
from benchmarks.stream.probe import run_probe
from benchmarks.stream.profile import Profile, Profiler
from tripwire.bench.quality import torch_threads
from tripwire.bench.stream import StreamResult, WorkerBench
from tripwire.bench.stream_data import create_topics, vectors
from tripwire.bench.stream_meta import meta
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.bench.stream_worker import StartProfiler
from tripwire.core.errors import ConfigError
from tripwire.stream.kafka.app import MIN_FETCH_WAIT
from tripwire.stream.settings import WorkerSettings
from tripwire.stream.wire.codecs import Codec

log = logging.getLogger(__name__)

#: The worker's default micro-batch wait (its fetch long-poll too, see stream.kafka.app).
WORKER_MAX_WAIT = WorkerSettings().max_wait


@dataclass(frozen=True)
class HarnessSettings(StreamBenchSettings):
    """Options of ``python -m benchmarks stream`` (each also a ``TRIPWIRE_*`` env var)."""

    bare_events: int = field(
        default=30_000, metadata={"help": "events read by the bare faust agent (ceiling B)"}
    )
    naive_events: int = field(
        default=2_000, metadata={"help": "events scored by the naive PyOD faust agent"}
    )
    profile: bool = field(
        default=True,
        metadata={"help": "sample the worker with py-spy during its binary and packed runs "
                  "(skipped when py-spy is not installed)"},
    )  # fmt: skip
    update_doc: str = field(
        default="",
        metadata={
            "help": "markdown file whose results section (between the bench-stream "
            "markers) is replaced by this run's tables; empty = none",
            "metavar": "PATH",
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_counts("bare_events", "naive_events")
        if self.detectors_only:
            raise ConfigError("detectors_only: the harness runs every step; for the "
                              "per-detector table alone use tripwire bench stream")  # fmt: skip


@dataclass
class HarnessResult(StreamResult):
    """Everything one harness run measured (written as stream.json)."""

    ceiling_a: dict[str, dict[str, float]] = field(default_factory=dict)
    ceiling_b: dict[str, float] = field(default_factory=dict)
    ceiling_c: dict[str, float] = field(default_factory=dict)
    naive: dict[str, float] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_harness(settings: HarnessSettings, command: str = "") -> HarnessResult:
    """Run every step (module docstring); stop everything it started."""
    result = HarnessResult(meta=meta(asdict(settings), command))
    result.meta["code"] = code_revision()
    with Harness.started(settings, result) as bench:
        bench.prepare()
        bench.ceilings()
        bench.peers()
        bench.workers()
        bench.variants()
        bench.detectors()
    result.meta["load_average_end"] = os.getloadavg()
    return result


class Harness(WorkerBench):
    """The worker bench with ceilings, peers, the broker floor and profiles."""

    s: HarnessSettings
    result: HarnessResult

    def prepare_models(self) -> None:
        self.pyod_path = self.work / "pyod.pkl"
        train_pyod_model(self.rows, self.pyod_path, self.s.seed)

    def ceilings(self) -> None:
        codec = Codec(self.scorer.feature_names, 1_000_000)
        for enc, topic in self.topics.items():
            rate = asyncio.run(raw_aiokafka(self.bootstrap, topic, self.n_records(enc), codec))
            self.result.ceiling_a[enc] = _rate(rate)
            log.info("ceiling A %s: %.0f records/s", enc, rate.records_per_s)
        X = vectors(self.rows, 0, 64 * self.s.max_batch, self.s.anomaly_fraction)
        with torch_threads(1):  # as the worker (stream.worker.single_threaded_inference)
            c = inference(self.scorer, X, self.s.max_batch)
        self.result.ceiling_c = {**_rate(c), "batch": self.s.max_batch, "torch_threads": 1}
        log.info("ceiling C: %.0f vectors/s", c.vectors_per_s)

    def peers(self) -> None:
        s, topic = self.s, self.topics["binary"]
        bare = run_peer("bare", self.bootstrap, topic, s.bare_events, self.logs, timeout=600)
        self.result.ceiling_b = _peer(bare)
        log.info("ceiling B: %.0f events/s", bare.events_per_s)
        alerts = f"bench-naive-alerts-{self.tag}"
        asyncio.run(create_topics(self.bootstrap, [alerts], s.partitions))
        naive = run_peer("naive", self.bootstrap, topic, s.naive_events, self.logs,
                         timeout=600, model=self.pyod_path, alerts=alerts)  # fmt: skip
        self.result.naive = _peer(naive)
        log.info("naive peer: %.0f events/s", naive.events_per_s)

    def profiler(self, enc: str) -> StartProfiler | None:
        if not self.s.profile or enc == "json":
            return None
        path = self.logs / f"pyspy-{enc}.txt"
        return lambda pid: Profiler(pid, path)

    def record_profile(self, enc: str, profile: Profile) -> None:
        self.result.profiles[enc] = {
            "samples": profile.samples, "groups": profile.groups, "top": profile.top,
        }  # fmt: skip

    def broker_latency(self, rate: float) -> list[float]:
        """The broker's own latency at ``rate``: a plain reader of a topic of its own."""
        reference = f"bench-latref-{self.tag}"
        if not getattr(self, "_reference_ready", False):
            asyncio.run(create_topics(self.bootstrap, [reference], self.s.partitions))
            self._reference_ready = True
        n = max(1, int(rate * self.s.rate_seconds))
        wait_ms = round(1000 * max(WORKER_MAX_WAIT, MIN_FETCH_WAIT))
        lat = run_probe(self.bootstrap, reference, n, self.logs,
                        lambda: self.offer(reference, rate), fetch_max_wait_ms=wait_ms)  # fmt: skip
        return lat[len(lat) // 10 :]  # the first tenth: the reader's fetches settling


def _rate(r: Rate) -> dict[str, float]:
    return {
        "records": r.records, "vectors": r.vectors, "seconds": r.seconds,
        "records_per_s": r.records_per_s, "vectors_per_s": r.vectors_per_s,
        "cpu_percent": r.cpu_percent,
    }  # fmt: skip


def _peer(r: PeerResult) -> dict[str, float]:
    return {"events": r.events, "seconds": r.seconds, "events_per_s": r.events_per_s,
            "cpu_percent": r.cpu_percent}  # fmt: skip
