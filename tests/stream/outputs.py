"""Checks of output records as a downstream consumer sees them, with real tools.

An anomaly event is read back by the official CloudEvents SDK through its Kafka
protocol binding (both its APIs: ``cloudevents.v1.kafka.from_structured`` and the
newer ``cloudevents.core.bindings.kafka.from_kafka``, which chooses the content mode
from the headers as any receiver must), and validated against the published JSON
Schemas with ``jsonschema``; a score record against its schema.
"""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as ce_v1_kafka

from tripwire.stream.wire.alerts import CLOUDEVENTS_JSON, DATASCHEMA
from tripwire.stream.wire.schemas import output_problems


def check_alert(record: ConsumerRecord) -> dict[str, Any]:
    """Assert ``record`` is a valid structured-mode anomaly event; its JSON."""
    headers = {k: bytes(v) for k, v in record.headers}
    assert headers.get("content-type") == CLOUDEVENTS_JSON.encode()
    assert not [k for k in headers if k.lower().startswith("ce_")]  # not binary mode
    doc: dict[str, Any] = json.loads(record.value)
    assert output_problems("anomaly", doc) == []
    assert output_problems("anomaly-data", doc["data"]) == []
    key = None if record.key is None else record.key.decode("utf-8", "surrogateescape")

    v1 = ce_v1_kafka.from_structured(
        ce_v1_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value)
    )
    for attr in ("id", "source", "type", "subject", "time", "dataschema", "specversion"):
        assert v1[attr] == doc[attr], attr
    assert v1["partitionkey"] == doc["partitionkey"] == key
    assert v1.data == doc["data"]

    core = ce_kafka.from_kafka(
        ce_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value), JSONFormat()
    )
    assert core.get_id() == doc["id"] and core.get_type() == "io.tripwire.anomaly"
    assert core.get_dataschema() == DATASCHEMA and core.get_subject() == doc["subject"]
    assert core.get_extension("partitionkey") == key  # the binding's: from the Kafka key
    assert core.get_data() == doc["data"]
    return doc


def check_score(record: ConsumerRecord) -> dict[str, Any]:
    """Assert ``record`` is a valid score record; its JSON."""
    doc: dict[str, Any] = json.loads(record.value)
    assert output_problems("score", doc) == []
    return doc
