"""BatchProcessor with a real published model: outputs match Scorer.score exactly."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import numpy as np
import pytest

from tests.fixtures.registry import Published, anomalous_rows, normal_rows
from tests.stream.harness import packed
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.stream.processing.batch import BatchProcessor, Topics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.wire.alerts import AlertBuilder, alert_id
from tripwire.stream.wire.codecs import F32_TYPE, PACKED_TYPE
from tripwire.stream.wire.records import InputRecord

TOPICS = Topics("alerts", "dlq", "scores")


@pytest.fixture
def scorer(registry_factory: Callable[..., Published]) -> Scorer:
    pub = registry_factory()
    return load_scorer(pub.root, f"{pub.name}@production")


def processor(
    cooldown: float = 0.0, topics: Topics = TOPICS, clock: float = 1000.0
) -> BatchProcessor:
    return BatchProcessor(
        topics, AlertBuilder("tripwire://g/in"), Cooldown(cooldown),
        top_k=3, max_message_bytes=100_000, clock=lambda: clock, monotonic=lambda: clock,
    )  # fmt: skip


def rows() -> np.ndarray:
    return np.vstack([normal_rows(40, seed=3), anomalous_rows(10, seed=4)])


def json_record(i: int, x: np.ndarray) -> InputRecord:
    doc = {"id": f"j{i}", "key": f"k{i % 3}", "ts": 1000 * i, "features": x.tolist()}
    return InputRecord("in", 0, i, None, None, json.dumps(doc).encode())


def f32_record(i: int, x: np.ndarray) -> InputRecord:
    headers = [("content-type", F32_TYPE.encode()), ("tripwire-id", f"b{i}".encode())]
    return InputRecord("in", 1, i, 5000, f"k{i % 3}".encode(), x.astype("<f4").tobytes(), headers)


def test_outputs_match_the_scorer_on_the_same_rows(scorer: Scorer) -> None:
    X = rows()
    records = [json_record(i, x) if i % 2 else f32_record(i, x) for i, x in enumerate(X)]
    result = processor().process(records, scorer)
    expected = scorer.score(X)
    np.testing.assert_array_equal(result.scores, expected.scores)
    alerts = [json.loads(o.value) for o in result.outputs if o.topic == "alerts"]
    want = [records[i] for i in np.flatnonzero(expected.is_anomaly)]
    assert 8 <= len(want) < len(X)  # the seeded data has anomalies, not only anomalies
    assert [a["data"]["offset"] for a in alerts] == [r.offset for r in want]
    assert result.anomalies == len(alerts) and result.scored == len(X) == result.consumed
    for a in alerts:
        d = a["data"]
        assert a["id"] == alert_id(d["input_id"], scorer.name, scorer.version)
        assert d["model"] == {"name": scorer.name, "version": scorer.version}
        assert d["severity"] == pytest.approx(d["score"] / scorer.threshold)
        assert d["score"] > scorer.threshold and len(d["top_features"]) == 3
        contributions = [f["contribution"] for f in d["top_features"]]
        assert contributions == sorted(contributions, reverse=True)
    scores = [json.loads(o.value) for o in result.outputs if o.topic == "scores"]
    assert [s["score"] for s in scores] == expected.scores.tolist()
    assert {o.key for o in result.outputs} <= {b"k0", b"k1", b"k2"}


def test_bad_records_become_dead_letters_without_touching_neighbours(scorer: Scorer) -> None:
    X = rows()[:6]
    bad_packed = packed(np.vstack([X[:2], np.full((1, 8), np.nan), X[2:3]]))
    records = [
        json_record(0, X[0]),
        InputRecord("in", 0, 1, None, None, b"{not json"),
        f32_record(2, X[1]),
        InputRecord("in", 0, 3, None, None, b""),
        InputRecord("in", 0, 4, None, None, bad_packed, [("content-type", PACKED_TYPE.encode())]),
        f32_record(5, X[2][:5]),
    ]
    result = processor().process(records, scorer)
    dlq = [o for o in result.outputs if o.topic == "dlq"]
    reasons = [dict(o.headers or [])["tripwire-reason"].decode() for o in dlq]
    assert reasons == ["malformed", "empty", "non_finite", "feature_count"]
    assert dict(dlq[2].headers or [])["tripwire-indices"] == b"2"
    assert dlq[2].value == bad_packed  # the original bytes
    assert result.scored == 5  # 1 JSON + 1 binary + 3 packed vectors
    assert result.consumed == result.scored + sum(result.invalid.values()) == 9
    expected = scorer.score(np.vstack([X[0], X[1], X[:2], X[2:3]])).scores
    np.testing.assert_array_equal(result.scores, expected)


def test_a_score_does_not_depend_on_the_batch(scorer: Scorer) -> None:
    X = np.vstack([rows(), normal_rows(206, seed=9)])  # 256 rows: a full batch
    records = [f32_record(i, x) for i, x in enumerate(X)]
    full = processor().process(records, scorer).scores
    for i in (0, 45, 255):
        alone = processor().process([records[i]], scorer).scores
        assert alone[0] == full[i]  # identical, not merely close


def test_cooldown_suppresses_repeat_alerts_of_an_entity(scorer: Scorer) -> None:
    A = anomalous_rows(6, seed=4)
    records = [f32_record(i * 3, x) for i, x in enumerate(A)]  # all entity k0
    result = processor(cooldown=60.0).process(records, scorer)
    n_anomalous = int(scorer.score(A).is_anomaly.sum())
    assert n_anomalous >= 2
    assert result.anomalies == 1 and result.suppressed == n_anomalous - 1


def test_no_scores_topic_means_no_score_records(scorer: Scorer) -> None:
    result = processor(topics=Topics("alerts", "dlq")).process([f32_record(0, rows()[0])], scorer)
    assert all(o.topic != "scores" for o in result.outputs) and result.scored == 1


def test_a_record_gets_one_dead_letter_for_all_its_refused_vectors(scorer: Scorer) -> None:
    """NaN input (refused by the decoder) and huge input (the model's score
    overflows float32 to inf) in one packed record: one dead letter naming both."""
    X = rows()[:4].copy()
    X[1, 0] = np.nan
    X[3, -1] = 3.7e19  # finite, but its squared error is not
    values = [packed(X), packed(np.vstack([X[3], X[3]]))]
    headers = [("content-type", PACKED_TYPE.encode())]
    records = [InputRecord("in", 0, i, None, None, v, headers) for i, v in enumerate(values)]
    result = processor().process(records, scorer)
    dlq = [dict(o.headers or []) for o in result.outputs if o.topic == "dlq"]
    assert [h["tripwire-source-offset"] for h in dlq] == [b"0", b"1"]
    assert [h["tripwire-indices"] for h in dlq] == [b"1,3", b"0,1"]
    assert [h["tripwire-reason"] for h in dlq] == [b"non_finite", b"non_finite"]
    assert [h["tripwire-error"] for h in dlq] == [b"InvalidEvent", b"ScoreError"]
    assert result.scored == 2 and result.invalid == {"non_finite": 4}
    assert result.consumed == 6


def test_an_id_cannot_forge_a_log_line(scorer: Scorer, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11 §4: on main, an id holding a newline forged a CRITICAL line."""
    x = rows()[0].copy()
    x[-1] = 3.7e19  # finite, but the model's score overflows: logged with the input's id
    forged = "evt-1\n2026-01-01 00:00:00,000 CRITICAL tripwire: the disk is on fire"
    record = InputRecord(
        "in",
        0,
        0,
        None,
        None,
        json.dumps({"id": forged + "x" * 10_000, "features": x.tolist()}).encode(),
    )
    with caplog.at_level(logging.WARNING, logger="tripwire.stream.processing.batch"):
        result = processor().process([record], scorer)
    assert result.invalid == {"non_finite": 1}
    (message,) = caplog.messages
    assert "\n" not in message and len(message) < 400
    assert "for input evt-1\\n2026-01-01 00:00:00,000 CRITICAL" in message


def test_rows_name_the_scored_vectors_and_shared_decoding_changes_nothing(
    scorer: Scorer,
) -> None:
    """``keep_rows`` and a decoding done once for two processors (``tripwire replay``)."""
    X = rows()[:9]
    X[4, 0] = np.nan  # refused: not a row
    records = [json_record(i, x) if i % 2 else f32_record(i, x) for i, x in enumerate(X)]
    records.append(InputRecord("in", 2, 77, None, b"pk", packed(X[:3], ids=["p0", "p1", "p2"]),
                               [("content-type", PACKED_TYPE.encode())]))  # fmt: skip
    plain = processor().process(records, scorer)
    assert plain.rows is None
    kept = BatchProcessor(TOPICS, AlertBuilder("tripwire://g/in"), Cooldown(0.0), top_k=3,
                          max_message_bytes=100_000, keep_rows=True)  # fmt: skip
    decoded = kept.decode(records, scorer)
    first, second = (kept.process(records, scorer, decoded) for _ in range(2))
    for result in (first, second):
        assert result.rows is not None
        np.testing.assert_array_equal(result.scores, plain.scores)
        assert result.rows.ids == ["b0", "j1", "b2", "j3", "j5", "b6", "j7", "b8", "p0", "p1", "p2"]
        assert result.rows.offset.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 77, 77, 77]
        assert result.rows.index.tolist() == [-1] * 8 + [0, 1, 2]
        assert result.rows.partition.tolist() == [1, 0, 1, 0, 0, 1, 0, 1, 2, 2, 2]
        assert result.rows.entities[:2] == ["k0", "k1"] and result.rows.entities[-1] == "pk"
        assert dict(result.invalid) == dict(plain.invalid) == {"non_finite": 1}
