"""Size limits of everything the worker writes, so that every output fits the broker.

Input ids, entity keys and header values come from producers we do not control and
have no length limit on the wire; anything the outputs echo of them is bounded here:

=========================  ==========  ===============================================
what                       limit       where it goes
=========================  ==========  ===============================================
input id                   1,024 B     alert ``data.input_id``, score ``id``
entity (Kafka key)         1,024 B     output key, ``subject``, ``partitionkey``,
                                       ``data.entity``, score ``entity``
feature name               256 B       alert ``top_features[].name``
dead-letter key            64 KiB      the refused record's key
dead-letter headers        64 KiB      the refused record's own headers, in total
=========================  ==========  ===============================================

A longer string is cut on a character boundary and ends with ``…sha256=<hex>``,
the SHA-256 of its whole UTF-8 encoding (lone surrogates as their UTF-8-style
bytes): two different long ids stay different, and a consumer holding the original
can match it. Limits count UTF-8 bytes. An alert whose strings were cut lists them,
with their original sizes, in ``data.truncated``.
"""

from __future__ import annotations

import hashlib

MAX_ID_BYTES = 1024
MAX_NAME_BYTES = 256
MAX_DLQ_KEY_BYTES = 64 * 1024
MAX_DLQ_HEADER_BYTES = 64 * 1024
#: What Kafka's ``message.max.bytes`` defaults to, and so the worker's output limit.
DEFAULT_MAX_OUTPUT_BYTES = 1_048_576
#: The smallest output limit the worker accepts: a dead letter's key and headers take
#: at most a sixteenth of it each, its own headers ~10 KB, so that one always fits.
MIN_MAX_OUTPUT_BYTES = 64 * 1024
#: Bytes a record batch of one record adds to its key, value and headers, with room
#: to spare (61 B batch header, varints, attributes; 5 B per header at most).
RECORD_OVERHEAD = 512

_MARK = "\u2026sha256="
_SUFFIX_BYTES = len(_MARK.encode()) + 64


def encoded(text: str) -> bytes:
    """UTF-8 of ``text``, lone surrogates as their UTF-8-style bytes (never raises)."""
    return text.encode("utf-8", "surrogatepass")


def bounded(text: str, limit: int = MAX_ID_BYTES) -> str:
    """``text`` if its UTF-8 fits in ``limit`` bytes, else a prefix and its digest.

    >>> bounded("evt-1")
    'evt-1'
    >>> cut = bounded("x" * 2000, 100)
    >>> len(cut.encode()), cut[:4], cut[26:34]
    (100, 'xxxx', '…sha256=')
    """
    if len(text) * 4 <= limit:  # fits whatever its characters
        return text
    raw = encoded(text)
    if len(raw) <= limit:
        return text
    prefix = raw[: max(limit - _SUFFIX_BYTES, 0)]
    return _decoded_prefix(prefix) + _MARK + hashlib.sha256(raw).hexdigest()


def bounded_bytes(raw: bytes, limit: int) -> bytes:
    """``raw`` if it fits in ``limit`` bytes, else a prefix and its digest (as ``bounded``)."""
    if len(raw) <= limit:
        return raw
    mark = _MARK.encode()
    return raw[: max(limit - _SUFFIX_BYTES, 0)] + mark + hashlib.sha256(raw).hexdigest().encode()


def output_key(entity: str) -> bytes:
    """The Kafka key of the outputs of ``entity``: its bytes, bounded to ``MAX_ID_BYTES``.

    An entity decoded from a Kafka key that was not UTF-8 holds ``surrogateescape``
    characters and gets its original bytes back; other lone surrogates (a JSON
    ``"\\ud800"``) are written as their UTF-8-style bytes instead of failing.

    >>> output_key("card-42")
    b'card-42'
    """
    text = bounded(entity)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return encoded(text)


def _decoded_prefix(prefix: bytes) -> str:
    """``prefix`` as text, dropping a character cut in the middle (at most 3 bytes)."""
    for cut in range(4):
        try:
            return prefix[: len(prefix) - cut].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
    return prefix.decode("utf-8", "ignore")  # not reached: the prefix came from encoded()
