"""A ``.jsonl`` line is read by the worker's JSON rules (tripwire.core.events).

The same event, drawn from the whole value space of ``id`` and the feature values
(huge integers, floats beyond float32, NaN/inf, booleans, strings, null, lone
surrogates), is accepted by ``tripwire train``'s reader exactly when the worker's
JSON decoder accepts it, with the same vector and id, and refused with the same words.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tripwire.core.errors import DataError
from tripwire.stream.wire.codecs import Codec, InvalidEvent
from tripwire.stream.wire.records import InputRecord
from tripwire.training.textdata import read_jsonl

NAMES = ("f0", "f1", "f2")
CODEC = Codec(NAMES, max_message_bytes=1 << 20)

numbers = (
    st.floats(-1e6, 1e6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([10**400, -(10**400), 3.5e38, 1e39, True, False])
)
anything = numbers | st.text(max_size=4) | st.none() | st.just([1]) | st.just({"a": 1})
ids = st.text(max_size=6) | st.integers() | st.sampled_from([10**400, 1.5, True, "", "\ud800", [1]])


@settings(max_examples=300, deadline=None)
@given(
    event_id=ids,
    features=st.lists(numbers | anything, min_size=3, max_size=3),
)
def test_a_jsonl_line_is_read_by_the_worker_rules(event_id: Any, features: list[Any]) -> None:
    line = json.dumps({"id": event_id, "features": features})
    worker = CODEC.decode_or_error(InputRecord("t", 0, 0, None, None, line.encode()))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.jsonl"
        path.write_text(line + "\n", encoding="utf-8", errors="surrogatepass")
        try:
            table = read_jsonl(path, None)
        except DataError as e:
            table, refusal = None, e.problem
    if isinstance(worker, InvalidEvent):
        assert table is None, (line, worker.detail)
        if worker.reason != "processing_error":  # a Python limit, in its own words
            assert refusal == worker.detail
        return
    assert table is not None, (line, refusal)
    np.testing.assert_array_equal(table.X, worker.X)
    assert table.ids == worker.ids
