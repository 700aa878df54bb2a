"""The dead letters of one micro-batch, collected per record while it is processed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tripwire.stream.wire.codecs import InvalidEvent
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.records import InputRecord


@dataclass(frozen=True, slots=True)
class RefusedVector:
    """One refused vector of a record."""

    #: Its position in a packed record, or ``None`` (the record holds one vector).
    index: int | None
    reason: DeadLetterReason
    #: Class name of what refused it (``tripwire-error``).
    error: str
    #: What exactly is wrong (part of ``tripwire-detail``).
    detail: str


class DeadLetters:
    """The dead letters of a micro-batch, collected per record, written in input order.

    A record is dead-lettered whole (it could not be decoded) or for some of its
    vectors (refused by the decoder or given a non-finite score): one dead letter
    per record either way, naming every refused vector.
    """

    def __init__(self) -> None:
        self._by_record: dict[int, tuple[InputRecord, InvalidEvent | None, list[RefusedVector]]]
        self._by_record = {}

    def record(self, record: InputRecord, error: InvalidEvent) -> None:
        """Dead-letter ``record`` whole."""
        self._by_record[id(record)] = (record, error, [])

    def vector(
        self,
        record: InputRecord,
        index: int | None,
        reason: DeadLetterReason,
        error: str,
        detail: str,
    ) -> None:
        """Refuse one vector of ``record``: at ``index`` of a packed record, else ``None``."""
        self._by_record.setdefault(id(record), (record, None, []))[2].append(
            RefusedVector(index, reason, error, detail)
        )

    def in_order(
        self, records: Sequence[InputRecord]
    ) -> list[tuple[InputRecord, InvalidEvent | None, list[RefusedVector]]]:
        """Everything collected, in the order of ``records``."""
        by_record = self._by_record
        if not by_record:  # the usual batch: no walk over its records
            return []
        return [by_record[id(r)] for r in records if id(r) in by_record]
