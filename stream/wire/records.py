"""Plain typed records that travel through the worker's hot path.

These are small slotted dataclasses rather than ``faust.Record`` models: the worker
reads raw bytes (decoding them itself, so that a failure has a precise reason) and
writes pre-serialised JSON, so faust's model (de)serialisation would only add cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tripwire.stream.wire.dead_letters import DeadLetterReason

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One Kafka record of the input topic, as consumed.

    Attributes
    ----------
    timestamp_ms : int or None
        The Kafka record timestamp (epoch milliseconds), ``None`` when absent.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(slots=True)
class Decoded:
    """The feature vectors of one input record (one, or many for a packed record).

    Attributes
    ----------
    X : ndarray of shape (m, n_features), float32
        Finite vectors ready to score, in record order.
    ids, keys : list of str, length m
        Input id and entity key of each vector.
    event_ms : list of float or None, length m
        Event time of each vector (epoch ms), ``None`` when unknown.
    index : list of int or None
        Position of each vector inside a packed record (``None`` otherwise).
    rejected : list of (int, DeadLetterReason, str)
        ``(position, reason, detail)`` of packed vectors refused one by one
        (non-finite values); their neighbours are still scored.
    """

    X: np.ndarray
    ids: list[str]
    keys: list[str]
    event_ms: list[float | None]
    index: list[int] | None = None
    rejected: list[tuple[int, DeadLetterReason, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Rows:
    """Which vectors a micro-batch scored, in order (``BatchProcessor(keep_rows=True)``).

    Attributes
    ----------
    ids, entities : list of str, length scored
        Input id and entity key of each scored vector.
    partition, offset, index : ndarray of int64, shape (scored,)
        Where each came from; ``index`` is its position in a packed record, -1 otherwise.
    """

    ids: list[str]
    entities: list[str]
    partition: np.ndarray
    offset: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, good: Sequence[tuple[InputRecord, Decoded]], kept: np.ndarray) -> Rows:
        """The rows of the vectors of ``good`` (records, decoded) that ``kept`` marks."""
        lengths = [len(d) for _, d in good]
        ids = [i for _, d in good for i in d.ids]
        entities = [k for _, d in good for k in d.keys]
        partition = np.repeat(np.array([r.partition for r, _ in good], np.int64), lengths)
        offset = np.repeat(np.array([r.offset for r, _ in good], np.int64), lengths)
        index = np.array(
            [i for _, d in good for i in ([-1] * len(d) if d.index is None else d.index)],
            np.int64,
        )
        if not kept.all():
            keep = np.flatnonzero(kept).tolist()
            ids, entities = [ids[i] for i in keep], [entities[i] for i in keep]
            partition, offset, index = partition[kept], offset[kept], index[kept]
        return cls(ids, entities, partition, offset, index)


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One record to produce: an anomaly event, a score record or a dead letter.

    Attributes
    ----------
    source : InputRecord or None
        The input it was made from, to dead-letter should the broker refuse it
        (``output_too_large``); not part of the record (nor of equality).
    index : int or None
        The position of its vector in a packed ``source``.
    """

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None
    source: InputRecord | None = field(default=None, compare=False, repr=False)
    index: int | None = field(default=None, compare=False)
