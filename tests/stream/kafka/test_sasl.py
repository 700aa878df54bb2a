"""SASL against the real broker, ``tansu broker --authentication``, as far as Tansu 0.6.0 goes.

Tansu offers SCRAM-SHA-256 and SCRAM-SHA-512, and no user can be created for them
(docs/deploy.md, "A secured Kafka", says how that was tried): so a SCRAM exchange
runs for real and is refused, and that must read as a refused login, in one line,
without the password. PLAIN is not offered: Tansu closes the connection instead
of answering the handshake, which a client cannot tell from a broker going away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError

from tripwire.core.config import Secret
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.kafka.security import BrokerSecurityError, check_security
from tripwire.stream.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = Path(tmp_path_factory.mktemp("sasl-client")) / "tansu.log"
    with EmbeddedBroker(log_path=log_path, extra_args=("--authentication",)) as b:
        yield b


def sasl_settings(broker: EmbeddedBroker, mechanism: str) -> WorkerSettings:
    return WorkerSettings(
        bootstrap=broker.bootstrap, model_ref="m", security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism, sasl_username="bob", sasl_password=Secret("hunter2"),
    )  # fmt: skip


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_scram_login_the_broker_refuses_is_named(
    sasl_broker: EmbeddedBroker, mechanism: str
) -> None:
    with pytest.raises(BrokerSecurityError) as raised:
        await check_security(sasl_settings(sasl_broker, mechanism))
    message = str(raised.value)
    assert message.startswith(f"SASL {mechanism} authentication as 'bob' at broker ")
    assert "did not prove the password" in message and "hunter2" not in message
    assert "\n" not in message


async def test_tansu_closes_the_connection_on_plain(sasl_broker: EmbeddedBroker) -> None:
    """Tansu's answer to PLAIN (if it ever answers UNSUPPORTED_SASL_MECHANISM instead,
    check_security names it: "does not offer SASL PLAIN", and this test must change)."""
    with pytest.raises(KafkaConnectionError, match="closed"):
        await create_conn(
            "127.0.0.1", sasl_broker.port, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN", sasl_plain_username="bob", sasl_plain_password="hunter2",
            request_timeout_ms=10_000,
        )  # fmt: skip
    assert sasl_broker.log_path is not None
    assert "NoSharedMechanism" in sasl_broker.log_path.read_text()
    await check_security(sasl_settings(sasl_broker, "PLAIN"))  # not a security error: retried
