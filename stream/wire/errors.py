"""Errors of the stream worker (the root type is ``tripwire.core.errors.TripwireError``)."""

from __future__ import annotations

from tripwire.core.errors import TripwireError


class InvalidEvent(TripwireError):
    """An input record that cannot be scored.

    Attributes
    ----------
    reason : str
        One of ``tripwire.stream.observability.metrics.INVALID_REASONS``.
    detail : str
        What exactly is wrong, for the ``tripwire-detail`` DLQ header.
    error : str
        Class name of the underlying exception (``InvalidEvent`` if none).
    """

    def __init__(self, reason: str, detail: str, cause: BaseException | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.error = type(cause).__name__ if cause is not None else "InvalidEvent"
        super().__init__(f"{reason}: {detail}")
