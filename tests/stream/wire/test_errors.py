"""The refusal of an input record carries one of the dead-letter reasons."""

from __future__ import annotations

import pytest

from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.errors import InvalidEvent, processing_error


def test_an_invalid_event_carries_its_reason_as_the_enum() -> None:
    error = InvalidEvent("schema", "missing 'id'")
    assert error.reason is DeadLetterReason.SCHEMA and str(error) == "schema: missing 'id'"
    assert processing_error(KeyError("x")).reason is DeadLetterReason.PROCESSING_ERROR
    with pytest.raises(ValueError, match="'schemas' is not a valid DeadLetterReason"):
        InvalidEvent("schemas", "a reason no dead letter may carry")
