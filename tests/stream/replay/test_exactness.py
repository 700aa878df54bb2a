"""``tripwire replay`` against a real worker: the same scores and alert ids, no side effects.

One worker scores a topic of valid and bad records (JSON, f32, packed; one record
of every dead-letter reason, one with a header key that is not UTF-8) onto its
alert, score and dead-letter topics; the tests replay that topic and compare.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from tests.fixtures.kafka import create_topics
from tests.fixtures.registry import Published, anomalous_rows, normal_rows, publish_model
from tests.stream.harness import (
    MAX_MESSAGE_BYTES,
    Out,
    RawKey,
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
from tests.stream.replay.support import replay
from tripwire.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

PARTITIONS = 3


@dataclass
class Run:
    bootstrap: str
    pub: Published
    topics: dict[str, str]
    group: str
    valid: set[str] = field(default_factory=set)
    outputs: dict[str, list[ConsumerRecord]] = field(default_factory=dict)


def inputs(run: Run) -> list[Out]:
    X = np.vstack([normal_rows(240, seed=21), anomalous_rows(24, seed=22)])
    X = X[np.random.default_rng(4).permutation(len(X))]
    out = []
    for i, x in enumerate(X):
        eid = f"v{i}"
        run.valid.add(eid)
        if i % 2:
            out.append(json_event(eid, x, key=f"k{i % 5}", ts=1_764_000_000_000 + i))
        else:
            out.append(f32_event(eid, x, f"k{i % 5}"))
    P = anomalous_rows(5, seed=23)
    P[1] = np.nan  # refused alone (non_finite); its neighbours are scored
    out.append(packed_event([f"p{j}" for j in range(5)], P, "pk"))
    run.valid |= {"p0", "p2", "p3", "p4"}
    return out


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("replay-exact")
    pub = publish_model(tmp / "registry")
    topics = {k: f"{k}-rx-{time.monotonic_ns()}" for k in ("features", "alerts", "dlq", "scores")}
    asyncio.run(create_topics(broker.bootstrap, [topics["features"]], PARTITIONS))
    r = Run(broker.bootstrap, pub, topics, f"g-{topics['features']}")
    records = inputs(r)
    bad = [o for _, o in bad_inputs()]
    bad.append(Out(b"{}", headers=[(RawKey(b"\xff\xfe"), b"x")]))  # aiokafka cannot parse it
    for n, item in enumerate(bad):
        records.insert(20 * (n + 1), item)
    placed = produce(r.bootstrap, topics["features"], records)
    worker = WorkerProcess(
        Path(tmp) / "worker.log", bootstrap=r.bootstrap, registry=pub.root, model_ref="demo",
        input_topic=topics["features"], alert_topic=topics["alerts"], dlq_topic=topics["dlq"],
        scores_topic=topics["scores"], group_id=r.group, max_message_bytes=MAX_MESSAGE_BYTES,
        commit_interval=0.5, max_wait=0.05,
    )  # fmt: skip
    try:
        r.outputs["scores"] = consume(
            r.bootstrap, topics["scores"], lambda rs: len(rs) >= len(r.valid)
        )
        r.outputs["dlq"] = consume(r.bootstrap, topics["dlq"], lambda rs: len(rs) >= len(bad) + 1)
        ends = log_ends(placed, PARTITIONS)
        wait_for(lambda: committed(r.bootstrap, r.group, topics["features"], PARTITIONS) == ends,
                 timeout=30, what="the worker committed everything")  # fmt: skip
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    r.outputs["alerts"] = consume(r.bootstrap, topics["alerts"])
    yield r


def test_replay_gives_the_workers_scores_and_alert_ids(run: Run) -> None:
    seen = replay(run.bootstrap, str(run.pub.root), run.topics["features"], ["demo@production"],
                  max_message_bytes=MAX_MESSAGE_BYTES)  # fmt: skip
    worker_scores = {}
    for r in run.outputs["scores"]:
        doc = json.loads(r.value)
        worker_scores[doc["id"]] = doc["score"]
    assert len(worker_scores) == len(run.outputs["scores"]) == len(run.valid)
    replayed = {i: s for i, (s,) in seen.scores[0].items()}  # each event once
    assert replayed == worker_scores  # equal floats, not close ones
    worker_alerts = {json.loads(r.value)["id"]: json.loads(r.value) for r in run.outputs["alerts"]}
    replay_alerts = {a["id"]: a for a in seen.alerts[0]}
    assert len(worker_alerts) >= 20
    assert replay_alerts.keys() == worker_alerts.keys()
    for aid, alert in replay_alerts.items():
        w = worker_alerts[aid]["data"]
        got = alert["data"]
        assert (got["input_id"], got["score"], got["partition"], got["offset"], got["entity"]) == (
            w["input_id"], w["score"], w["partition"], w["offset"], w["entity"])  # fmt: skip
    m = seen.doc["models"][f"demo@{run.pub.version}"]
    assert m["events"] == len(run.valid) and m["alerts"] == len(worker_alerts)


def test_bad_records_are_refused_with_the_workers_dead_letter_reasons(run: Run) -> None:
    seen = replay(run.bootstrap, str(run.pub.root), run.topics["features"], ["demo@production"],
                  max_message_bytes=MAX_MESSAGE_BYTES)  # fmt: skip
    worker = Counter()
    for r in run.outputs["dlq"]:
        headers = dict(r.headers)
        n = len(headers["tripwire-indices"].split(b",")) if "tripwire-indices" in headers else 1
        worker[headers["tripwire-reason"].decode()] += n
    assert worker["malformed"] >= 2  # the bad JSON and the unparseable header key
    assert dict(seen.tally.models[0].refused) == dict(worker)


def test_a_version_against_itself_differs_in_nothing(run: Run) -> None:
    """Two references to one version, each scored by its own processor."""
    refs = ["demo@production", f"demo@{run.pub.version}"]
    seen = replay(run.bootstrap, str(run.pub.root), run.topics["features"], refs,
                  max_message_bytes=MAX_MESSAGE_BYTES, max_batch=7)  # fmt: skip
    (c,) = seen.doc["comparisons"]
    alerts = seen.doc["models"][c["baseline"]]["alerts"]
    assert (c["only_baseline"], c["only_candidate"], c["both"]) == (0, 0, alerts) and alerts >= 20
    assert c["entities"] == []
    assert c["score_shift"] == {"p50": 0.0, "p90": 0.0, "p99": 0.0}
    assert seen.scores[0] == seen.scores[1]


async def _groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


def test_replay_joins_no_group_commits_nothing_and_produces_nothing(run: Run) -> None:
    topics = list(run.topics.values())
    before_groups = asyncio.run(_groups(run.bootstrap))
    before_commits = committed(run.bootstrap, run.group, run.topics["features"], PARTITIONS)
    before_records = {t: len(consume(run.bootstrap, t)) for t in topics}
    # a part of the range: a commit of where the replay stopped would move the group back
    seen = replay(run.bootstrap, str(run.pub.root), run.topics["features"], ["demo@production"],
                  start="0", end="5", max_message_bytes=MAX_MESSAGE_BYTES)  # fmt: skip
    assert seen.reader.records_read == 5 * PARTITIONS
    assert asyncio.run(_groups(run.bootstrap)) == before_groups
    assert committed(run.bootstrap, run.group, run.topics["features"], PARTITIONS) == before_commits
    assert {t: len(consume(run.bootstrap, t)) for t in topics} == before_records
