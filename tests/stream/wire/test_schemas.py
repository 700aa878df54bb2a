"""The published JSON Schemas of alerts and score records, against what the builder writes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tripwire.core.scorer import TopFeature
from tripwire.stream.wire.alerts import DATASCHEMA, AlertBuilder, Scored
from tripwire.stream.wire.schemas import SCHEMA_FILES, output_problems, schema

S = Scored("evt-1", "card-9", "features", 3, 1234, None, 1_764_324_000_000.0, 2.5, True)
TOP = [TopFeature("f1", 9.0, 4.0)]
B = AlertBuilder("tripwire://g/features")


def alert(s: Scored = S, threshold: float = 1.25) -> dict:
    raw = B.anomaly_event(
        s, detected_at=1_764_324_000.5, threshold=threshold, model=("demo", "3"), top_features=TOP
    )
    return json.loads(raw)


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_each_schema_is_a_valid_versioned_draft_2020_12_schema(name: str) -> None:
    doc = schema(name)
    Draft202012Validator.check_schema(doc)
    assert doc["$id"].endswith(":1") and ".v1." in SCHEMA_FILES[name]


def test_dataschema_names_the_data_schema() -> None:
    assert schema("anomaly-data")["$id"] == DATASCHEMA == alert()["dataschema"]


@settings(max_examples=50, deadline=None)
@given(
    input_id=st.text(max_size=3000),
    entity=st.text(max_size=3000),
    index=st.none() | st.integers(0, 10**6),
    event_ms=st.none() | st.floats(0, 253_402_300_799_000),
    threshold=st.floats(-10, 10),
)
def test_every_alert_and_score_record_the_builder_writes_is_valid(
    input_id: str, entity: str, index: int | None, event_ms: float | None, threshold: float
) -> None:
    s = replace(S, input_id=input_id, entity=entity, index=index, event_ms=event_ms)
    ev = alert(s, threshold)
    assert output_problems("anomaly", ev) == []
    assert output_problems("anomaly-data", ev["data"]) == []
    score = json.loads(B.score_record(s, threshold=threshold, model=("demo", "3")))
    assert output_problems("score", score) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda ev: ev.pop("partitionkey"),
        lambda ev: ev.update(extra=1),
        lambda ev: ev.update(id="not-a-uuid"),
        lambda ev: ev["data"].pop("score"),
        lambda ev: ev["data"].update(truncated={"score": 3}),
        lambda ev: ev["data"].update(truncated={}),
        lambda ev: ev["data"].update(event_time="2026-11-28 10:00:00"),
        lambda ev: ev["data"]["model"].update(version="v3"),
        lambda ev: ev["data"]["top_features"].append({"name": "f2", "value": "9"}),
    ],
)
def test_a_broken_alert_is_refused(breakage: object) -> None:
    ev = alert()
    breakage(ev)  # type: ignore[operator]
    assert output_problems("anomaly", ev)
