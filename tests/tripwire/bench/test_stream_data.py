"""The worker bench's settings and events, without a broker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tripwire.bench.stream_data import Rows, encode, is_anomaly, packed_records, vectors
from tripwire.bench.stream_settings import StreamBenchSettings
from tripwire.core.errors import ConfigError
from tripwire.stream.wire.codecs import Codec
from tripwire.stream.wire.records import Decoded, InputRecord

CODEC = Codec([f"f{i}" for i in range(3)], 1_000_000)


def test_rates_are_events_per_second_or_a_share_of_the_maximum() -> None:
    s = StreamBenchSettings(rates=("1000", "50%"))
    assert s.parse_rates(30_000.0) == [1000.0, 15_000.0]
    with pytest.raises(ConfigError, match="neither"):
        StreamBenchSettings(rates=("fast",))
    with pytest.raises(ConfigError, match="events"):
        StreamBenchSettings(events=0)
    with pytest.raises(ConfigError):
        StreamBenchSettings(anomaly_fraction=1.5)


def test_anomalies_are_evenly_spaced_at_the_fraction() -> None:
    flags = [is_anomaly(i, 0.01) for i in range(10_000)]
    assert sum(flags) == 100
    gaps = np.diff(np.flatnonzero(flags))
    assert gaps.min() == gaps.max() == 100


def _rows() -> Rows:
    normal = np.arange(12, dtype=np.float32).reshape(4, 3)
    return Rows(normal, -np.ones((2, 3), dtype=np.float32), normal)


def _decode(values: list[tuple[bytes, Any]]) -> list[Decoded]:
    out = []
    for i, (value, headers) in enumerate(values):
        d = CODEC.decode(InputRecord("t", 0, i, 1, b"k", value, headers or ()))
        out.append(d)
    return out


@pytest.mark.parametrize("encoding", ["binary", "json"])
def test_events_decode_to_their_vectors(encoding: str) -> None:
    X = vectors(_rows(), 0, 200, 0.05)
    assert (X == -1).all(axis=1).sum() == 10  # the anomalous rows, 5%
    decoded = _decode([(r.value, r.headers) for r in encode(encoding, X, 0)])
    np.testing.assert_allclose(np.vstack([d.X for d in decoded]), X, atol=1e-5)
    assert decoded[7].ids == ["e7"]


def test_packed_records_carry_every_vector_with_its_id() -> None:
    X = vectors(_rows(), 0, 25, 0.1)
    records = packed_records(X, 0, size=10)
    assert len(records) == 3
    decoded = _decode([(r.value, r.headers) for r in records])
    np.testing.assert_array_equal(np.vstack([d.X for d in decoded]), X)
    assert decoded[2].ids == [f"e{i}" for i in range(20, 25)]
