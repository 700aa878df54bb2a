"""Plain typed records that travel through the worker's hot path.

These are small slotted dataclasses rather than ``faust.Record`` models: the worker
reads raw bytes (decoding them itself, so that a failure has a precise reason) and
writes pre-serialised JSON, so faust's model (de)serialisation would only add cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

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
    rejected : list of (int, str, str)
        ``(position, reason, detail)`` of packed vectors refused one by one
        (non-finite values); their neighbours are still scored.
    """

    X: np.ndarray
    ids: list[str]
    keys: list[str]
    event_ms: list[float | None]
    index: list[int] | None = None
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


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
