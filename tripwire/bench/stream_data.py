"""The stream benchmark's model, events and topics.

Events are the founding tutorial's 50-feature rows (``tripwire.training.data.demo_data``):
normal rows of the test split, with a fixed fraction of its anomalies mixed in at
evenly spaced positions, in three encodings (``tripwire.stream.wire.encodings``;
docs/formats.md):

- ``json``: ``{"id": "e17", "features": [...]}`` (5 decimals), key ``k<i % 1000>``;
- ``binary``: 200 bytes of float32, ``content-type`` and ``tripwire-id`` headers;
- ``packed``: ``packed_size`` vectors per record with an ids section.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from tripwire.stream.kafka import topics
from tripwire.stream.kafka.security import check_env_security, env_security_options
from tripwire.stream.wire.encodings import Encoded, Events, encoding

log = logging.getLogger(__name__)

ENCODINGS = ("json", "binary", "packed")
N_FEATURES = 50
MODEL_NAME = "bench"
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Rows:
    """Normal and anomalous feature rows to draw events from (float32, 50 columns)."""

    normal: np.ndarray
    anomalous: np.ndarray
    train_normal: np.ndarray


def demo_rows(seed: int) -> Rows:
    from tripwire.training.data import demo_data

    train, test = demo_data(seed)
    assert train.y is not None and test.y is not None
    return Rows(test.X[test.y == 0], test.X[test.y == 1], train.X[train.y == 0])


def is_anomaly(i: int, fraction: float) -> bool:
    """Whether event ``i`` is anomalous: evenly spaced, ``fraction`` of all events."""
    return int((i + 1) * fraction) > int(i * fraction)


def vectors(rows: Rows, start: int, n: int, fraction: float) -> np.ndarray:
    """Feature vectors of events ``start .. start + n - 1`` (float32, (n, 50))."""
    out = np.empty((n, rows.normal.shape[1]), dtype=np.float32)
    for j, i in enumerate(range(start, start + n)):
        if is_anomaly(i, fraction):
            out[j] = rows.anomalous[int(i * fraction) % len(rows.anomalous)]
        else:
            out[j] = rows.normal[i % len(rows.normal)]
    return out


@dataclass(frozen=True)
class Record:
    """One input record to produce."""

    value: bytes
    key: bytes
    headers: Headers | None


def encode(name: str, X: np.ndarray, first: int, prefix: str = "e") -> list[Record]:
    """The records of vectors ``X`` numbered from ``first`` in encoding ``name``."""
    if name not in ("binary", "json"):
        raise ValueError(f"unknown encoding {name!r}")
    ids = [f"{prefix}{first + j}" for j in range(len(X))]
    keys = [f"k{(first + j) % 1000}" for j in range(len(X))]
    if name == "json":  # what a JSON producer typically sends: 5 decimals
        X = np.round(X.astype(np.float64), 5)
    return [_record(r) for r in encoding(name).encode(Events(X, ids=ids, keys=keys))]


def packed_records(X: np.ndarray, first: int, size: int) -> list[Record]:
    """Packed records of ``size`` vectors (the last may be shorter)."""
    out = []
    for start in range(0, len(X), size):
        chunk = X[start : start + size]
        ids = [f"e{first + start + j}" for j in range(len(chunk))]
        keys = [f"p{start // size}"] * len(chunk)
        out += [_record(r) for r in encoding("packed").encode(Events(chunk, ids, keys))]
    return out


def _record(r: Encoded) -> Record:
    return Record(r.value, r.key or b"", r.headers or None)


def records_for(
    encoding: str, rows: Rows, n_vectors: int, fraction: float, packed: int
) -> list[Record]:
    """Every record of a throughput run: ``n_vectors`` vectors in ``encoding``."""
    X = vectors(rows, 0, n_vectors, fraction)
    if encoding == "packed":
        return packed_records(X, 0, packed)
    return encode(encoding, X, 0)


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    await check_env_security(bootstrap)  # a TLS/SASL failure in one line, not "unreachable"
    await topics.create_topics(
        bootstrap, dict.fromkeys(names, partitions), **env_security_options()
    )


def new_producer(bootstrap: str, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=linger_ms, max_batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024, **env_security_options(),
    )  # fmt: skip


async def produce_all(bootstrap: str, topic: str, records: Sequence[Record]) -> float:
    """Produce ``records`` as fast as the broker takes them; return records/s."""
    producer = new_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for r in records:
            pending.append(await producer.send(topic, r.value, key=r.key, headers=r.headers))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


# -- models ------------------------------------------------------------------------


def train_model(
    registry: Path, seed: int, model: str = "ae", name: str = MODEL_NAME,
    alias: str = "production", epochs: int | None = None,
) -> str:  # fmt: skip
    """Train ``model`` on the tutorial's data and promote it to ``alias``; ``name@alias``.

    ``epochs`` bounds a deep detector's training (``None``: its default).
    """
    from tripwire.training.pipeline import train
    from tripwire.training.settings import TrainSettings

    ts = replace(
        TrainSettings(), demo=True, model=model, registry=str(registry), name=name,
        promote=alias, seed=seed, plot="none", epochs=epochs,
    )  # fmt: skip
    result = train(ts)
    log.info("trained %s (%s) version %s as %s", name, model, result.version, alias)
    return f"{name}@{alias}"


def train_tripwire_model(registry: Path, seed: int) -> str:
    """Train and promote Tripwire's AE on the tutorial's data; return ``name@alias``."""
    return train_model(registry, seed)
