"""TLS to a real broker: a TLS listener with certificates the test makes (tests/fixtures/tls.py).

The good certificate connects admin, producer and consumer; a wrong CA, an expired
certificate and one for another host name each give one line naming the problem,
raised at once instead of retried (``prepare_topics`` with no connect timeout).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.fixtures.tls import TlsBroker
from tripwire.core.errors import ConfigError
from tripwire.stream.kafka.security import (
    BrokerSecurityError,
    aiokafka_options,
    check_security,
)
from tripwire.stream.kafka.topics import create_topics, prepare_topics
from tripwire.stream.settings import WorkerSettings

pytestmark = pytest.mark.integration


def tls_settings(bootstrap: str, cafile: Path, **kw: object) -> WorkerSettings:
    return WorkerSettings(
        bootstrap=bootstrap, model_ref="m", security_protocol="SSL", ssl_cafile=str(cafile),
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_clients_talk_to_the_broker_over_tls(tls_broker: TlsBroker) -> None:
    s = tls_settings(tls_broker.bootstrap, tls_broker.pki.ca)
    await check_security(s)
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    options = aiokafka_options(s)
    await create_topics(options.pop("bootstrap_servers"), {topic: 1}, **options)
    producer = AIOKafkaProducer(**aiokafka_options(s))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over tls", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **aiokafka_options(s))
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert record.value == b"over tls"


async def test_plaintext_to_the_tls_listener_is_not_a_security_error(
    tls_broker: TlsBroker,
) -> None:
    # PLAINTEXT does no TLS check; the listener just never answers Kafka requests
    await check_security(WorkerSettings(bootstrap=tls_broker.bootstrap, model_ref="m"))


@pytest.mark.parametrize(
    ("listener", "ca", "says"),
    [
        ("good", "wrong_ca", "is not signed by a CA in"),
        ("expired", "ca", "has expired"),
        ("other_host", "ca", "is not for host 127.0.0.1"),
    ],
)
async def test_a_certificate_that_cannot_verify_names_the_problem_at_once(
    tls_broker: TlsBroker,
    tls_listener: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
    listener: str,
    ca: str,
    says: str,
) -> None:
    bootstrap = tls_broker.bootstrap if listener == "good" else tls_listener(listener)
    s = tls_settings(bootstrap, getattr(tls_broker.pki, ca))  # connect_timeout 0: forever
    with caplog.at_level(logging.WARNING), pytest.raises(BrokerSecurityError) as info:
        await prepare_topics(s)
    message = str(info.value)
    assert says in message and bootstrap in message and "\n" not in message
    assert "retrying" not in caplog.text  # failed at the first attempt


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="--ssl-cafile: cannot load it"):
        aiokafka_options(tls_settings("127.0.0.1:1", missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="--ssl-cafile"):
        aiokafka_options(tls_settings("127.0.0.1:1", garbage))
