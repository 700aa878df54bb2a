"""The range a replay reads: offsets, times, partitions, on the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from tests.fixtures.registry import Published, normal_rows
from tests.stream.replay.support import replay
from tripwire.core.errors import ConfigError
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.replay.read import parse_bound

pytestmark = pytest.mark.integration

PER_PARTITION = 30
BASE_MS = 1_764_000_000_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def fill(bootstrap: str, topic: str) -> None:
    """Partition p, offset i: the event ``p{p}-{i}`` at Kafka time BASE_MS + i s."""
    X = normal_rows(PER_PARTITION, seed=7)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            sent = []
            for i in range(PER_PARTITION):
                for p in (0, 1):
                    value = json.dumps({"id": f"p{p}-{i}", "features": X[i].tolist()}).encode()
                    sent.append(await producer.send(topic, value, partition=p,
                                                    timestamp_ms=BASE_MS + 1000 * i))  # fmt: skip
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(run())


@pytest.fixture(scope="module")
def ranged(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from tests.fixtures.kafka import create_topics
    from tests.fixtures.registry import publish_model

    pub: Published = publish_model(tmp_path_factory.mktemp("replay-read") / "registry")
    topic = f"ranged-{np.random.default_rng().integers(1 << 40)}"
    asyncio.run(create_topics(broker.bootstrap, [topic], 2))
    fill(broker.bootstrap, topic)
    return str(pub.root), topic


def ids(p: int, lo: int, hi: int) -> list[str]:
    return [f"p{p}-{i}" for i in range(lo, hi)]


def read(broker: EmbeddedBroker, ranged: tuple[str, str], **kw: object) -> list[str]:
    seen = replay(broker.bootstrap, ranged[0], ranged[1], ["demo@production"], max_batch=5, **kw)
    got = [i for i, _ in seen.offsets]
    assert seen.reader.records_read == len(got)
    assert seen.reader.total == len(got)  # the progress total is the range
    # per partition in offset order
    for p in (0, 1):
        mine = [i for i in got if i.startswith(f"p{p}-")]
        assert mine == sorted(mine, key=lambda s: int(s.split("-")[1]))
    return sorted(got)


Case = Callable[..., list[str]]


def test_the_whole_topic_by_default(broker: EmbeddedBroker, ranged: tuple[str, str]) -> None:
    assert read(broker, ranged) == sorted(ids(0, 0, 30) + ids(1, 0, 30))


def test_an_offset_range_is_from_included_to_excluded(
    broker: EmbeddedBroker, ranged: tuple[str, str]
) -> None:
    assert read(broker, ranged, start="5", end="12") == sorted(ids(0, 5, 12) + ids(1, 5, 12))
    assert read(broker, ranged, start="28", end="1000") == sorted(ids(0, 28, 30) + ids(1, 28, 30))
    assert read(broker, ranged, start="40") == []
    assert read(broker, ranged, start="7", end="7") == []


def test_a_time_range_selects_by_record_timestamp(
    broker: EmbeddedBroker, ranged: tuple[str, str]
) -> None:
    got = read(broker, ranged, start=iso(BASE_MS + 10_000), end=iso(BASE_MS + 20_000))
    assert got == sorted(ids(0, 10, 20) + ids(1, 10, 20))
    # between two records: from the first at or after it
    got = read(broker, ranged, start=iso(BASE_MS + 10_500), end=iso(BASE_MS + 12_001))
    assert got == sorted(ids(0, 11, 13) + ids(1, 11, 13))
    assert read(broker, ranged, start=iso(BASE_MS + 3_600_000)) == []
    assert read(broker, ranged, end=iso(BASE_MS)) == []
    # a time start and an offset end
    assert read(broker, ranged, start=iso(BASE_MS + 25_000), end="27") == sorted(
        ids(0, 25, 27) + ids(1, 25, 27)
    )


def test_chosen_partitions_only(broker: EmbeddedBroker, ranged: tuple[str, str]) -> None:
    assert read(broker, ranged, partitions=[1], start="3", end="6") == ids(1, 3, 6)


def test_a_missing_topic_or_partition_is_an_error(
    broker: EmbeddedBroker, ranged: tuple[str, str]
) -> None:
    from tripwire.stream.replay.read import ReplayReadError

    with pytest.raises(ReplayReadError, match="no partition \\[5\\]"):
        read(broker, ranged, partitions=[5])
    with pytest.raises(ReplayReadError, match="does not exist"):
        replay(broker.bootstrap, ranged[0], "no-such-topic", ["demo@production"])


def test_bounds_parse_offsets_and_times_with_an_offset() -> None:
    assert parse_bound("", "--from") is None
    assert parse_bound("17", "--from").offset == 17
    assert parse_bound("2025-11-28T10:00:00Z", "--to").time_ms == 1_764_324_000_000
    assert parse_bound("2025-11-28T11:00:00+01:00", "--to").time_ms == 1_764_324_000_000
    with pytest.raises(ConfigError, match="UTC offset"):
        parse_bound("2026-11-28T10:00:00", "--from")
    with pytest.raises(ConfigError, match="an offset or an ISO-8601 time"):
        parse_bound("-3", "--from")
