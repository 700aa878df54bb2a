"""Issue 11 §1: a record on which processing raises is dead-lettered alone.

Each trigger below crashed the whole batch (and so the worker, in a restart loop)
on main; now it is one ``processing_error`` dead letter and its neighbours are
scored. A model that raises on some rows is isolated by halves; one that raises on
everything (a probe row included) is an error no record explains.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.fixtures.registry import Published, anomalous_rows, normal_rows
from tests.stream.harness import packed
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.stream.processing.batch import BatchProcessor, BatchResult, Topics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.processing.isolation import UnexplainedBatchError
from tripwire.stream.wire.alerts import AlertBuilder
from tripwire.stream.wire.codecs import F32_TYPE, PACKED_TYPE
from tripwire.stream.wire.records import InputRecord

YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z


@pytest.fixture
def scorer(registry_factory: Callable[..., Published]) -> Scorer:
    pub = registry_factory()
    return load_scorer(pub.root, f"{pub.name}@production")


def process(records: list[InputRecord], scorer: Scorer, scores: bool = True) -> BatchResult:
    topics = Topics("alerts", "dlq", "scores" if scores else None)
    processor = BatchProcessor(
        topics, AlertBuilder("tripwire://g/in"), Cooldown(0.0), top_k=3,
        max_message_bytes=100_000, clock=lambda: 1000.0,
    )  # fmt: skip
    return processor.process(records, scorer)


def json_record(offset: int, x: np.ndarray, **fields: Any) -> InputRecord:
    doc = {"id": f"j{offset}", "features": x.tolist(), **fields}
    return InputRecord("in", 0, offset, None, None, json.dumps(doc).encode())


def f32_record(offset: int, x: np.ndarray, ts: bytes | None = None) -> InputRecord:
    headers = [("content-type", F32_TYPE.encode())] + ([("tripwire-ts", ts)] if ts else [])
    return InputRecord("in", 0, offset, None, b"k", x.astype("<f4").tobytes(), headers)


def dead(result: BatchResult) -> dict[int, dict[str, bytes]]:
    """The dead letters by source offset."""
    out = {}
    for o in result.outputs:
        if o.topic == "dlq":
            h = dict(o.headers or ())
            out[int(h["tripwire-source-offset"])] = h
    return out


def scored_offsets(result: BatchResult) -> list[int]:
    return [json.loads(o.value)["offset"] for o in result.outputs if o.topic == "scores"]


A = anomalous_rows(1, seed=4)[0]  # scored above the threshold (asserted below)
N = normal_rows(1, seed=3)[0]

# (name, the poison record at offset 1, the exception type it raised on main if known)
TRIGGERS: list[tuple[str, Callable[[], InputRecord], str]] = [
    ("json ts: an integer of 400 digits", lambda: json_record(1, N, ts=10**400), "OverflowError"),
    ("json key: a lone surrogate", lambda: json_record(1, N, key="\ud800"), "UnicodeEncodeError"),
    ("json id: a lone surrogate (the entity)", lambda: json_record(1, A, id="\udfff"),
     "UnicodeEncodeError"),
    ("json ts: a number after year 9999", lambda: json_record(1, A, ts=YEAR_10000_MS), ""),
    ("json ts: a string after year 9999", lambda: json_record(1, A, ts="9999-12-31T23:30:00-01:00"),
     ""),
    ("f32 tripwire-ts header 1e20", lambda: f32_record(1, A, ts=b"1e20"), ""),
    ("packed int64 ts after year 9999", lambda: InputRecord(
        "in", 0, 1, None, None, packed(np.vstack([N, A]), ts=[0, 2**62]),
        [("content-type", PACKED_TYPE.encode())]), ""),
]  # fmt: skip


def _surrogate_entity(record: InputRecord) -> str | None:
    """The entity of a JSON record whose key or id is a lone surrogate, else None."""
    if record.headers:
        return None
    doc = json.loads(record.value)
    entity = doc.get("key", doc.get("id"))
    return entity if entity in ("\ud800", "\udfff") else None


@pytest.mark.parametrize("make", [t[1] for t in TRIGGERS], ids=[t[0] for t in TRIGGERS])
@pytest.mark.parametrize("scores", [True, False], ids=["scores-on", "scores-off"])
def test_a_poison_record_is_dead_lettered_and_its_neighbours_scored(
    scorer: Scorer, make: Callable[[], InputRecord], scores: bool
) -> None:
    assert scorer.score(A[None, :]).is_anomaly[0] and not scorer.score(N[None, :]).is_anomaly[0]
    poison = make()
    records = [json_record(0, A), poison, f32_record(2, A), json_record(3, N)]
    result = process(records, scorer, scores=scores)  # on main: raised
    letters = dead(result)
    packed_poison = dict(poison.headers).get("content-type") == PACKED_TYPE.encode()
    entity = _surrogate_entity(poison)
    if entity is not None:
        # bounded outputs (wire/limits.py) write a lone surrogate as its 3 UTF-8-style
        # bytes: the record that raised UnicodeEncodeError on main is now scored
        assert 1 not in letters and not result.invalid
        if scores:
            (score,) = [o for o in result.outputs
                        if o.topic == "scores" and json.loads(o.value)["offset"] == 1]  # fmt: skip
            assert score.key == entity.encode("utf-8", "surrogatepass")
    elif not scores and 1 not in letters:
        # only an alert (of an anomalous vector) or a score record can fail to build
        assert not result.invalid
    else:
        assert set(letters) == {1}, letters
        h = letters[1]
        assert h["tripwire-reason"] == b"processing_error"
        assert h["tripwire-error"] and h["tripwire-error"] != b"InvalidEvent"
        detail = h["tripwire-detail"].decode()
        assert detail.startswith("processing failed") and len(detail) < 1000
        assert "\n" not in detail and detail.isprintable()
        assert letters[1].get("tripwire-indices") == (b"1" if packed_poison else None)
    alerts = [json.loads(o.value)["data"]["offset"] for o in result.outputs if o.topic == "alerts"]
    assert {0, 2} <= set(alerts)
    if scores:
        assert {0, 2, 3} <= set(scored_offsets(result))
    assert result.consumed == result.scored + sum(result.invalid.values())
    assert len(result.scores) == result.scored


class Poisoned:
    """A detector that raises on any batch holding a row whose first value is ``bad``."""

    def __init__(self, inner: Any, bad: float | None) -> None:
        self.inner, self.bad, self.calls = inner, bad, 0

    def score_and_explain(self, X: np.ndarray) -> Any:
        self.calls += 1
        if self.bad is None or (X[:, 0] == np.float32(self.bad)).any():
            raise RuntimeError("the model chokes\non this")
        return self.inner.score_and_explain(X)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_model_that_raises_on_some_rows_costs_those_records_only(scorer: Scorer) -> None:
    X = normal_rows(64, seed=11)
    X[[5, 40], 0] = 1234.5
    poisoned = dataclasses.replace(scorer, detector=Poisoned(scorer.detector, 1234.5))
    records = [f32_record(i, x) for i, x in enumerate(X)]
    result = process(records, poisoned)
    letters = dead(result)
    assert set(letters) == {5, 40}
    assert {h["tripwire-error"] for h in letters.values()} == {b"RuntimeError"}
    assert all(b"\\n" in h["tripwire-detail"] for h in letters.values())  # escaped
    keep = [i for i in range(64) if i not in (5, 40)]
    assert scored_offsets(result) == keep
    np.testing.assert_array_equal(result.scores, scorer.score(X[keep]).scores)
    assert result.invalid == {"processing_error": 2} and result.consumed == 64
    assert poisoned.detector.calls < 40  # by halves, not one call per record


def test_a_model_that_raises_on_everything_is_not_blamed_on_a_record(scorer: Scorer) -> None:
    broken = dataclasses.replace(scorer, detector=Poisoned(scorer.detector, None))
    with pytest.raises(UnexplainedBatchError, match="no record explains it"):
        process([f32_record(i, x) for i, x in enumerate(normal_rows(4, seed=1))], broken)


def test_a_packed_vector_that_fails_to_build_takes_only_itself(scorer: Scorer) -> None:
    value = packed(np.vstack([A, A, N]), ts=[1000, YEAR_10000_MS, 2000])
    record = InputRecord("in", 0, 0, None, None, value, [("content-type", PACKED_TYPE.encode())])
    result = process([record], scorer)
    (h,) = dead(result).values()
    assert h["tripwire-indices"] == b"1" and h["tripwire-reason"] == b"processing_error"
    assert result.scored == 2 and result.anomalies == 1 and result.consumed == 3


def test_times_before_year_1_never_raise_in_any_encoding(scorer: Scorer) -> None:
    """Before 1970 an event time is unknown (JSON and header numbers below 0 are refused)."""
    records = [
        json_record(0, A, ts="0001-01-01T00:00:00+01:00"),  # year 0 in UTC
        json_record(1, A, ts=-(10**20)),
        f32_record(2, A, ts=b"-1e20"),
        InputRecord("in", 0, 3, None, None, packed(A[None, :], ts=[-(2**63)]),
                    [("content-type", PACKED_TYPE.encode())]),
    ]  # fmt: skip
    result = process(records, scorer)
    letters = dead(result)
    assert {o: h["tripwire-reason"] for o, h in letters.items()} == {1: b"schema", 2: b"schema"}
    alerts = [json.loads(o.value)["data"] for o in result.outputs if o.topic == "alerts"]
    assert [(a["offset"], a["event_time"]) for a in alerts] == [(0, None), (3, None)]
