"""``tripwire worker`` against a TLS listener, a wrong CA, an expired certificate and SASL.

The worker is the real subprocess (tests/stream/harness.py), its security set by the
``TRIPWIRE_*`` variables an operator would set. A certificate that cannot verify
must end the start with exit code 2 and one line naming the problem: no traceback,
no retries. SASL: Tansu 0.6.0 offers SCRAM only, and with its in-memory storage no
user can be created once ``--authentication`` is on (docs/deploy.md), so the real
broker can only refuse a SCRAM login; it does, and that must read as such too.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from tests.fixtures.registry import Published, anomalous_rows, normal_rows, publish_model
from tests.fixtures.tls import TlsBroker, TlsProxy
from tests.stream.harness import WorkerProcess
from tripwire.core.registry import load_scorer
from tripwire.embedded import EmbeddedBroker, free_port
from tripwire.stream.kafka.topics import create_topics
from tripwire.stream.wire.encodings import Events, encoding

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tls_options(tls_broker: TlsBroker) -> dict[str, Any]:
    import ssl

    context = ssl.create_default_context(cafile=str(tls_broker.pki.ca))
    return {
        "bootstrap_servers": tls_broker.bootstrap,
        "security_protocol": "SSL",
        "ssl_context": context,
    }


async def _create(options: dict[str, Any], names: list[str], partitions: int = 2) -> None:
    rest = {k: v for k, v in options.items() if k != "bootstrap_servers"}
    await create_topics(options["bootstrap_servers"], dict.fromkeys(names, partitions), **rest)


async def _produce(options: dict[str, Any], topic: str, rows: np.ndarray) -> None:
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        events = Events(rows, ids=[f"e{i}" for i in range(len(rows))],
                        keys=[f"k{i % 5}" for i in range(len(rows))])  # fmt: skip
        for r in encoding("json").encode(events):
            await producer.send(topic, r.value, key=r.key)
        await producer.flush()
    finally:
        await producer.stop()


async def _consume(options: dict[str, Any], topic: str, n: int, timeout: float) -> list:
    consumer = AIOKafkaConsumer(
        topic, group_id=None, auto_offset_reset="earliest", **options
    )  # fmt: skip
    await consumer.start()
    out: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(batch)
    finally:
        await consumer.stop()
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    return publish_model(tmp_path_factory.mktemp("tls-registry") / "registry")


def worker_env(tls_broker: TlsBroker, cafile: Path, topic: str) -> dict[str, Any]:
    return {
        "security_protocol": "SSL", "ssl_cafile": cafile, "input_topic": topic,
        "alert_topic": f"{topic}.alerts", "dlq_topic": f"{topic}.dlq",
        "scores_topic": f"{topic}.scores", "group_id": f"g-{topic}",
    }  # fmt: skip


def test_the_worker_scores_and_alerts_over_tls(
    tls_broker: TlsBroker, published: Published, tmp_path: Path
) -> None:
    options = tls_options(tls_broker)
    topic = f"tls-in-{uuid.uuid4().hex[:8]}"
    asyncio.run(_create(options, [topic]))
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=tls_broker.bootstrap, registry=published.root,
        model_ref=published.name, commit_interval=0.5,
        **worker_env(tls_broker, tls_broker.pki.ca, topic),
    )  # fmt: skip
    try:
        rows = np.vstack([normal_rows(90, seed=21), anomalous_rows(10, seed=22)])
        asyncio.run(_produce(options, topic, rows))
        scores = asyncio.run(_consume(options, f"{topic}.scores", len(rows), 90))
        assert {json.loads(r.value)["id"] for r in scores} == {f"e{i}" for i in range(100)}
        want = load_scorer(published.root, f"{published.name}@production").score(rows)
        flagged = {f"e{i}" for i in np.flatnonzero(want.is_anomaly)}
        alerts = asyncio.run(_consume(options, f"{topic}.alerts", len(flagged), 30))
        assert flagged and {json.loads(r.value)["data"]["input_id"] for r in alerts} == flagged
        assert worker.metric("tripwire_broker_up") == 1.0
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]


def _start_failure(worker: WorkerProcess, timeout: float = 60.0) -> str:
    """Wait for a worker that must refuse to start; return its log."""
    try:
        code = worker.proc.wait(timeout)
    finally:
        worker.stop()
    log = worker.log()
    assert code == 2, log[-3000:]
    assert "Traceback" not in log and "retrying" not in log, log[-3000:]
    return log


@pytest.mark.parametrize(
    ("listener", "ca", "says"),
    [
        ("good", "wrong_ca", "is not signed by a CA in"),
        ("expired", "ca", "has expired"),
        ("other_host", "ca", "is not for host 127.0.0.1"),
    ],
)
def test_the_worker_refuses_a_certificate_it_cannot_verify_in_one_line(
    tls_broker: TlsBroker,
    tls_listener: Callable[[str], str],
    published: Published,
    tmp_path: Path,
    listener: str,
    ca: str,
    says: str,
) -> None:
    bootstrap = tls_broker.bootstrap if listener == "good" else tls_listener(listener)
    worker = WorkerProcess(
        tmp_path / "worker.log", bootstrap=bootstrap, registry=published.root,
        model_ref=published.name, connect_timeout=0,  # 0: would retry forever
        **worker_env(tls_broker, getattr(tls_broker.pki, ca), f"t-{uuid.uuid4().hex[:6]}"),
    )  # fmt: skip
    log = _start_failure(worker)
    errors = [line for line in log.splitlines() if "tripwire worker: error:" in line]
    assert len(errors) == 1 and says in errors[0] and bootstrap in errors[0], log[-3000:]


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """Tansu with ``--authentication``, plaintext and behind the test's TLS listener."""
    log_path = Path(tmp_path_factory.mktemp("sasl")) / "tansu.log"
    with EmbeddedBroker(log_path=log_path, extra_args=("--authentication",)) as b:
        yield b


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_scram_login_the_broker_refuses_ends_the_start_in_one_line(
    scram_broker: EmbeddedBroker,
    tls_broker: TlsBroker,
    published: Published,
    tmp_path: Path,
    protocol: str,
) -> None:
    proxy = None
    bootstrap = scram_broker.bootstrap
    if protocol == "SASL_SSL":
        proxy = TlsProxy(scram_broker.port, *tls_broker.pki.cert("good"), port=free_port())
        bootstrap = proxy.start().bootstrap
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    try:
        worker = WorkerProcess(
            tmp_path / "worker.log", bootstrap=bootstrap, registry=published.root,
            model_ref=published.name, security_protocol=protocol, ssl_cafile=tls_broker.pki.ca,
            sasl_mechanism="SCRAM-SHA-256", sasl_username="alice", sasl_password_file=password,
            connect_timeout=0,
        )  # fmt: skip
        log = _start_failure(worker)
    finally:
        if proxy is not None:
            proxy.stop()
    errors = [line for line in log.splitlines() if "tripwire worker: error:" in line]
    assert len(errors) == 1, log[-3000:]
    assert "SASL SCRAM-SHA-256 authentication as 'alice'" in errors[0]
    assert "s3cret" not in log  # the password is never printed
