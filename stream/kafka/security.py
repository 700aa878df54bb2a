"""Broker security settings (SSL / SASL) as faust credentials and aiokafka options.

The worker talks to Kafka through faust (consumer and producer) and through a small
aiokafka admin client (waiting for the broker, creating output topics); both get
the same security from one ``WorkerSettings``.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from faust.types.auth import CredentialsT

from tripwire.stream.settings import WorkerSettings


def ssl_context(settings: WorkerSettings) -> ssl.SSLContext | None:
    """A TLS context for SSL / SASL_SSL (``None`` for the plaintext protocols)."""
    if "SSL" not in settings.security_protocol:
        return None
    context = ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile or None
    )
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    return context


def faust_credentials(settings: WorkerSettings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App`` (``None`` for PLAINTEXT)."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.reveal(),
        mechanism=settings.sasl_mechanism,
        ssl_context=context,
    )


def aiokafka_options(settings: WorkerSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients: servers and security."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.reveal()
    return options
