"""``tripwire worker`` end to end: real broker, real registry, real subprocess.

One worker serves the whole module (start-up is seconds); each test checks one
promise on the same run, and the last one stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiokafka import ConsumerRecord

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import anomalous_rows, normal_rows, publish_model
from tests.stream.harness import (
    MAX_MESSAGE_BYTES,
    Out,
    WorkerProcess,
    bad_inputs,
    committed,
    consume,
    f32_event,
    json_event,
    log_ends,
    packed_event,
    produce,
    wait_for,
)
from tests.stream.outputs import check_alert, check_score
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.wire.alerts import ALERT_NAMESPACE
from tripwire.stream.wire.encodings import Events, encoding

pytestmark = pytest.mark.integration

PARTITIONS = 3


@dataclass
class Run:
    """One worker run: what went in, what came out."""

    bootstrap: str
    worker: WorkerProcess
    scorer: Scorer
    topics: dict[str, str]
    group: str
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # valid id -> vector
    entity: dict[str, str] = field(default_factory=dict)
    bad: dict[tuple[int, int], tuple[str, bytes]] = field(default_factory=dict)
    outputs: dict[str, list[ConsumerRecord]] = field(default_factory=dict)
    placed: list[tuple[int, int]] = field(default_factory=list)  # every input record

    def send(self, records: list[Out]) -> list[tuple[int, int]]:
        placed = produce(self.bootstrap, self.topics["features"], records)
        self.placed += placed
        return placed

    def read(self, kind: str, n: int | None = None, timeout: float = 60.0) -> list[ConsumerRecord]:
        """Records of an output topic: at least ``n``, or (``None``) all there are now."""
        until = None if n is None else (lambda rs: len(rs) >= n)
        self.outputs[kind] = consume(self.bootstrap, self.topics[kind], until, timeout)
        return self.outputs[kind]

    def scores_by_id(self) -> dict[str, list[dict]]:
        by_id: dict[str, list[dict]] = {}
        for r in self.read("scores"):
            doc = check_score(r)  # valid against the published schema, every one
            by_id.setdefault(doc["id"], []).append(doc)
        return by_id


def valid_inputs(run: Run) -> list[Out]:
    X = np.vstack([normal_rows(270, seed=11), anomalous_rows(30, seed=12)])
    X = X[np.random.default_rng(3).permutation(len(X))]
    out = []
    for i, x in enumerate(X):
        eid, key = f"v{i}", f"k{i % 7}"
        run.rows[eid], run.entity[eid] = x, key
        if i % 3 == 0:
            out.append(json_event(eid, x, key=key, ts=int(time.time() * 1000)))
        elif i % 3 == 1:
            names = [f"f{j}" for j in reversed(range(len(x)))]  # by name, not in model order
            events = Events(x[::-1][None, :], ids=[eid], keys=[key], names=names)
            [r] = encoding("json").encode(events)
            out.append(Out(r.value, key=r.key))
        else:
            out.append(f32_event(eid, x, key))
    P = normal_rows(5, seed=13)
    P[2] = np.nan
    ids = [f"p{j}" for j in range(5)]
    for j in (0, 1, 3, 4):
        run.rows[ids[j]], run.entity[ids[j]] = P[j], "pk"
    out.append(packed_event(ids, P, "pk"))
    return out


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("e2e")
    pub = publish_model(tmp / "registry")
    tag = tmp.name.rsplit("-", 1)[-1]
    topics = {
        k: f"{k}-{tag}-{time.monotonic_ns()}" for k in ("features", "alerts", "dlq", "scores")
    }
    asyncio.run(create_topics(broker.bootstrap, [topics["features"]], PARTITIONS))
    group = f"g-{topics['features']}"
    worker = WorkerProcess(
        Path(tmp) / "worker.log", bootstrap=broker.bootstrap, registry=pub.root,
        model_ref="demo", input_topic=topics["features"], alert_topic=topics["alerts"],
        dlq_topic=topics["dlq"], scores_topic=topics["scores"], group_id=group,
        max_message_bytes=MAX_MESSAGE_BYTES, commit_interval=0.5, max_wait=0.05,
    )  # fmt: skip
    r = Run(broker.bootstrap, worker, load_scorer(pub.root, "demo@production"), topics, group)
    try:
        records = valid_inputs(r)
        bad = bad_inputs()
        # interleave: a bad record after every ~25 valid ones, spread over partitions
        mixed: list[tuple[str | None, Out]] = [(None, o) for o in records]
        for n, item in enumerate(bad):
            mixed.insert(25 * (n + 1), item)
        placed = r.send([o for _, o in mixed])
        for (reason, out), where in zip(mixed, placed, strict=True):
            if reason is not None:
                r.bad[where] = (reason, out.value)
        r.read("scores", len(r.rows))
        r.read("dlq", len(r.bad) + 1)  # + the packed record's NaN vector
        yield r
    finally:
        worker.stop()


def expected_anomalies(run: Run) -> dict[str, float]:
    ids = sorted(run.rows)
    result = run.scorer.score(np.vstack([run.rows[i] for i in ids]))
    return {i: float(s) for i, s, a in zip(ids, result.scores, result.is_anomaly, strict=True) if a}


def test_every_valid_event_is_scored_with_the_models_score(run: Run) -> None:
    by_id = run.scores_by_id()
    assert set(by_id) == set(run.rows)
    assert all(len(v) == 1 for v in by_id.values())  # no crash, so no duplicates
    ids = sorted(run.rows)
    want = run.scorer.score(np.vstack([run.rows[i] for i in ids])).scores
    got = [by_id[i][0]["score"] for i in ids]
    assert got == want.tolist()  # identical to `tripwire score`'s path, not just close


def test_alerts_are_exactly_the_expected_anomalies(run: Run) -> None:
    want = expected_anomalies(run)
    assert 20 <= len(want) <= 60  # the seeded stream has anomalies, and mostly normal rows
    # And nothing more arrives: once every input offset is committed, every output
    # of every input is in the log (a batch's offsets are committed only after the
    # broker acked all its outputs), so reading to the log end reads them all: a
    # barrier on the worker's progress, not a sleep (issue 11 §6).
    ends = log_ends(run.placed, PARTITIONS)
    wait_for(
        lambda: committed(run.bootstrap, run.group, run.topics["features"], PARTITIONS) == ends,
        60, "every input committed",
    )  # fmt: skip
    alerts = run.read("alerts")
    docs = [check_alert(r) for r in alerts]  # CloudEvents SDK + JSON Schema, every alert
    assert {d["data"]["input_id"]: d["data"]["score"] for d in docs} == want
    assert len(docs) == len(want)
    for record, doc in zip(alerts, docs, strict=True):
        data = doc["data"]
        # the documented uuid5, computed here (not by alert_id: issue 11 §6)
        name = f"demo\x00{run.scorer.version}\x00{data['input_id']}"
        assert doc["id"] == str(uuid.uuid5(ALERT_NAMESPACE, name))
        assert record.key == run.entity[data["input_id"]].encode() == doc["subject"].encode()
        assert data["model"] == {"name": "demo", "version": run.scorer.version}
        assert data["topic"] == run.topics["features"] and data["partition"] == record.partition
        assert data["severity"] == pytest.approx(data["score"] / run.scorer.threshold)
        assert len(data["top_features"]) == 5 and data["event_time"] is not None


def test_bad_input_goes_to_the_dead_letter_topic_with_its_reason(run: Run) -> None:
    dlq = run.outputs["dlq"]
    seen: dict[tuple[int, int], tuple[str, bytes]] = {}
    for r in dlq:
        h = {k: v.decode() for k, v in r.headers}
        where = (int(h["tripwire-source-partition"]), int(h["tripwire-source-offset"]))
        assert h["tripwire-source-topic"] == run.topics["features"]
        assert h["tripwire-error"] and h["tripwire-detail"]
        seen[where] = (h["tripwire-reason"], r.value)
        if h["tripwire-reason"] == "non_finite" and "tripwire-indices" in h:
            assert h["tripwire-indices"] == "2"  # the packed record's NaN vector
            del seen[where]
    assert {w: reason for w, (reason, _) in seen.items()} == {
        w: reason for w, (reason, _) in run.bad.items()
    }
    for where, (reason, value) in run.bad.items():
        want = value[:MAX_MESSAGE_BYTES] if reason == "oversize" else value
        assert seen[where][1] == want  # the original bytes


def test_offsets_are_committed(run: Run) -> None:
    ends = log_ends(run.placed, PARTITIONS)
    wait_for(
        lambda: committed(run.bootstrap, run.group, run.topics["features"], PARTITIONS) == ends,
        timeout=15, what=f"committed offsets == {ends}",
    )  # fmt: skip


def test_metrics_match_what_was_processed(run: Run) -> None:
    m = run.worker.metrics()
    n_bad = Counter(reason for reason, _ in run.bad.values())
    n_bad["non_finite"] += 1  # the packed record's NaN vector
    assert m["tripwire_events_scored_total"] == len(run.rows)
    assert m["tripwire_events_consumed_total"] == len(run.rows) + sum(n_bad.values())
    for reason in ("malformed", "empty", "oversize", "unknown_encoding", "schema",
                   "feature_count", "feature_names", "non_numeric", "non_finite"):  # fmt: skip
        assert m[f'tripwire_invalid_events_total{{reason="{reason}"}}'] == n_bad[reason], reason
    assert m["tripwire_anomalies_total"] == len(expected_anomalies(run))
    assert m["tripwire_alerts_suppressed_total"] == 0
    assert m[f'tripwire_model_info{{name="demo",version="{run.scorer.version}"}}'] == 1
    assert m["tripwire_threshold"] == run.scorer.threshold
    assert m["tripwire_score_ratio_count"] == len(run.rows)
    assert m["tripwire_end_to_end_latency_seconds_count"] == len(run.rows)
    assert m["tripwire_batch_size_sum"] == len(run.rows)
    assert m["tripwire_inference_seconds_count"] == m["tripwire_batch_size_count"] >= 1
    assert m["tripwire_produce_errors_total"] == 0
    assert time.time() - m["tripwire_last_processed_timestamp_seconds"] < 60
    for p in range(PARTITIONS):
        assert m[f'tripwire_consumer_lag{{partition="{p}"}}'] == 0


def test_a_score_is_identical_alone_or_in_a_full_batch(run: Run) -> None:
    x = anomalous_rows(1, seed=21)[0]
    run.send([f32_event("solo", x, "s")])
    wait_for(lambda: "solo" in run.scores_by_id(), 30, "the lone event's score")
    burst = [f32_event(f"b{i}", r, "s") for i, r in enumerate(normal_rows(300, seed=22))]
    burst.insert(150, f32_event("in-batch", x, "s"))
    before = run.worker.metrics()
    run.send(burst)  # one key: one partition, one burst
    by_id = wait_for(lambda: (s := run.scores_by_id()) and "b299" in s and s, 30, "the burst")
    assert by_id["in-batch"][0]["score"] == by_id["solo"][0]["score"]
    after = run.worker.metrics()
    big = (after["tripwire_batch_size_count"] - after['tripwire_batch_size_bucket{le="128.0"}']) - (
        before["tripwire_batch_size_count"] - before['tripwire_batch_size_bucket{le="128.0"}']
    )
    assert big >= 1  # the burst really was scored in large batches


def test_sigterm_drains_in_flight_batches_and_commits(run: Run) -> None:
    rows = normal_rows(8000, seed=31)
    events = [f32_event(f"t{i}", r, f"k{i % 5}") for i, r in enumerate(rows)]
    run.send(events)
    scored_before = len(run.rows) + 301
    wait_for(
        lambda: run.worker.metric("tripwire_events_scored_total") > scored_before,
        30, "processing under way", every=0.02,
    )  # fmt: skip
    assert run.worker.stop() == 0  # SIGTERM
    assert "worker stopped (exit code 0)" in run.worker.log()
    done = committed(run.bootstrap, run.group, run.topics["features"], PARTITIONS)
    output_at = {
        (d["partition"], d["offset"]) for docs in run.scores_by_id().values() for d in docs
    }
    output_at |= set(run.bad)
    for p in range(PARTITIONS):
        upto = done[p] or 0
        with_output = [o for q, o in output_at if q == p]
        missing = [o for o in range(upto) if (p, o) not in output_at]
        assert not missing, (
            f"partition {p}: committed {upto} but offsets {missing[:5]} lack outputs"
        )
        assert upto == max(with_output) + 1, f"partition {p}: processed events left uncommitted"
    inputs = sum(log_ends(run.placed, PARTITIONS).values())
    print(f"SIGTERM: {inputs} input records, {sum(v or 0 for v in done.values())} committed")
