"""No output of a micro-batch exceeds the output limit, whatever the sizes of the input's
ids, keys and headers, in every encoding (issue 11 §2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.registry import anomalous_rows, normal_rows, publish_model
from tripwire.core.registry import load_scorer
from tripwire.core.scorer import Scorer
from tripwire.stream.processing.batch import BatchProcessor, Topics
from tripwire.stream.processing.cooldown import Cooldown
from tripwire.stream.wire.alerts import AlertBuilder
from tripwire.stream.wire.codecs import F32_TYPE, PACKED_TYPE
from tripwire.stream.wire.encodings import ENCODINGS, Events
from tripwire.stream.wire.limits import DEFAULT_MAX_OUTPUT_BYTES, MIN_MAX_OUTPUT_BYTES
from tripwire.stream.wire.records import InputRecord

MAX_MESSAGE_BYTES = 1_000_000
sizes = st.one_of(st.integers(0, 64), st.integers(0, 2_000_000))


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    pub = publish_model(tmp_path_factory.mktemp("bounds") / "registry")
    return load_scorer(pub.root, f"{pub.name}@production")


def record(encoding: str, x: np.ndarray, id_size: int, key_size: int, header_size: int,
           kafka_key: int | None) -> InputRecord:  # fmt: skip
    eid, key = "i" * max(id_size, 1), "k" * key_size
    headers = [("trace", b"t" * header_size)]
    raw_key = None if kafka_key is None else b"K" * kafka_key
    if encoding == "json":
        doc = {"id": eid, "features": x.tolist(), **({"key": key} if key_size else {})}
        value = json.dumps(doc).encode()
    elif encoding == "f32":
        value = x.astype("<f4").tobytes()
        headers += [("content-type", F32_TYPE.encode()), ("tripwire-id", eid.encode())]
    else:
        [r] = ENCODINGS["packed"].encode(Events(np.vstack([x, x]), ids=[eid, eid + "2"]))
        value = r.value
        headers += [("content-type", PACKED_TYPE.encode())]
    return InputRecord("in", 0, 7, 1_000, raw_key, value, headers)


@settings(max_examples=30, deadline=None)
@given(
    encoding=st.sampled_from(["json", "f32", "packed"]),
    anomalous=st.booleans(),
    id_size=sizes,
    key_size=sizes,
    header_size=sizes,
    kafka_key=st.none() | sizes,
    limit=st.sampled_from([MIN_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUT_BYTES]),
)
def test_every_output_fits_whatever_the_sizes(
    scorer: Scorer,
    encoding: str,
    anomalous: bool,
    id_size: int,
    key_size: int,
    header_size: int,
    kafka_key: int | None,
    limit: int,
) -> None:
    x = (anomalous_rows(1, seed=5) if anomalous else normal_rows(1, seed=5))[0]
    processor = BatchProcessor(
        Topics("alerts", "dlq", "scores"), AlertBuilder("tripwire://g/in"), Cooldown(0),
        top_k=5, max_message_bytes=MAX_MESSAGE_BYTES, max_output_bytes=limit,
    )  # fmt: skip
    rec = record(encoding, x, id_size, key_size, header_size, kafka_key)
    result = processor.process([rec], scorer)
    assert result.outputs  # a score record or a dead letter at least
    for out in result.outputs:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
            out.key, out.value, out.headers or []
        )
        assert size <= limit, (out.topic, size)
        assert out.source is rec  # what a refused output would be dead-lettered as
