"""Before consuming: wait for the broker, check the input topic, create output topics.

:func:`create_topics` is also the one way the demo, ``tripwire bench``, the
benchmarks and the tests create topics.

Runs once at start with a plain aiokafka admin client (same servers and security as
the worker). An unreachable broker is retried with exponential backoff (0.5 s
doubling to 15 s) and logged at every attempt, for ``connect_timeout`` seconds or
forever; a missing input topic is waited for the same way, since faust would
otherwise only notice it on its next metadata refresh (minutes). What retrying
cannot fix (a broker certificate that does not verify, SASL credentials the broker
rejects: ``security.check_security``) ends the start at once with a one-line
``BrokerSecurityError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from tripwire.core.errors import ConfigError
from tripwire.core.untrusted import escaped
from tripwire.stream.kafka.security import aiokafka_options, check_security
from tripwire.stream.settings import WorkerSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 15.0


class BrokerUnavailable(ConfigError):
    """The broker (or the input topic) did not appear within ``connect_timeout``."""


async def prepare_topics(settings: WorkerSettings) -> int:
    """Wait for the broker and the input topic; create missing output topics.

    Returns the number of partitions of the input topic.
    """
    admin = await _retry(settings, "connect to the broker", lambda: _connected_admin(settings))
    try:
        partitions = await _retry(
            settings,
            f"find input topic {settings.input_topic!r}",
            lambda: _partitions(admin, settings),
        )
        if settings.create_topics:
            await _create_outputs(admin, settings, settings.topic_partitions or partitions)
        return partitions
    finally:
        await admin.close()


async def _connected_admin(settings: WorkerSettings) -> AIOKafkaAdminClient:
    await check_security(settings)  # aiokafka would hide a TLS/SASL failure as "unreachable"
    admin = AIOKafkaAdminClient(
        client_id=f"{settings.group_id}-admin", request_timeout_ms=10_000,
        **aiokafka_options(settings),
    )  # fmt: skip
    try:
        await admin.start()
    except BaseException:
        await admin.close()
        raise
    return admin


async def _partitions(admin: AIOKafkaAdminClient, settings: WorkerSettings) -> int:
    # Listing all topics first: a metadata request naming a missing topic may make
    # a broker with auto-creation create it, with whatever defaults it has.
    if settings.input_topic not in await admin.list_topics():
        raise LookupError(f"topic {settings.input_topic!r} does not exist (yet)")
    described = await admin.describe_topics([settings.input_topic])
    partitions = described[0].get("partitions") if described else None
    if not partitions:
        raise LookupError(f"topic {settings.input_topic!r} has no partitions (yet)")
    return len(partitions)


async def _create_outputs(
    admin: AIOKafkaAdminClient, settings: WorkerSettings, partitions: int
) -> None:
    wanted = [settings.alert_topic, settings.dlq_topic]
    wanted += [t for t in (settings.scores_topic, settings.shadow_topic) if t]
    await create_missing(admin, dict.fromkeys(wanted, partitions), settings.topic_replication)


async def create_missing(
    admin: AIOKafkaAdminClient, topics: Mapping[str, int], replication: int = 1
) -> list[str]:
    """Create every topic of ``topics`` (name -> partitions) that does not exist yet.

    An existing topic is left as it is (also one another client created meanwhile);
    any other refusal is a ``ConfigError``. Returns the names created.
    """
    existing = set(await admin.list_topics())
    created = []
    for name, partitions in topics.items():
        if name in existing:
            continue
        response = await admin.create_topics([NewTopic(name, partitions, replication)])
        for topic, code, *message in response.topic_errors:
            if code == TopicAlreadyExistsError.errno:  # another client was quicker
                continue
            if code:
                raise ConfigError(f"cannot create topic {topic!r}: error {code} {message}")
            log.info("created topic %s (%d partitions)", topic, partitions)
            created.append(topic)
    return created


async def create_topics(
    bootstrap: str, topics: Mapping[str, int], replication: int = 1, **options: Any
) -> list[str]:
    """:func:`create_missing` with an admin client of its own on ``bootstrap``.

    ``options`` are aiokafka client options (the TLS/SASL ones of
    ``security.env_security_options``, say).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        await admin.start()
        return await create_missing(admin, topics, replication)
    finally:
        await admin.close()


async def _retry(settings: WorkerSettings, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    deadline = time.monotonic() + settings.connect_timeout if settings.connect_timeout else None
    delay = FIRST_BACKOFF
    while True:
        try:
            return await attempt()
        except (TimeoutError, KafkaError, OSError, LookupError) as e:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise BrokerUnavailable(
                    f"could not {what} at {settings.bootstrap} within "
                    f"--connect-timeout {settings.connect_timeout:g}s: {e}"
                ) from None
            log.warning(
                "cannot %s at %s (%s); retrying in %.1fs",
                what, settings.bootstrap, escaped(e), delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
