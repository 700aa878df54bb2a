"""Anomaly event and score record JSON."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.core.scorer import TopFeature
from tripwire.stream.wire.alerts import (
    ALERT_HEADERS,
    ALERT_NAMESPACE,
    DATASCHEMA,
    AlertBuilder,
    Scored,
    alert_id,
    rfc3339,
    severity,
)
from tripwire.stream.wire.limits import MAX_ID_BYTES, MAX_NAME_BYTES, bounded, output_key

S = Scored("evt-1", "card-9", "features", 3, 1234, None, 1_764_324_000_000.0, 2.5, True)
TOP = [TopFeature("f1", 9.0, 4.0)]


def test_anomaly_event_is_a_cloudevent_with_the_documented_data() -> None:
    raw = AlertBuilder("tripwire://g/features").anomaly_event(
        S, detected_at=1_764_324_000.5, threshold=1.25, model=("demo", "3"), top_features=TOP
    )
    ev = json.loads(raw)
    assert ev["specversion"] == "1.0" and ev["type"] == "io.tripwire.anomaly"
    assert ev["source"] == "tripwire://g/features" and ev["subject"] == "card-9"
    assert ev["id"] == str(uuid.uuid5(ALERT_NAMESPACE, "demo\x003\x00evt-1"))  # not alert_id's
    assert uuid.UUID(ev["id"]).version == 5
    assert ev["time"] == "2025-11-28T10:00:00.500000Z"
    data = ev["data"]
    assert data == {
        "input_id": "evt-1", "entity": "card-9", "topic": "features", "partition": 3,
        "offset": 1234, "index": None, "event_time": "2025-11-28T10:00:00.000000Z",
        "detection_time": ev["time"], "score": 2.5, "threshold": 1.25, "severity": 2.0,
        "model": {"name": "demo", "version": "3"},
        "top_features": [{"name": "f1", "value": 9.0, "contribution": 4.0}],
    }  # fmt: skip
    assert datetime.fromisoformat(ev["time"]).tzinfo is not None


def test_alert_id_depends_on_input_and_model_version_only() -> None:
    ids = {alert_id(i, "m", v) for i in ("a", "b") for v in ("1", "2")}
    assert len(ids) == 4
    assert alert_id("a", "m", "1") == alert_id("a", "m", "1")
    assert alert_id("a", "m1", "1") != alert_id("a", "m", "11")  # no ambiguous joins


@given(st.text(), st.text(min_size=1), st.text(min_size=1))
def test_alert_id_is_the_uuid5_of_model_and_input(input_id: str, name: str, version: str) -> None:
    try:
        want = str(uuid.uuid5(ALERT_NAMESPACE, f"{name}\x00{version}\x00{input_id}"))
    except UnicodeEncodeError:  # lone surrogates: uuid5 cannot hash them, we still must
        want = _uuid5_by_hand(input_id, name, version)  # never alert_id's own output
    assert alert_id(input_id, name, version) == want


@given(st.floats(min_value=-62_135_596_800, max_value=253_402_300_799, allow_nan=False))
def test_rfc3339_matches_the_datetime_format(t: float) -> None:
    dt = datetime.fromtimestamp(t, UTC)
    assert rfc3339(t) == f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%S.%fZ")


def test_alert_of_a_key_that_is_not_utf8_is_valid_json() -> None:
    entity = b"card-\xff".decode("utf-8", "surrogateescape")  # as the codec decodes keys
    s = Scored("evt-\ud800", entity, "features", 0, 1, None, None, 2.5, True)
    raw = AlertBuilder("tripwire://g/f").anomaly_event(
        s, detected_at=1.0, threshold=1.0, model=("m", "1"), top_features=TOP
    )
    ev = json.loads(raw)
    assert ev["subject"] == entity and ev["data"]["input_id"] == "evt-\ud800"


def test_non_finite_contribution_is_refused() -> None:
    top = [TopFeature("f1", 9.0, float("inf"))]
    with pytest.raises(ValueError):
        AlertBuilder("s").anomaly_event(
            S, detected_at=1.0, threshold=1.0, model=("m", "1"), top_features=top
        )


def test_severity_and_time_format() -> None:
    assert severity(3.0, 1.5) == 2.0 and severity(3.0, 0.0) is None and severity(1, -2) is None
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"


def test_score_record() -> None:
    doc = json.loads(AlertBuilder.score_record(S, threshold=1.25, model=("demo", "3")))
    assert doc["id"] == "evt-1" and doc["entity"] == "card-9" and doc["anomaly"] is True
    assert doc["score"] == 2.5 and doc["model"] == {"name": "demo", "version": "3"}
    assert doc["event_time_ms"] == S.event_ms and doc["offset"] == 1234


def test_non_finite_score_is_refused_not_written_as_invalid_json() -> None:
    bad = Scored("e", "k", "t", 0, 0, None, None, float("nan"), False)
    with pytest.raises(ValueError):
        AlertBuilder.score_record(bad, threshold=1.0, model=("m", "1"))


def _uuid5_by_hand(input_id: str, name: str, version: str) -> str:
    """RFC 4122 uuid5 of the documented name, with lone surrogates as their 3 bytes
    (``surrogatepass``), computed here from hashlib and uuid, not by ``alert_id``."""
    text = f"{name}\x00{version}\x00{input_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha1(ALERT_NAMESPACE.bytes + text, usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


lone = st.integers(0xD800, 0xDFFF).map(chr)
with_surrogates = (
    st.lists(lone | st.characters(), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda s: any(0xD800 <= ord(c) <= 0xDFFF for c in s))
)


@given(with_surrogates, with_surrogates)
def test_alert_ids_of_ids_holding_lone_surrogates(a: str, b: str) -> None:
    """Issue 11 §6: ``st.text()`` drew no lone surrogate in 2,000 examples, so the
    ``surrogatepass`` branch never ran and ``replace`` (two ids colliding) survived."""
    assert alert_id(a, "demo", "3") == _uuid5_by_hand(a, "demo", "3")
    if a != b:
        assert alert_id(a, "demo", "3") != alert_id(b, "demo", "3")


def test_ids_that_replace_would_merge_get_different_alert_ids() -> None:
    ids = ["\ud800", "\ud801", "\udfff", "?", "\ufffd"]
    assert len({alert_id(i, "demo", "3") for i in ids}) == len(ids)
    assert alert_id("\ud800", "demo", "3") == _uuid5_by_hand("\ud800", "demo", "3")


long_texts = st.one_of(
    st.text(max_size=50),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\U0001f600", "\ud800", "\udc80"]),
              st.integers(0, 2_000_000)),
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(input_id=long_texts, entity=long_texts, name=long_texts)
def test_every_output_fits_the_output_limit_whatever_the_ids(
    input_id: str, entity: str, name: str
) -> None:
    s = replace(S, input_id=input_id, entity=entity)
    top = [TopFeature(name, 1.0, 2.0)] * 5
    builder = AlertBuilder("tripwire://g/features")
    key = output_key(entity)
    event = builder.anomaly_event(
        s, detected_at=1.0, threshold=1.0, model=("demo", "3"), top_features=top
    )
    score = builder.score_record(s, threshold=1.0, model=("demo", "3"))
    for value, headers in ((event, ALERT_HEADERS), (score, [])):
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        # JSON escapes take at most 6 bytes per UTF-8 byte (\u0000); 4 echoes + the key
        assert size <= 6 * (4 * MAX_ID_BYTES + 5 * MAX_NAME_BYTES) + MAX_ID_BYTES + 2048
    ev, doc = json.loads(event), json.loads(score)
    assert ev["id"] == alert_id(input_id, "demo", "3")  # of the whole id: still de-duplicates
    assert ev["data"]["input_id"] == bounded(input_id) == doc["id"]
    assert ev["subject"] == ev["partitionkey"] == ev["data"]["entity"] == bounded(entity)
    want = {
        field: len(text.encode("utf-8", "surrogatepass"))
        for field, text in (("input_id", input_id), ("entity", entity))
        if bounded(text) != text
    }
    assert ev["data"].get("truncated", {}) == want
    assert doc.get("truncated", {}) == {
        ("id" if k == "input_id" else k): v for k, v in want.items()
    }


def test_a_400_kb_id_gives_a_bounded_alert_that_says_it_was_cut() -> None:
    big = "evt-" + "x" * 400_000
    s = replace(S, input_id=big, entity=big)
    ev = json.loads(
        AlertBuilder("tripwire://g/features").anomaly_event(
            s, detected_at=1.0, threshold=1.0, model=("demo", "3"), top_features=TOP
        )
    )
    assert ev["data"]["truncated"] == {"input_id": 400_004, "entity": 400_004}
    cut = ev["data"]["input_id"]
    assert cut.startswith("evt-xxx") and len(cut.encode()) == MAX_ID_BYTES
    assert cut.endswith("\u2026sha256=" + hashlib.sha256(big.encode()).hexdigest())


def test_an_alert_is_a_structured_mode_cloudevent_keyed_like_its_record() -> None:
    ev = json.loads(
        AlertBuilder("tripwire://g/features").anomaly_event(
            S, detected_at=1.0, threshold=1.0, model=("demo", "3"), top_features=TOP
        )
    )
    assert ev["partitionkey"] == "card-9" == output_key("card-9").decode()
    assert ev["dataschema"] == DATASCHEMA
    assert dict(ALERT_HEADERS) == {"content-type": b"application/cloudevents+json; charset=UTF-8"}
