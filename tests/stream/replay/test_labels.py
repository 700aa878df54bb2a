"""Precision, recall, F1 and time-to-detect of a replay, on a small case known by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import Published, anomalous_rows, normal_rows, publish_model
from tests.stream.harness import json_event, produce
from tests.stream.replay.support import replay
from tripwire.core.errors import ConfigError
from tripwire.core.registry import load_scorer
from tripwire.core.registry.evidence import evidence_problems
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.replay.labels import load_labels

BASE_MS = 1_764_000_000_000
ANOMALOUS = {2, 5, 8, 11}


def iso(ms: int) -> str:
    return f"{np.datetime64(ms, 'ms')}Z"


@pytest.fixture(scope="module")
def case(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """12 events e0..e11 at BASE_MS + i s; e2, e5, e8, e11 far outside the normal regime."""
    root = tmp_path_factory.mktemp("replay-labels") / "registry"
    pub: Published = publish_model(root)
    publish_model(root, threshold=1e9, promote="candidate")  # alerts on nothing
    X = normal_rows(12, seed=31)
    X[sorted(ANOMALOUS)] = anomalous_rows(4, seed=32) * 3
    flags = load_scorer(root, "demo@production").score(X).is_anomaly
    assert set(np.flatnonzero(flags).tolist()) == ANOMALOUS  # the case is what it says
    topic = f"labels-{np.random.default_rng().integers(1 << 40)}"
    asyncio.run(create_topics(broker.bootstrap, [topic], 1))
    events = [json_event(f"e{i}", X[i], key=f"k{i % 3}", ts=BASE_MS + 1000 * i) for i in range(12)]
    produce(broker.bootstrap, topic, events)
    return str(pub.root), topic


def run(broker: EmbeddedBroker, case: tuple[str, str], labels: Path) -> dict:
    seen = replay(broker.bootstrap, case[0], case[1], ["demo@production", "demo@candidate"],
                  labels=str(labels))  # fmt: skip
    assert evidence_problems(seen.doc) == []
    return seen.doc


@pytest.mark.integration
def test_id_labels_give_exact_precision_recall_f1(
    broker: EmbeddedBroker, case: tuple[str, str], tmp_path: Path
) -> None:
    # e2, e5: true alerts; e8: a false one; e3: missed; e10, e11 unlabelled
    rows = ["id,label"] + [f"e{i},{int(i in (2, 3, 5))}" for i in range(10)]
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    doc = run(broker, case, path)
    assert doc["labels"] == {"source": str(path), "labelled_events": 10, "positives": 3}
    assert doc["models"]["demo@1"]["labels"] == {
        "tp": 2, "fp": 1, "fn": 1, "tn": 6,
        "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
    }  # fmt: skip
    assert doc["models"]["demo@2"]["labels"] == {
        "tp": 0, "fp": 0, "fn": 3, "tn": 7, "precision": None, "recall": 0.0, "f1": None,
    }  # fmt: skip


@pytest.mark.integration
def test_incidents_give_time_to_detect(
    broker: EmbeddedBroker, case: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "incidents.json"
    incidents = [(BASE_MS + 1500, BASE_MS + 6000), (BASE_MS + 9000, BASE_MS + 9500)]
    path.write_text(json.dumps(
        {"incidents": [{"start": iso(s), "end": iso(e)} for s, e in incidents]}))  # fmt: skip
    doc = run(broker, case, path)
    # inside: e2..e6 (the end is included) and e9; alerts e2, e5 inside, e8, e11 outside
    assert doc["labels"] == {
        "source": str(path), "labelled_events": 12, "positives": 6, "incidents": 2,
    }  # fmt: skip
    scores = doc["models"]["demo@1"]["labels"]
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (2, 2, 4, 4)
    first, second = scores["incidents"]
    assert first["detected_at"] == "2025-11-24T16:00:02.000000Z"  # e2
    assert first["start"] == "2025-11-24T16:00:01.500000Z"
    assert first["time_to_detect_s"] == 0.5
    assert second["detected_at"] is None and second["time_to_detect_s"] is None
    never = doc["models"]["demo@2"]["labels"]["incidents"]
    assert [i["detected_at"] for i in never] == [None, None]


def test_label_files_in_every_documented_shape(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("id,label,note\na,1,x\nb,0,y\n")
    assert load_labels(str(csv)).ids == {"a": 1, "b": 0}
    spans = tmp_path / "b.csv"
    spans.write_text("start,end\n2025-11-24T16:00:00Z,1764000001000\n")
    assert load_labels(str(spans)).incidents.tolist() == [[BASE_MS, BASE_MS + 1000]]
    listed = [{"id": "a", "label": 1}, {"id": 7, "label": "0"}]
    for doc in ({"events": {"a": 1, "7": 0}}, {"events": listed}, listed):
        path = tmp_path / "c.json"
        path.write_text(json.dumps(doc))
        assert load_labels(str(path)).ids == {"a": 1, "7": 0}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("id,label\na,2\n", "line 2: the label must be 0 or 1"),
        ("x,y\n1,2\n", "needs the columns id,label or start,end"),
        ("start,end\n2025-11-24T16:00:00,5\n", "UTC offset"),
        ("start,end\n10,5\n", "the end is before the start"),
        ('{"events": {"a": true}}', "the label must be 0 or 1"),
        ('{"other": 1}', "expected"),
        ("{", "not JSON"),
        ("id,label\n", "no labelled ids and no incidents"),
    ],
)
def test_bad_label_files_are_refused_with_the_reason(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_labels(str(path))
