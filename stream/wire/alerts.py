"""Anomaly events (CloudEvents 1.0, JSON) and score records.

An anomaly event, one per anomalous input vector, keyed by the entity, is a
structured-mode event of the CloudEvents Kafka protocol binding (header
``content-type: application/cloudevents+json; charset=UTF-8``: ``ALERT_HEADERS``); a
score record (optional scores topic) is one per scored vector. Their fields are
defined by the JSON Schemas beside this module (``anomaly.v1.schema.json``, its
``data`` in ``anomaly-data.v1.schema.json``, ``score.v1.schema.json``;
:mod:`tripwire.stream.wire.schemas`) and documented, with examples, in
docs/formats.md ("Anomaly events", "Score records").

``id`` is deterministic (uuid5 of the input id, model name and version): a
redelivered input scored by the same model version gives the same id. Ids, entities
and feature names are bounded (:mod:`tripwire.stream.wire.limits`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from tripwire.core.scorer import TopFeature
from tripwire.stream.wire.limits import MAX_NAME_BYTES, bounded
from tripwire.stream.wire.records import InputRecord

SPECVERSION = "1.0"
EVENT_TYPE = "io.tripwire.anomaly"
#: ``$id`` of the JSON Schema of an anomaly event's ``data`` (``anomaly-data.v1.schema.json``).
DATASCHEMA = "urn:tripwire:schema:anomaly-data:1"
#: The structured content mode of the CloudEvents Kafka protocol binding (§3.2).
CLOUDEVENTS_JSON = "application/cloudevents+json; charset=UTF-8"
#: Headers of every anomaly event record (shared, never mutated).
ALERT_HEADERS: list[tuple[str, bytes]] = [("content-type", CLOUDEVENTS_JSON.encode())]
#: Namespace of the deterministic alert ids (uuid5).
ALERT_NAMESPACE = uuid.UUID("6f1d7c1e-8a57-5b52-9b6e-2f0c3a4d5e60")


@dataclass(frozen=True, slots=True)
class Scored:
    """One scored vector with everything its output records need."""

    input_id: str
    entity: str
    topic: str
    partition: int
    offset: int
    index: int | None
    event_ms: float | None
    score: float
    anomaly: bool
    #: The input record, for a dead letter should the output be refused.
    record: InputRecord | None = field(default=None, compare=False, repr=False)


def alert_id(input_id: str, model_name: str, model_version: str) -> str:
    """Deterministic event id of the alert for ``input_id`` scored by one model version.

    The RFC 4122 uuid5 of ``"<model name>\\0<model version>\\0<input id>"`` in
    ``ALERT_NAMESPACE`` (lone surrogates, which JSON ids may carry, are hashed as
    their UTF-8-style bytes instead of failing). The SHA-1 state of namespace and
    model is computed once per model version.

    >>> alert_id("evt-1", "demo", "3") == alert_id("evt-1", "demo", "3")
    True
    >>> alert_id("evt-1", "demo", "3") == alert_id("evt-1", "demo", "4")
    False
    >>> str(uuid.uuid5(ALERT_NAMESPACE, "demo\\x003\\x00evt-1")) == alert_id("evt-1", "demo", "3")
    True
    """
    h = _model_hash(model_name, model_version).copy()
    h.update(input_id.encode("utf-8", "surrogatepass"))
    b = bytearray(h.digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@functools.lru_cache(maxsize=16)
def _model_hash(model_name: str, model_version: str) -> Any:
    prefix = f"{model_name}\x00{model_version}\x00".encode("utf-8", "surrogatepass")
    return hashlib.sha1(ALERT_NAMESPACE.bytes + prefix, usedforsecurity=False)


def rfc3339(epoch_seconds: float) -> str:
    """UTC RFC 3339 time with microseconds and a ``Z``.

    >>> rfc3339(0.25)
    '1970-01-01T00:00:00.250000Z'
    """
    # isoformat is faster than strftime and pads the year to 4 digits
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat("T", "microseconds")[:-6] + "Z"


def severity(score: float, threshold: float) -> float | None:
    """``score / threshold``; ``None`` when the threshold is not positive."""
    return score / threshold if threshold > 0 else None


class AlertBuilder:
    """Builds the JSON of anomaly events and score records for one worker.

    Parameters
    ----------
    source : str
        The CloudEvents ``source``, e.g. ``tripwire://tripwire-worker/features``.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._now: tuple[float, str] = (float("nan"), "")

    def _detection_time(self, detected_at: float) -> str:
        """``rfc3339(detected_at)``, formatted once per micro-batch (they share it)."""
        if self._now[0] != detected_at:
            self._now = (detected_at, rfc3339(detected_at))
        return self._now[1]

    def anomaly_event(
        self,
        s: Scored,
        *,
        detected_at: float,
        threshold: float,
        model: tuple[str, str],
        top_features: list[TopFeature],
    ) -> bytes:
        """The anomaly event of ``s`` as JSON bytes (see the module docstring)."""
        now = self._detection_time(detected_at)
        input_id, entity, truncated = _bounded_ids(s)
        data = {
            "input_id": input_id, "entity": entity,
            "topic": s.topic, "partition": s.partition, "offset": s.offset, "index": s.index,
            "event_time": None if s.event_ms is None else rfc3339(s.event_ms / 1000.0),
            "detection_time": now,
            "score": s.score, "threshold": threshold, "severity": severity(s.score, threshold),
            "model": {"name": model[0], "version": model[1]},
            "top_features": [_bounded_name(f) for f in top_features],
        }  # fmt: skip
        if truncated:
            data["truncated"] = truncated
        event = {
            "specversion": SPECVERSION,
            "id": alert_id(s.input_id, *model),
            "source": self.source,
            "type": EVENT_TYPE,
            "time": now,
            "subject": entity,
            "datacontenttype": "application/json",
            "dataschema": DATASCHEMA,
            "partitionkey": entity,
            "data": data,
        }
        numbers = [f.value for f in top_features] + [f.contribution for f in top_features]
        _require_finite(s.score, threshold, *numbers)
        return _dumps(event)

    @staticmethod
    def score_record(s: Scored, *, threshold: float, model: tuple[str, str]) -> bytes:
        """The score record of ``s`` as JSON bytes (``truncated`` as in an alert)."""
        input_id, entity, truncated = _bounded_ids(s)
        doc = {
            "id": input_id, "entity": entity,
            "topic": s.topic, "partition": s.partition, "offset": s.offset, "index": s.index,
            "event_time_ms": s.event_ms, "score": s.score, "threshold": threshold,
            "anomaly": s.anomaly, "model": {"name": model[0], "version": model[1]},
        }  # fmt: skip
        if truncated:
            doc["truncated"] = {"id" if k == "input_id" else k: v for k, v in truncated.items()}
        _require_finite(s.score, threshold)
        return _dumps(doc)


def _bounded_ids(s: Scored) -> tuple[str, str, dict[str, int]]:
    """Input id and entity of ``s`` within the limits, and the original sizes of cut ones."""
    input_id, entity = bounded(s.input_id), bounded(s.entity)
    truncated: dict[str, int] = {}
    if input_id is not s.input_id:
        truncated["input_id"] = len(s.input_id.encode("utf-8", "surrogatepass"))
    if entity is not s.entity:
        truncated["entity"] = len(s.entity.encode("utf-8", "surrogatepass"))
    return input_id, entity, truncated


def _bounded_name(feature: TopFeature) -> dict[str, Any]:
    """A ``top_features`` entry with its name within ``MAX_NAME_BYTES``."""
    doc = feature.to_json()
    doc["name"] = bounded(feature.name, MAX_NAME_BYTES)
    return doc


def _require_finite(*values: float) -> None:
    """Refuse NaN/inf, which would make invalid JSON (orjson writes them as null).

    Scores are finite by the time they reach an output (the batch processor
    dead-letters non-finite ones); if one is not, we want to hear about it.
    """
    if not all(map(math.isfinite, values)):
        raise ValueError(f"non-finite number in an output record: {values}")


def _dumps(doc: dict[str, Any]) -> bytes:
    """Compact JSON bytes of ``doc``.

    orjson (much faster than ``json`` here: docs/performance.md, item 12) refuses
    lone surrogates, which a Kafka key that is not UTF-8 leaves in the entity
    (``surrogateescape``); those few documents go through ``json`` with ASCII escapes.
    """
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
