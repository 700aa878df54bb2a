"""Scenario 3: 10,000+ malformed records interleaved with 10,000 valid events.

Random bytes, truncated and deeply nested JSON, wrong feature counts and names,
NaN/inf/huge numbers, strings, 10 MB values, empty values and tombstones, wrong
text encodings and headers (``fuzz.KINDS``). The worker never exits, every valid
event is scored, every bad record is in the dead-letter topic with an allowed reason
and its original bytes. A hypothesis test feeds arbitrary batches to the worker's
batch processor for the same promise without a broker.
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.registry import N_FEATURES, anomalous_rows, normal_rows, publish_model
from tests.stream.harness import Out, WorkerProcess, f32_event, json_event, packed_event
from tests.stream.reliability.fuzz import TEN_MB, malformed_records, ten_megabytes
from tests.stream.reliability.ledger import new_run
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.embedded import EmbeddedBroker
from tripwire.stream.compat import UNDECODABLE_HEADER_KEY
from tripwire.stream.observability.metrics import INVALID_REASONS
from tripwire.stream.processing.batch import BatchProcessor, Topics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.wire.alerts import AlertBuilder
from tripwire.stream.wire.codecs import F32_TYPE, FLAG_IDS, FLAG_TS, JSON_TYPE, PACKED_TYPE
from tripwire.stream.wire.encodings import Events, encoding
from tripwire.stream.wire.records import InputRecord

PARTITIONS = 3
N_VALID, N_MALFORMED, N_HUGE = 10_000, 10_200, 3
MAX_MESSAGE_BYTES = 1_000_000  # the worker's default


def valid_records(n: int) -> list[tuple[Out, dict[str, np.ndarray], set[str]]]:
    """``n`` valid events as JSON (list and named), f32 and packed records.

    Every fifth packed record carries one NaN vector: its neighbours are scored and
    the record is also dead-lettered (``non_finite``).
    """
    X = np.vstack([normal_rows(n - 100, seed=51), anomalous_rows(100, seed=52)])
    X = X[np.random.default_rng(53).permutation(n)]
    out: list[tuple[Out, dict[str, np.ndarray], set[str]]] = []
    i = 0
    while i < n:
        eid, key, form = f"v{i}", f"k{i % 13}", (i // 7) % 4
        if form == 3 and i + 5 <= n:
            ids, block = [f"v{j}" for j in range(i, i + 5)], X[i : i + 5].copy()
            rows, reasons = dict(zip(ids, block, strict=True)), set()
            if (i // 7) % 5 == 0:
                block[2, 1] = np.nan
                rows.pop(ids[2])
                reasons = {"non_finite"}
            out.append((packed_event(ids, block, key), rows, reasons))
            i += 5
            continue
        if form == 1:
            names = [f"f{j}" for j in range(X.shape[1])]
            [r] = encoding("json").encode(Events(X[i : i + 1], [eid], [key], names=names))
            record = Out(r.value, key=r.key)
        else:
            record = (json_event if form == 0 else f32_event)(eid, X[i], key)
        out.append((record, {eid: X[i]}, set()))
        i += 1
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_fuzzed_input_never_stops_the_worker_and_every_record_is_accounted_for(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rng = random.Random(6)
    pub = publish_model(tmp_path / "registry")
    settings, ledger = new_run(broker, pub, "fuzz", PARTITIONS, max_message_bytes=MAX_MESSAGE_BYTES)
    bad = malformed_records(rng, N_MALFORMED)
    bad += [(*ten_megabytes(rng), "ten_megabytes") for _ in range(N_HUGE)]
    items = [(o, rows, reasons, "valid") for o, rows, reasons in valid_records(N_VALID)]
    items += [(o, {}, reasons, kind) for o, reasons, kind in bad]
    rng.shuffle(items)
    for o, rows, reasons, _ in items:
        ledger.plan(o, rows, reasons)
    worker = WorkerProcess(tmp_path / "worker.log", **settings)
    try:
        placed = ledger.send()
        fig, out = ledger.tally("fuzzed input", timeout=180)
        alive = worker.proc.poll() is None
        m = worker.metrics()
    finally:
        code = worker.stop()
    assert alive and code == 0, worker.log()[-3000:]
    for line in worker.log().splitlines():
        assert " ERROR " not in line and " CRITICAL " not in line and "Traceback" not in line, line
    # Dead letters keep the original bytes (an oversize value cut to the limit).
    for (o, _, reasons, kind), where in zip(items, placed, strict=True):
        for headers, value in out.dead.get(where, []) if reasons else []:
            original = o.value or b""
            if headers["tripwire-reason"] == "oversize":
                assert headers["tripwire-truncated"] == str(len(original))
                original = original[:MAX_MESSAGE_BYTES]
            assert value == original, (kind, where)
    # The metrics agree with the topics.
    reasons_seen = Counter(h["tripwire-reason"] for ls in out.dead.values() for h, _ in ls)
    for reason in INVALID_REASONS:
        got = m[f'tripwire_invalid_events_total{{reason="{reason}"}}']
        assert got == reasons_seen[reason], reason
    assert m["tripwire_events_scored_total"] == fig.scored == len(ledger.rows)
    assert m["tripwire_events_consumed_total"] == fig.scored + sum(reasons_seen.values())
    fig.extra.update(
        malformed_records=len(bad), largest_value_bytes=max(len(o.value or b"") for o, *_ in bad),
        by_reason=dict(sorted(reasons_seen.items())),
    )  # fmt: skip
    fig.check()
    assert len(bad) >= 10_000 and fig.dead_lettered == len(ledger.bad)
    assert fig.extra["largest_value_bytes"] > TEN_MB


# -- the batch processor under arbitrary input (no broker) -------------------------


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    pub = publish_model(tmp_path_factory.mktemp("fuzz-registry"))
    return load_scorer(pub.root, "demo@production")


floats = st.floats(width=32) | st.integers(-(10**40), 10**40) | st.sampled_from([1e39, -1e300])
#: Issue 11 §1: what crashed a whole batch on main. Integers of hundreds of digits, lone
#: surrogates (``st.text()`` almost never draws one), times before year 1 and after 9999.
huge_ints = st.integers(-(10**400), 10**400) | st.sampled_from([10**400, -(10**300)])
surrogates = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d"])
texts = st.text(max_size=4) | surrogates
times_ms = st.sampled_from([253_402_300_800_000, 2**62, 2**63 - 1, -(2**63), 1e20, -1e20]) | (
    st.integers(-(2**63), 2**63 - 1)
)
time_texts = st.sampled_from([
    "9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+00:00",
])  # fmt: skip
ctypes = st.sampled_from([JSON_TYPE, F32_TYPE, PACKED_TYPE, "APPLICATION/JSON; x=1", "text/csv"])
header_values = (
    ctypes.map(str.encode) | st.binary(max_size=12) | st.none()
    | st.sampled_from([b"12", b"-1", b"1e20", b"-1e20", b"1e400", b"253402300800000", b"\xff"])
)  # fmt: skip
#: What the lenient fetch makes of a header key that is not UTF-8 (tests/stream/kafka/
#: test_lenient_fetch.py): the key escaped, and a marker header holding its bytes.
undecodable = (
    st.binary(min_size=1, max_size=4)
    .filter(lambda b: not _utf8(b))
    .map(lambda b: [(b.decode("utf-8", "backslashreplace"), b""), (UNDECODABLE_HEADER_KEY, b)])
)
header_names = st.sampled_from(["content-type", "Content-Type", "tripwire-id", "tripwire-ts"])
headers = st.builds(
    lambda hs, bad: hs + bad,
    st.lists(st.tuples(header_names | st.text(max_size=3), header_values), max_size=3),
    st.just([]) | undecodable,
)
json_docs = st.fixed_dictionaries(
    {"features": st.lists(floats | st.text(max_size=2) | st.none(), min_size=6, max_size=10)},
    optional={"id": texts | st.integers() | huge_ints, "key": texts | huge_ints,
              "ts": st.integers(-5, 2**62) | st.text(max_size=25) | huge_ints | times_ms
              | time_texts},
).map(lambda d: json.dumps(d).encode())  # fmt: skip
#: Features that score above the threshold half the time: the alert path must run too.
anomalous = st.sampled_from([0.0, 8.0, 50.0])
vector = st.lists(st.floats(width=32) | anomalous, min_size=N_FEATURES, max_size=N_FEATURES)
good_json = st.fixed_dictionaries(
    {"id": texts.filter(bool) | st.integers(), "features": vector},
    optional={"key": texts.filter(bool), "ts": times_ms | time_texts | huge_ints},
).map(lambda d: json.dumps(d).encode())  # fmt: skip
f32_values = st.lists(st.floats(width=32) | anomalous, min_size=6, max_size=10).map(
    lambda v: np.asarray(v, "<f4").tobytes()
)
#: Packed records of any width d (issue 11 §6: d < n_features was accepted and
#: only the 185-s broker test noticed), with or without ids, keys and times.
packed_values = st.tuples(
    st.integers(1, 4),
    st.sampled_from([1, N_FEATURES - 1, N_FEATURES, N_FEATURES, N_FEATURES + 1]),
    st.booleans(),
    st.data(),
).map(lambda t: _packed(*t))
values = st.none() | st.binary(max_size=300) | json_docs | good_json | f32_values | packed_values
records = st.lists(st.tuples(values, headers, st.none() | st.binary(max_size=8)), max_size=25)


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _packed(n: int, d: int, with_ts: bool, data: st.DataObject) -> bytes:
    X = np.asarray(data.draw(st.lists(st.floats(width=32) | anomalous, min_size=n * d,
                                      max_size=n * d)), np.float32).reshape(n, d)  # fmt: skip
    ts = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1) | times_ms.filter(
        lambda t: isinstance(t, int)), min_size=n, max_size=n)) if with_ts else None  # fmt: skip
    ids = data.draw(st.none() | st.lists(st.sampled_from(["a", "b\ud800", "\udfff"]),
                                         min_size=n, max_size=n))  # fmt: skip
    head = struct.pack("<4sIHH", b"TWP1", n, d, (FLAG_TS if ts else 0) | (FLAG_IDS if ids else 0))
    out = head + (np.asarray(ts, "<i8").tobytes() if ts else b"") + X.astype("<f4").tobytes()
    if ids:
        blob = "\n".join(ids).encode("utf-8", "surrogatepass")
        out += struct.pack("<I", len(blob)) + blob
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=records)
def test_every_record_of_any_batch_is_scored_or_dead_lettered(scorer: Scorer, batch: list) -> None:
    topics = Topics("alerts", "dlq", "scores")
    processor = BatchProcessor(
        topics, AlertBuilder("tripwire://t/in"), Cooldown(0, 10), top_k=3, max_message_bytes=4096
    )
    inputs = [
        InputRecord("in", 0, offset, 1_700_000_000_000, key, value, hs)
        for offset, (value, hs, key) in enumerate(batch)
    ]
    result = processor.process(inputs, scorer)  # never raises (on main: it did)
    scored: Counter[int] = Counter()
    dead: Counter[int] = Counter()
    for o in result.outputs:
        # what the producer needs: bytes, and header keys it can encode strictly
        assert isinstance(o.value, bytes) and (o.key is None or isinstance(o.key, bytes))
        for k, _ in o.headers or ():
            k.encode("utf-8")
        if o.topic == "scores":
            scored[json.loads(o.value)["offset"]] += 1
        elif o.topic == "dlq":
            h = {k: (v or b"").decode("utf-8", "replace") for k, v in o.headers}
            assert h["tripwire-reason"] in INVALID_REASONS and h["tripwire-detail"]
            dead[int(h["tripwire-source-offset"])] += 1
    for record in inputs:
        assert scored[record.offset] or dead[record.offset] == 1, record
    assert sum(scored.values()) == result.scored
    assert result.consumed == result.scored + sum(result.invalid.values())
