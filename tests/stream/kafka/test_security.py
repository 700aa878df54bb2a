"""Security settings become the same faust credentials and aiokafka options."""

from __future__ import annotations

import ssl

import faust

from tripwire.core.config import Secret
from tripwire.stream.kafka.security import aiokafka_options, faust_credentials
from tripwire.stream.settings import WorkerSettings


def settings(**kw: object) -> WorkerSettings:
    return WorkerSettings(bootstrap="a:1,b:2", model_ref="m", **kw)  # type: ignore[arg-type]


def test_plaintext() -> None:
    assert faust_credentials(settings()) is None
    assert aiokafka_options(settings()) == {
        "bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT",
    }  # fmt: skip


def test_sasl_ssl() -> None:
    s = settings(
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc", sasl_password=Secret("pw"),
    )  # fmt: skip
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("svc", "pw", "SCRAM-SHA-512")
    assert creds.protocol.value == "SASL_SSL" and isinstance(creds.ssl_context, ssl.SSLContext)
    opts = aiokafka_options(s)
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_plain_password"] == "pw"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512" and isinstance(
        opts["ssl_context"], ssl.SSLContext
    )


def test_sasl_plaintext_and_ssl() -> None:
    creds = faust_credentials(settings(security_protocol="SASL_PLAINTEXT", sasl_username="u"))
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol.value == "SASL_PLAINTEXT"
    assert "ssl_context" not in aiokafka_options(settings(security_protocol="SASL_PLAINTEXT"))
    tls = faust_credentials(settings(security_protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials) and tls.context.verify_mode == ssl.CERT_REQUIRED
