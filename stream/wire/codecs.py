"""Decode input records into feature vectors, or say precisely why not.

Three encodings share the input topic and the ``content-type`` header tells them
apart: JSON (``application/json``, or no content-type and a value whose first
non-blank byte is ``{``), binary and packed binary. Each is a paired encoder and
decoder in :mod:`tripwire.stream.wire.encodings`; their names, headers and layout
are defined in :mod:`tripwire.core.events`, and documented in docs/formats.md.

:class:`Codec` holds what applies to every encoding: a record with a header key that
is not UTF-8 (Kafka header keys are UTF-8 strings; aiokafka alone cannot read such a
record: :func:`tripwire.stream.compat.install_lenient_fetch`) is refused as
``malformed``, an empty value as ``empty``, one above ``max_message_bytes`` as
``oversize``, and an unknown content type as ``unknown_encoding``.

Every refusal raises :class:`InvalidEvent` whose ``reason`` is one of
:data:`tripwire.stream.observability.metrics.INVALID_REASONS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tripwire.core.events import (
    CONTENT_TYPE_HEADER,
    F32_TYPE,
    FLAG_IDS,
    FLAG_KEYS,
    FLAG_TS,
    ID_HEADER,
    JSON_TYPE,
    PACKED_TYPE,
    TS_HEADER,
)
from tripwire.stream.compat import UNDECODABLE_HEADER_KEY
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.encodings import BY_CONTENT_TYPE, ENCODINGS, FeatureSchema
from tripwire.stream.wire.encodings.base import header, media_type
from tripwire.stream.wire.errors import InvalidEvent, processing_error
from tripwire.stream.wire.records import Decoded, InputRecord

# Re-exported for callers that build or inspect records (defined in tripwire.core.events).
__all__ = [
    "F32_TYPE", "FLAG_IDS", "FLAG_KEYS", "FLAG_TS", "ID_HEADER", "JSON_TYPE", "PACKED_TYPE",
    "TS_HEADER", "Codec", "InvalidEvent", "header",
]  # fmt: skip

_BLANK = b" \t\r\n"
_JSON = ENCODINGS["json"]
#: The encoding whose ``decode_batch`` takes the batch (its records at once, the rest
#: one by one): the binary one, the only encoding that is one small vector per record.
_BATCH = ENCODINGS["binary"]


class Codec:
    """Decoder of input records for one model's feature schema.

    Parameters
    ----------
    feature_names : sequence of str
        The model's features, in order.
    max_message_bytes : int
        Larger values are refused as ``oversize``.
    """

    def __init__(self, feature_names: Sequence[str], max_message_bytes: int) -> None:
        self.schema = FeatureSchema(feature_names)
        self.feature_names = self.schema.names
        self.n_features = self.schema.n
        self.max_message_bytes = max_message_bytes

    def decode(self, record: InputRecord) -> Decoded:
        """Decode one record; raise :class:`InvalidEvent` if it cannot be scored."""
        value = record.value
        undecodable = header(record.headers, UNDECODABLE_HEADER_KEY)
        if undecodable is not None:
            raise InvalidEvent(
                DeadLetterReason.MALFORMED, f"a header key is not UTF-8: {undecodable[:60]!r}"
            )
        if not value:
            raise InvalidEvent(DeadLetterReason.EMPTY, "the record value is empty")
        if len(value) > self.max_message_bytes:
            raise InvalidEvent(
                DeadLetterReason.OVERSIZE,
                f"{len(value)} bytes > max_message_bytes {self.max_message_bytes}",
            )
        ctype = media_type(header(record.headers, CONTENT_TYPE_HEADER))
        found = BY_CONTENT_TYPE.get(ctype) if ctype is not None else None
        if found is None and ctype is None and value.lstrip(_BLANK)[:1] == b"{":
            found = _JSON
        if found is None:
            shown = ctype if ctype is not None else f"none, value starts {value[:8]!r}"
            raise InvalidEvent(DeadLetterReason.UNKNOWN_ENCODING, f"content-type {shown}")
        return found.decode(record, self.schema)

    def decode_batch(self, records: Sequence[InputRecord]) -> list[Decoded | InvalidEvent]:
        """:meth:`decode` of every record: the decoded record or the error it raised.

        Same results as one ``decode`` per record; the binary (one vector) records are
        converted and checked for NaN/inf with one numpy call for them all, which is
        most of what decoding them one by one costs.
        """
        return _BATCH.decode_batch(
            records, self.schema, self.max_message_bytes, self.decode_or_error
        )

    def decode_or_error(self, record: InputRecord) -> Decoded | InvalidEvent:
        """:meth:`decode`, returning the refusal instead of raising it.

        Any other exception the record makes decoding raise (an integer too large
        for a float, say) is returned as an ``InvalidEvent`` with reason
        ``processing_error``, naming the exception: it is this record's, not the batch's.
        """
        try:
            return self.decode(record)
        except InvalidEvent as e:
            return e
        except Exception as e:  # attributable to this record whatever it is
            return processing_error(e)
