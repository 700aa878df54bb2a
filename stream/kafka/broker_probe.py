"""Is the broker reachable? A metadata request every few seconds, for ``/readyz``.

Its own small admin client: the worker's consumer and producer keep connections
open that say nothing about whether the broker still answers. The answer goes to
``Health.broker_up`` (``tripwire.stream.observability.health``), which ``/readyz`` and
``tripwire_broker_up`` read.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient

from tripwire.core.untrusted import escaped
from tripwire.stream.kafka.security import aiokafka_options
from tripwire.stream.observability.health import Health
from tripwire.stream.settings import WorkerSettings

log = logging.getLogger(__name__)

#: Seconds between two broker probes, and the most one may take.
PROBE_INTERVAL = 5.0


async def probe_broker(
    settings: WorkerSettings, health: Health, interval: float = PROBE_INTERVAL
) -> None:
    """Keep ``health.broker_up`` true exactly while the broker answers metadata requests."""
    admin: AIOKafkaAdminClient | None = None
    try:
        while True:
            try:
                if admin is None:
                    admin = AIOKafkaAdminClient(
                        client_id=f"{settings.group_id}-health",
                        request_timeout_ms=int(interval * 1000),
                        **aiokafka_options(settings),
                    )
                    await asyncio.wait_for(admin.start(), interval)
                await asyncio.wait_for(admin.describe_topics([settings.input_topic]), interval)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure means "not reachable"
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # aiokafka turned our cancellation into an error (seen in
                    # admin.start()): stop as asked
                    raise asyncio.CancelledError from e
                if health.broker_up:
                    log.warning("broker %s not reachable: %s", settings.bootstrap, escaped(e))
                health.broker_up = False
                if admin is not None:
                    await _close(admin)
                    admin = None
            else:
                health.broker_up = True
            await asyncio.sleep(interval)
    finally:
        if admin is not None:
            await _close(admin)


async def _close(admin: AIOKafkaAdminClient) -> None:
    try:
        await admin.close()
    except Exception as e:  # closing a broken client may fail too
        log.debug("closing the health admin client: %s", escaped(e))
