"""Stream benchmark: the worker beside its ceilings and a naive peer, in one run.

Steps (everything on one broker, the embedded one unless ``--bootstrap``):

1. Train Tripwire's AE (the tutorial's 50-feature data) into a temporary registry,
   and PyOD's ``AutoEncoder`` for the naive peer.
2. Fill three input topics with the same events: JSON, binary (one vector per
   record) and packed (``packed_size`` vectors per record), ``anomaly_fraction``
   of them anomalous.
3. Ceiling A: a plain aiokafka consumer group reads and decodes each topic.
   Ceiling C: the model scores micro-batches of ``max_batch`` in-process.
   Ceiling B: a stock faust agent doing nothing reads the binary topic.
   Naive peer: a faust agent scoring one binary event at a time with PyOD.
4. ``tripwire worker`` (a child process) reads each topic; after the binary run the
   same worker gets events at fixed offered rates for the alert latency, and its
   RSS is compared with the RSS after warm-up.

See :mod:`tripwire.bench.stream_worker` for how the worker is measured and
docs/performance.md for the results and what they mean.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripwire.bench.stream_ceilings import Rate, inference, raw_aiokafka
from tripwire.bench.stream_data import (
    ENCODINGS,
    create_topics,
    demo_rows,
    produce_all,
    records_for,
    train_pyod_model,
    train_tripwire_model,
    vectors,
)
from tripwire.bench.stream_faust import PeerResult, run_peer
from tripwire.bench.stream_meta import meta
from tripwire.bench.stream_probe import run_probe
from tripwire.bench.stream_worker import (
    Offered,
    Sample,
    Window,
    WorkerProcess,
    alert_latencies,
    offer,
    percentiles,
    throughput,
    wait_until,
)
from tripwire.core.errors import ConfigError
from tripwire.core.registry import load_scorer
from tripwire.stream.kafka.app import MIN_FETCH_WAIT
from tripwire.stream.settings import WorkerSettings
from tripwire.stream.wire.codecs import Codec

log = logging.getLogger(__name__)

#: Tansu delays a group join by half the session timeout.
SESSION_TIMEOUT = 4.0
#: The worker's default micro-batch wait (its fetch long-poll too, see tripwire.stream.kafka.app).
WORKER_MAX_WAIT = WorkerSettings().max_wait


@dataclass(frozen=True)
class StreamBenchSettings:
    """Options of ``tripwire bench stream`` (each also a ``TRIPWIRE_*`` env var)."""

    bootstrap: str = field(
        default="", metadata={"help": "Kafka cluster to use (empty: the embedded broker)"}
    )
    out: str = field(
        default="out/bench/stream",
        metadata={"help": "directory for stream.md, stream.json and logs", "metavar": "DIR"},
    )
    events: int = field(
        default=300_000, metadata={"help": "events of the JSON and binary runs (and ceiling A)"}
    )
    packed_events: int = field(
        default=1_000_000, metadata={"help": "feature vectors of the packed run"}
    )
    packed_size: int = field(default=100, metadata={"help": "vectors per packed record"})
    bare_events: int = field(
        default=30_000, metadata={"help": "events read by the bare faust agent (ceiling B)"}
    )
    naive_events: int = field(
        default=2_000, metadata={"help": "events scored by the naive PyOD faust agent"}
    )
    partitions: int = field(default=3, metadata={"help": "partitions of every input topic"})
    anomaly_fraction: float = field(
        default=0.01, metadata={"help": "share of anomalous events (they make alerts)"}
    )
    rates: tuple[str, ...] = field(
        default=("1000", "5000", "80%"),
        metadata={
            "help": "offered rates of the latency runs, events/s or N%% of the measured "
            "binary maximum",
            "metavar": "LIST",
        },
    )
    rate_seconds: float = field(default=6.0, metadata={"help": "seconds of each latency run"})
    max_batch: int = field(default=256, metadata={"help": "the worker's --max-batch"})
    profile: bool = field(
        default=True,
        metadata={"help": "sample the worker with py-spy during its binary and packed runs "
                  "(skipped when py-spy is not installed)"},
    )  # fmt: skip
    seed: int = field(default=0, metadata={"help": "seed of the data and the models"})
    update_doc: str = field(
        default="",
        metadata={
            "help": "markdown file whose results section (between the bench-stream "
            "markers) is replaced by this run's tables; empty = none",
            "metavar": "PATH",
        },
    )

    def __post_init__(self) -> None:
        counts = {k: getattr(self, k) for k in (
            "events", "packed_events", "packed_size", "bare_events", "naive_events",
            "partitions", "max_batch",
        )}  # fmt: skip
        for name, value in counts.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0.0 < self.anomaly_fraction < 1.0 or self.rate_seconds <= 0:
            raise ConfigError("anomaly_fraction must be in (0, 1) and rate_seconds > 0")
        self.parse_rates(1.0)

    def parse_rates(self, maximum: float) -> list[float]:
        """``rates`` in events/s, ``N%`` taken of ``maximum``."""
        out = []
        for raw in self.rates:
            try:
                rate = maximum * float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
            except ValueError:
                raise ConfigError(f"rates: {raw!r} is neither events/s nor N%") from None
            if rate <= 0:
                raise ConfigError(f"rates: {raw!r} must be > 0")
            out.append(rate)
        return out


@dataclass
class StreamResult:
    """Everything one run measured (written as stream.json)."""

    meta: dict[str, Any]
    ceiling_a: dict[str, dict[str, float]] = field(default_factory=dict)
    ceiling_b: dict[str, float] = field(default_factory=dict)
    ceiling_c: dict[str, float] = field(default_factory=dict)
    naive: dict[str, float] = field(default_factory=dict)
    worker: dict[str, dict[str, float]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_stream(settings: StreamBenchSettings, command: str = "") -> StreamResult:
    """Run the whole benchmark (module docstring); stop everything it started."""
    out = Path(settings.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    result = StreamResult(meta=meta(asdict(settings), command))
    with ExitStack() as stack:
        bootstrap = settings.bootstrap or _start_broker(stack, out / "logs" / "tansu.log")
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-bench-")))
        bench = _Bench(settings, bootstrap, work, out / "logs", result)
        bench.prepare()
        bench.ceilings()
        bench.peers()
        bench.workers()
    result.meta["load_average_end"] = os.getloadavg()
    return result


def _start_broker(stack: ExitStack, log_path: Path) -> str:
    from tripwire.embedded import EmbeddedBroker

    broker = stack.enter_context(EmbeddedBroker(log_path=log_path))
    log.info("embedded broker on %s", broker.bootstrap)
    return broker.bootstrap


class _Bench:
    """The steps of one run, sharing topics, models and the result."""

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

    def prepare(self) -> None:
        s = self.s
        self.rows = demo_rows(s.seed)
        log.info("training the models")
        self.model_ref = train_tripwire_model(self.work / "registry", s.seed)
        self.scorer = load_scorer(self.work / "registry", self.model_ref)
        self.pyod_path = self.work / "pyod.pkl"
        train_pyod_model(self.rows, self.pyod_path, s.seed)
        asyncio.run(create_topics(self.bootstrap, list(self.topics.values()), s.partitions))
        for enc, topic in self.topics.items():
            records = records_for(enc, self.rows, self.counts[enc], s.anomaly_fraction,
                                  s.packed_size)  # fmt: skip
            rate = asyncio.run(produce_all(self.bootstrap, topic, records))
            log.info("produced %d %s records (%.0f/s)", len(records), enc, rate)

    def n_records(self, enc: str) -> int:
        n = self.counts[enc]
        return -(-n // self.s.packed_size) if enc == "packed" else n

    def ceilings(self) -> None:
        codec = Codec(self.scorer.feature_names, 1_000_000)
        for enc, topic in self.topics.items():
            rate = asyncio.run(raw_aiokafka(self.bootstrap, topic, self.n_records(enc), codec))
            self.result.ceiling_a[enc] = _rate(rate)
            log.info("ceiling A %s: %.0f records/s", enc, rate.records_per_s)
        X = vectors(self.rows, 0, 64 * self.s.max_batch, self.s.anomaly_fraction)
        with _torch_threads(1):  # as the worker (tripwire.stream.worker.single_threaded_inference)
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

    def workers(self) -> None:
        for enc in ("json", "packed"):
            with _worker(self, enc) as worker:
                self._throughput(worker, enc)
        with _worker(self, "binary") as worker:
            window = self._throughput(worker, "binary")
            self._latency(worker, window.vectors_per_s)

    def _throughput(self, worker: WorkerProcess, enc: str) -> Window:
        profile_to = self.logs / f"pyspy-{enc}.txt" if self.s.profile and enc != "json" else None
        window, profile = throughput(worker, self.counts[enc], timeout=900, profile_to=profile_to)
        if profile is not None:
            self.result.profiles[enc] = {
                "samples": profile.samples, "groups": profile.groups, "top": profile.top,
            }  # fmt: skip
        per_record = self.s.packed_size if enc == "packed" else 1
        self.result.worker[enc] = {
            "vectors": window.vectors, "seconds": window.seconds,
            "vectors_per_s": window.vectors_per_s,
            "records_per_s": window.vectors_per_s / per_record,
            "cpu_percent": window.cpu_percent, "cpu_seconds": window.cpu_seconds,
            "inference_seconds": window.inference_seconds,
            "inference_cpu_seconds": window.inference_cpu_seconds,
            "mean_batch": window.vectors / max(window.batches, 1),
        }  # fmt: skip
        log.info("worker %s: %.0f vectors/s at %.0f%% CPU", enc, window.vectors_per_s,
                 window.cpu_percent)  # fmt: skip
        return window

    def _latency(self, worker: WorkerProcess, maximum: float) -> None:
        s = self.s
        warm = worker.memory()
        consumed = self.counts["binary"]
        reference = f"bench-latref-{self.tag}"
        asyncio.run(create_topics(self.bootstrap, [reference], s.partitions))
        phases: list[tuple[Offered, list[float]]] = []
        for rate in s.parse_rates(maximum):
            floor = self._probe(reference, rate)
            before = wait_until(worker, consumed, 60)
            offered = self._offer(self.topics["binary"], rate)
            consumed += offered.sent
            after = wait_until(worker, consumed, 120)
            window = Window.between(before, after, by_batches=False)
            phases.append((Offered(rate, offered.achieved, offered.sent, offered.prefix, window),
                           floor))  # fmt: skip
            log.info("offered %.0f/s (achieved %.0f/s)", rate, offered.achieved)
        end = worker.memory()
        last = Sample.take(worker)
        expected = int(last.anomalies) if last else 0
        latencies = asyncio.run(alert_latencies(self.bootstrap, self._alerts("binary"), expected))
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

    def _offer(self, topic: str, rate: float) -> Offered:
        s = self.s
        return asyncio.run(offer(self.bootstrap, topic, self.rows, rate, s.rate_seconds,
                                 s.anomaly_fraction, prefix=f"r{round(rate)}-"))  # fmt: skip

    def _probe(self, topic: str, rate: float) -> list[float]:
        """The broker's own latency at ``rate``: a plain reader of ``topic`` (stream_probe)."""
        n = max(1, int(rate * self.s.rate_seconds))
        wait_ms = round(1000 * max(WORKER_MAX_WAIT, MIN_FETCH_WAIT))
        lat = run_probe(self.bootstrap, topic, n, self.logs, lambda: self._offer(topic, rate),
                        fetch_max_wait_ms=wait_ms)  # fmt: skip
        return lat[len(lat) // 10 :]  # the first tenth: the reader's fetches settling

    def _alerts(self, enc: str) -> str:
        return f"bench-alerts-{enc}-{self.tag}"


@contextmanager
def _worker(bench: _Bench, enc: str) -> Iterator[WorkerProcess]:
    """A ``tripwire worker`` on ``enc``'s topic, stopped afterwards."""
    b = bench
    worker = WorkerProcess(
        b.logs / f"worker-{enc}.log", bootstrap=b.bootstrap, registry=b.work / "registry",
        model_ref=b.model_ref.split("@")[0], input_topic=b.topics[enc],
        alert_topic=b._alerts(enc), dlq_topic=f"bench-dlq-{enc}-{b.tag}",
        group_id=f"bench-worker-{enc}-{b.tag}", max_batch=b.s.max_batch,
        session_timeout=SESSION_TIMEOUT,
    )  # fmt: skip
    try:
        yield worker
    finally:
        worker.stop()


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rate(r: Rate) -> dict[str, float]:
    return {
        "records": r.records, "vectors": r.vectors, "seconds": r.seconds,
        "records_per_s": r.records_per_s, "vectors_per_s": r.vectors_per_s,
        "cpu_percent": r.cpu_percent,
    }  # fmt: skip


def _peer(r: PeerResult) -> dict[str, float]:
    return {"events": r.events, "seconds": r.seconds, "events_per_s": r.events_per_s,
            "cpu_percent": r.cpu_percent}  # fmt: skip
