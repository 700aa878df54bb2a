"""The benchmark's own clients over TLS: topics, producer, ceiling A and the latency probe.

They read the worker's ``TRIPWIRE_*`` security variables (as the worker children
the benchmark starts do), so one set of variables points the whole benchmark at a
secured cluster; here the TLS listener of tests/fixtures/tls.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
import pytest

from benchmarks.stream.ceilings import raw_aiokafka
from benchmarks.stream.probe import run_probe
from tests.fixtures.tls import TlsBroker
from tripwire.bench.stream_data import Rows, create_topics, produce_all, records_for
from tripwire.bench.stream_worker import offer
from tripwire.stream.kafka.security import BrokerSecurityError
from tripwire.stream.wire.codecs import Codec

pytestmark = pytest.mark.integration

D = 8
CODEC = Codec([f"f{i}" for i in range(D)], 1_000_000)


def rows() -> Rows:
    rng = np.random.default_rng(1)
    normal = rng.normal(5.0, 1.0, size=(40, D)).astype(np.float32)
    return Rows(normal, rng.uniform(-5, 5, size=(10, D)).astype(np.float32), normal)


@pytest.fixture
def tls_env(tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch) -> TlsBroker:
    for name, value in tls_broker.env().items():
        monkeypatch.setenv(name, value)
    return tls_broker


def test_ceiling_a_reads_every_record_over_tls(tls_env: TlsBroker) -> None:
    topic = f"bench-tls-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topics(tls_env.bootstrap, [topic], 2))
    records = records_for("binary", rows(), 200, 0.1, packed=100)
    asyncio.run(produce_all(tls_env.bootstrap, topic, records))
    rate = asyncio.run(raw_aiokafka(tls_env.bootstrap, topic, len(records), CODEC, timeout=60))
    assert rate.records == len(records) and rate.vectors == 200


def test_the_probe_child_reads_over_tls(tls_env: TlsBroker, tmp_path: Path) -> None:
    topic = f"probe-tls-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topics(tls_env.bootstrap, [topic], 2))
    sent: list[int] = []

    def send() -> None:
        offered = asyncio.run(offer(tls_env.bootstrap, topic, rows(), 200, 0.25, 0.1, "p-"))
        sent.append(offered.sent)

    latencies = run_probe(tls_env.bootstrap, topic, 50, tmp_path, send, fetch_max_wait_ms=10)
    assert sent == [50] and len(latencies) == 50


def test_a_wrong_ca_stops_the_benchmark_in_one_line(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in tls_broker.env(tls_broker.pki.wrong_ca).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BrokerSecurityError, match="is not signed by a CA in"):
        asyncio.run(create_topics(tls_broker.bootstrap, ["never"], 1))


@pytest.mark.slow
def test_the_bench_worker_and_its_alert_reader_meet_the_tls_cluster(
    tls_env: TlsBroker, tmp_path: Path
) -> None:
    """The benchmark's worker child inherits the security variables; alerts read back."""
    from tests.fixtures.registry import anomalous_rows, normal_rows, publish_model
    from tripwire.bench.stream_worker import WorkerProcess, alert_latencies

    published = publish_model(tmp_path / "registry")
    topic = f"bench-w-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topics(tls_env.bootstrap, [topic, f"{topic}.alerts", f"{topic}.dlq"], 1))
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=tls_env.bootstrap, registry=published.root,
        model_ref=f"{published.name}@production", input_topic=topic,
        alert_topic=f"{topic}.alerts", dlq_topic=f"{topic}.dlq", group_id=f"g-{topic}",
    )  # fmt: skip
    try:
        normal = normal_rows(40, seed=3)
        bench_rows = Rows(normal, anomalous_rows(10, seed=4), normal)
        asyncio.run(offer(tls_env.bootstrap, topic, bench_rows, 100, 0.5, 0.5, "t-"))
        latencies = asyncio.run(alert_latencies(tls_env.bootstrap, f"{topic}.alerts", 1, 90))
        worker.check_alive()
    finally:
        code = worker.stop()
    assert latencies.get("t") and all(v >= 0 for v in latencies["t"])
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
