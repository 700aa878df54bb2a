"""Oversized ids, keys and headers (issue 11 §2): every output fits, nothing wedges.

One real worker on one partition is fed the cases found live, between normal
events: a 200 KB key on a 900 KB invalid value (was a 1.1 MB dead letter), a 400 KB
id on an anomaly with the scores topic on (1.6 MB alert, 1.2 MB score record) and a
1.5 MB ``tripwire-id`` header (6 MB alert). Before the outputs were bounded, the
producer refused those records and retried them forever: the partition stopped
and its offsets were never committed again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from aiokafka import ConsumerRecord
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import anomalous_rows, normal_rows, publish_model
from tests.stream.harness import (
    Out,
    WorkerProcess,
    committed,
    consume,
    f32_event,
    json_event,
    produce,
    wait_for,
)
from tests.stream.outputs import check_alert, check_score
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.wire.alerts import alert_id
from tripwire.stream.wire.limits import DEFAULT_MAX_OUTPUT_BYTES, MAX_DLQ_KEY_BYTES, MAX_ID_BYTES

pytestmark = pytest.mark.integration

BIG_KEY = b"K" * 200_000
BIG_ID = "I" * 400_000
HEADER_ID = "H" * 1_500_000


@dataclass
class Run:
    bootstrap: str
    topics: dict[str, str]
    group: str
    inputs: list[Out]
    outputs: dict[str, list[ConsumerRecord]]
    version: str


def cases() -> list[Out]:
    """Normal events around the three oversized cases, in one partition."""
    normal, odd = normal_rows(2, seed=41), anomalous_rows(2, seed=42)
    malformed = Out(b'{"id": "m", "features": [' + b"1," * 450_000, key=BIG_KEY)
    big_id = json_event(BIG_ID, odd[0])  # no key: the entity is the id too
    header = f32_event("unused", odd[1], "card-7")
    header = Out(header.value, header.key, [header.headers[0], ("tripwire-id", HEADER_ID.encode())])  # type: ignore[index]
    return [
        json_event("n0", normal[0], key="card-1"), malformed, big_id, header,
        json_event("n1", normal[1], key="card-1"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("oversized")
    pub = publish_model(tmp / "registry")
    stamp = time.monotonic_ns()
    topics = {k: f"{k}-big-{stamp}" for k in ("features", "alerts", "dlq", "scores")}
    asyncio.run(create_topics(broker.bootstrap, [topics["features"]], 1))
    group = f"g-{topics['features']}"
    inputs = cases()
    produce(broker.bootstrap, topics["features"], inputs)
    worker = WorkerProcess(
        Path(tmp) / "worker.log", bootstrap=broker.bootstrap, registry=pub.root,
        model_ref="demo", input_topic=topics["features"], alert_topic=topics["alerts"],
        dlq_topic=topics["dlq"], scores_topic=topics["scores"], group_id=group,
        commit_interval=0.5, max_wait=0.05,
    )  # fmt: skip
    try:
        started = time.monotonic()
        wait_for(
            lambda: committed(broker.bootstrap, group, topics["features"], 1) == {0: len(inputs)},
            timeout=90, what=f"offsets committed up to {len(inputs)} (not wedged)",
        )  # fmt: skip
        took = time.monotonic() - started
        print(f"oversized inputs: all {len(inputs)} offsets committed after {took:.1f} s")
        outputs = {
            "alerts": consume(broker.bootstrap, topics["alerts"], lambda rs: len(rs) >= 2, 30),
            "scores": consume(broker.bootstrap, topics["scores"], lambda rs: len(rs) >= 4, 30),
            "dlq": consume(broker.bootstrap, topics["dlq"], lambda rs: len(rs) >= 1, 30),
        }
        yield Run(broker.bootstrap, topics, group, inputs, outputs, pub.version)
        assert worker.metric("tripwire_produce_errors_total") == 0  # bounded, never refused
    finally:
        worker.stop()


def test_the_partition_goes_on_past_every_oversized_record(run: Run) -> None:
    scores = {check_score(r)["id"][:5] for r in run.outputs["scores"]}
    assert scores == {"n0", "n1", "IIIII", "HHHHH"}
    assert len(run.outputs["alerts"]) == 2 and len(run.outputs["dlq"]) == 1


def test_no_output_exceeds_the_brokers_message_max_bytes(run: Run) -> None:
    largest = {}
    for kind, records in run.outputs.items():
        for r in records:
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, list(r.headers))
            assert size <= DEFAULT_MAX_OUTPUT_BYTES, (kind, size)
        largest[kind] = max(
            DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, list(r.headers))
            for r in records
        )
    print(f"oversized inputs: largest output record per topic, bytes: {largest}")


def test_alerts_of_huge_ids_are_bounded_and_say_what_was_cut(run: Run) -> None:
    by_prefix = {json.loads(r.value)["data"]["input_id"][:5]: r for r in run.outputs["alerts"]}
    assert set(by_prefix) == {"IIIII", "HHHHH"}
    for prefix, full, entity in (("IIIII", BIG_ID, BIG_ID), ("HHHHH", HEADER_ID, "card-7")):
        record = by_prefix[prefix]
        ev = check_alert(record)  # still a valid event, read back by the CloudEvents SDK
        data = ev["data"]
        assert ev["id"] == alert_id(full, "demo", run.version)  # of the whole id
        assert len(data["input_id"].encode()) == MAX_ID_BYTES
        assert data["input_id"].endswith(hashlib.sha256(full.encode()).hexdigest())
        cut = {"input_id": len(full)} | ({"entity": len(entity)} if entity == full else {})
        assert data["truncated"] == cut
        assert record.key == data["entity"].encode() == ev["subject"].encode()
        assert len(record.key or b"") <= MAX_ID_BYTES
        assert len(record.value) < 16 * 1024


def test_the_dead_letter_keeps_the_whole_value_and_says_the_key_was_cut(run: Run) -> None:
    (dl,) = run.outputs["dlq"]
    h = dict(dl.headers)
    assert h["tripwire-reason"] == b"malformed"
    assert h["tripwire-truncated-key"] == str(len(BIG_KEY)).encode()
    assert len(dl.key or b"") == MAX_DLQ_KEY_BYTES and BIG_KEY.startswith((dl.key or b"")[:1000])
    assert dl.value == run.inputs[1].value and "tripwire-truncated" not in h


def test_the_score_record_of_a_huge_id_is_bounded(run: Run) -> None:
    (doc,) = [
        json.loads(r.value) for r in run.outputs["scores"] if r.value.startswith(b'{"id":"III')
    ]
    assert doc["truncated"] == {"id": len(BIG_ID), "entity": len(BIG_ID)}
    assert np.isfinite(doc["score"]) and doc["anomaly"] is True
