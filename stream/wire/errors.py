"""Errors of the stream worker (the root type is ``tripwire.core.errors.TripwireError``)."""

from __future__ import annotations

from tripwire.core.errors import TripwireError
from tripwire.core.untrusted import escaped
from tripwire.stream.wire.dead_letters import DeadLetterReason

#: The reason of a record whose processing raised an unexpected exception.
PROCESSING_ERROR = DeadLetterReason.PROCESSING_ERROR
#: Characters of an exception message kept in ``tripwire-detail``.
MAX_MESSAGE_CHARS = 500


class InvalidEvent(TripwireError):
    """An input record that cannot be scored.

    Attributes
    ----------
    reason : DeadLetterReason
        Given as the enum or its value (an unknown one raises ``ValueError``).
    detail : str
        What exactly is wrong, for the ``tripwire-detail`` DLQ header.
    error : str
        Class name of the underlying exception (``InvalidEvent`` if none).
    """

    def __init__(
        self, reason: DeadLetterReason | str, detail: str, cause: BaseException | None = None
    ) -> None:
        self.reason = DeadLetterReason(reason)
        self.detail = detail
        self.error = type(cause).__name__ if cause is not None else "InvalidEvent"
        super().__init__(f"{reason}: {detail}")


def describe(error: BaseException, what: str = "") -> str:
    """``tripwire-detail`` of a processing error: escaped, bounded, one line."""
    where = f" ({what})" if what else ""
    return f"processing failed{where}: {escaped(error, MAX_MESSAGE_CHARS)}"


def processing_error(error: BaseException, what: str = "") -> InvalidEvent:
    """The refusal of a record whose processing raised ``error`` (reason ``processing_error``)."""
    return InvalidEvent(PROCESSING_ERROR, describe(error, what), error)
