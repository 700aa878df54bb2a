"""The input encodings, by name: each a paired encoder and decoder (``base.Encoding``).

=========  =====================================  ==============================
name       ``content-type``                       one record holds
=========  =====================================  ==============================
``json``   ``application/json`` (or none, ``{``)  one event (``json.py``)
``binary`` ``application/x-tripwire-f32``         one vector (``binary.py``)
``packed`` ``application/x-tripwire-f32-packed``  many vectors (``packed.py``)
=========  =====================================  ==============================

The worker decodes with :data:`BY_CONTENT_TYPE` (``tripwire.stream.wire.codecs``);
producers, the demo, the benchmarks and the tests encode with :func:`encoding`::

    >>> import numpy as np
    >>> [r] = encoding("binary").encode(Events(np.ones((1, 2)), ids=["evt-1"]))
    >>> r.value
    b'\\x00\\x00\\x80?\\x00\\x00\\x80?'
    >>> r.headers[1]
    ('tripwire-id', b'evt-1')

A new encoding is one module here (a subclass of ``Encoding``) and one line below.
"""

from __future__ import annotations

from tripwire.stream.wire.encodings.base import Encoded, Encoding, Events, FeatureSchema
from tripwire.stream.wire.encodings.binary import BinaryEncoding
from tripwire.stream.wire.encodings.json import JsonEncoding
from tripwire.stream.wire.encodings.packed import PackedEncoding

__all__ = [
    "BY_CONTENT_TYPE", "ENCODINGS", "Encoded", "Encoding", "Events", "FeatureSchema", "encoding",
]  # fmt: skip

ENCODINGS: dict[str, Encoding] = {
    e.name: e for e in (JsonEncoding(), BinaryEncoding(), PackedEncoding())
}
BY_CONTENT_TYPE: dict[str, Encoding] = {e.content_type: e for e in ENCODINGS.values()}


def encoding(name: str) -> Encoding:
    """The encoding called ``name`` (a key of :data:`ENCODINGS`)."""
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r} (known: {', '.join(ENCODINGS)})") from None
