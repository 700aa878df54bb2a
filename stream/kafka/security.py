"""Broker security settings (SSL / SASL) as faust credentials and aiokafka options.

The worker talks to Kafka through faust (consumer and producer) and through a small
aiokafka admin client (waiting for the broker, creating output topics); both get
the same security from one ``WorkerSettings``.

aiokafka's bootstrap logs why a connection failed and raises only "Unable to
bootstrap", so a certificate or a password that can never work looks like a broker
that is down, and is retried forever. :func:`check_security` connects once with the
same options and names the problem instead (:class:`BrokerSecurityError`).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import replace
from typing import Any

import faust
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from faust.types.auth import CredentialsT

from tripwire.core.config import load_env
from tripwire.core.errors import ConfigError
from tripwire.core.untrusted import escaped
from tripwire.stream.settings import SECURITY_PROTOCOLS, WorkerSettings

#: OpenSSL verify codes (``X509_V_ERR_*``) and what they mean for a broker certificate.
_UNKNOWN_CA = {2, 18, 19, 20, 21}  # no path to a trusted CA (self-signed, unknown issuer)
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = {62, 64}  # hostname, IP address
#: Seconds for the TCP connect and TLS handshake of the check.
CHECK_TIMEOUT = 10.0


class BrokerSecurityError(ConfigError):
    """TLS or SASL with the broker failed in a way that retrying cannot fix."""


def ssl_context(settings: WorkerSettings) -> ssl.SSLContext | None:
    """A TLS context for SSL / SASL_SSL (``None`` for the plaintext protocols).

    A CA bundle, certificate or key that cannot be read is a ``ConfigError`` naming
    the option (it would never start working by retrying).
    """
    if "SSL" not in settings.security_protocol:
        return None
    option = "--ssl-cafile"
    try:
        context = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile or None
        )
        if settings.ssl_certfile:
            option = "--ssl-certfile/--ssl-keyfile"
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise ConfigError(f"{option}: cannot load it: {escaped(e)}") from None
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


#: The worker variables that carry security settings (passed on to worker children).
SECURITY_ENV_PREFIXES = ("TRIPWIRE_SECURITY_", "TRIPWIRE_SASL_", "TRIPWIRE_SSL_")


def worker_child_env() -> dict[str, str]:
    """The environment of a worker child (demo, benchmarks): this process's, without
    its ``TRIPWIRE_*`` settings except the security ones, to meet the same cluster."""
    return {
        k: v for k, v in os.environ.items()
        if not k.startswith("TRIPWIRE_") or k.startswith(SECURITY_ENV_PREFIXES)
    }  # fmt: skip


def env_security_options() -> dict[str, Any]:
    """aiokafka security keyword arguments from the worker's ``TRIPWIRE_*`` variables.

    For the clients of ``tripwire demo`` and the benchmarks, whose worker child
    reads the same variables (``TRIPWIRE_SECURITY_PROTOCOL``, ``TRIPWIRE_SSL_CAFILE``,
    ``TRIPWIRE_SASL_PASSWORD_FILE``, ...), so that all of them meet one secured cluster.
    """
    options = aiokafka_options(_env_settings())
    del options["bootstrap_servers"]
    return options


async def check_env_security(bootstrap: str) -> None:
    """:func:`check_security` with the ``TRIPWIRE_*`` security variables, for ``bootstrap``."""
    await check_security(replace(_env_settings(), bootstrap=bootstrap))


def _env_settings() -> WorkerSettings:
    settings = load_env(WorkerSettings)
    if settings.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"TRIPWIRE_SECURITY_PROTOCOL must be one of {SECURITY_PROTOCOLS}, "
            f"got {escaped(settings.security_protocol)}"
        )
    return settings


async def check_security(settings: WorkerSettings) -> None:
    """Connect once to a bootstrap server with the worker's TLS and SASL settings.

    Returns after the first server that completes the handshakes, or when none
    answers (unreachable is for the caller to retry). Raises
    :class:`BrokerSecurityError` for what retrying cannot fix: a certificate the
    CA bundle does not vouch for, an expired one, one for another host name, a
    TLS handshake refused, or SASL credentials or a mechanism the broker rejects.
    """
    if settings.security_protocol == "PLAINTEXT":
        return
    options = aiokafka_options(settings)
    del options["bootstrap_servers"]
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await create_conn(
                host, int(port), request_timeout_ms=int(CHECK_TIMEOUT * 1000), **options
            )
        except Exception as e:
            problem = security_problem(settings, server, e)
            if problem is not None:
                raise BrokerSecurityError(problem) from None
            continue  # unreachable (or not a number): the caller's retry says so
        conn.close()
        return


def security_problem(settings: WorkerSettings, server: str, error: BaseException) -> str | None:
    """The one-line reason ``error`` (from connecting to ``server``) cannot be retried away.

    ``None`` when it may be transient: refused or timed-out connections, a TLS
    connection closed before its handshake ended (a proxy with no broker behind it).
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        return _certificate_problem(settings, server, error)
    if isinstance(error, ssl.SSLError) and not isinstance(
        error, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        return (
            f"TLS handshake with broker {server} failed: {escaped(error.reason or error)} "
            f"(is {server} a TLS listener? --security-protocol {settings.security_protocol})"
        )
    if not settings.security_protocol.startswith("SASL"):
        return None
    who = f"SASL {settings.sasl_mechanism} authentication as {settings.sasl_username!r}"
    if isinstance(error, SaslAuthenticationFailed | IllegalSaslStateError):
        return f"{who} at broker {server} failed: {escaped(error)}"
    if isinstance(error, UnsupportedSaslMechanismError):
        return f"broker {server} does not offer SASL {settings.sasl_mechanism}: {escaped(error)}"
    if isinstance(error, KeyError | ValueError) and settings.sasl_mechanism.startswith("SCRAM"):
        # aiokafka reads the broker's final SCRAM message as "v=<signature>"; a
        # broker that refuses the user answers "e=<reason>", and aiokafka then
        # fails on the missing "v" (KeyError) or a wrong one (ValueError)
        return (
            f"{who} at broker {server} failed: the broker did not prove the password "
            f"(unknown user or wrong password; {escaped(error)})"
        )
    return None


def _certificate_problem(
    settings: WorkerSettings, server: str, error: ssl.SSLCertVerificationError
) -> str:
    code, detail = error.verify_code, escaped(error.verify_message)
    trusted = settings.ssl_cafile or "the system's CA store"
    head = f"TLS: the certificate of broker {server}"
    if code in _UNKNOWN_CA:
        return (
            f"{head} is not signed by a CA in {escaped(trusted)} ({detail}); "
            "set --ssl-cafile to the CA bundle that signed the brokers' certificates"
        )
    if code == _EXPIRED:
        return f"{head} has expired ({detail}); the broker needs a renewed certificate"
    if code == _NOT_YET_VALID:
        return f"{head} is not valid yet ({detail}); check the clocks of broker and worker"
    if code in _NAME_MISMATCH:
        host = server.rpartition(":")[0]
        return (
            f"{head} is not for host {escaped(host)!s} ({detail}); use a --bootstrap "
            "name the certificate lists (subjectAltName), as the brokers advertise it"
        )
    return f"{head} cannot be verified: {detail} (OpenSSL verify code {code})"
