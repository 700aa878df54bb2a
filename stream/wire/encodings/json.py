"""JSON input: one event per record (``application/json``; docs/formats.md "JSON").

The value is one object: ``id``, optional ``key`` and ``ts``, and ``features`` as a
list in the model's order or an object by feature name. The field rules are
:mod:`tripwire.core.events`' (training's ``.jsonl`` files are read with the same).
The encoder writes the entity as the Kafka record key (not a ``key`` field) and no
``content-type`` header, as most JSON producers do: the decoder recognises a value
whose first non-blank byte is ``{``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tripwire.core.events import (
    FEATURES_FIELD,
    ID_FIELD,
    JSON_TYPE,
    KEY_FIELD,
    TS_FIELD,
    FieldError,
    event_ms,
    event_text,
    feature_row,
)
from tripwire.stream.wire.dead_letters import DeadLetterReason
from tripwire.stream.wire.encodings.base import (
    Encoded,
    Encoding,
    Events,
    FeatureSchema,
    invalid,
    key_bytes,
    opt_float,
    record_key,
    texts,
    times,
    vectors,
)
from tripwire.stream.wire.errors import InvalidEvent
from tripwire.stream.wire.records import Decoded, InputRecord


class JsonEncoding(Encoding):
    """``{"id": ..., "ts": ..., "features": [...]}``, one record per event."""

    name = "json"
    content_type = JSON_TYPE

    def encode(self, events: Events) -> list[Encoded]:
        """One record per vector; ids default to ``"<i>"`` (the JSON ``id`` is required).

        The values are written as given (float64 text) and must be finite in float32;
        the decoder reads them as float32, as the binary encodings carry them.
        """
        X = vectors(events)
        texts(events.ids, "ids")
        texts(events.keys, "keys")
        ts = times(events.ts_ms)
        with np.errstate(over="ignore"):
            rows = np.asarray(events.X, dtype=np.float64).tolist()
        ids = list(events.ids) if events.ids is not None else [str(i) for i in range(len(X))]
        keys = [key_bytes(k) for k in events.keys] if events.keys is not None else None
        names = tuple(events.names) if events.names is not None else None
        out = []
        for i, row in enumerate(rows):
            doc: dict[str, Any] = {ID_FIELD: ids[i]}
            if ts is not None:
                _check_ms(ts[i])
                doc[TS_FIELD] = ts[i]
            doc[FEATURES_FIELD] = dict(zip(names, row, strict=True)) if names else row
            value = json.dumps(doc, allow_nan=False).encode()
            out.append(Encoded(value, keys[i] if keys else None, []))
        return out

    def decode(self, record: InputRecord, schema: FeatureSchema) -> Decoded:
        value = record.value or b""
        try:
            doc = json.loads(value)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise InvalidEvent(DeadLetterReason.MALFORMED, f"not JSON: {e}", e) from None
        if not isinstance(doc, dict):
            raise InvalidEvent(
                DeadLetterReason.SCHEMA, f"expected a JSON object, got {type(doc).__name__}"
            )
        try:
            event_id = event_text(doc.get(ID_FIELD), ID_FIELD)
            if event_id is None:
                raise FieldError("schema", f"missing {ID_FIELD!r}")
            key = event_text(doc.get(KEY_FIELD), KEY_FIELD) or record_key(record) or event_id
            ts = doc.get(TS_FIELD)
            event = record.timestamp_ms if ts is None else event_ms(ts)
            if FEATURES_FIELD not in doc:
                raise FieldError("schema", f"missing {FEATURES_FIELD!r}")
            x = feature_row(_values(doc[FEATURES_FIELD], schema), schema.names)
        except FieldError as e:
            raise invalid(e) from None
        return Decoded(x[None, :], [event_id], [key], [opt_float(event)])


def _values(features: Any, schema: FeatureSchema) -> list[Any]:
    """The feature values in the model's order, from a list or an object by name."""
    if isinstance(features, dict):
        index = schema.index
        if len(features) != schema.n or any(k not in index for k in features):
            missing = [n for n in schema.names if n not in features]
            extra = [k for k in features if k not in index]
            raise FieldError("feature_names", f"missing {_few(missing)}, unknown {_few(extra)}")
        return [features[name] for name in schema.names]
    if isinstance(features, list):
        if len(features) != schema.n:
            raise FieldError("feature_count", f"{len(features)} features, model expects {schema.n}")
        return features
    raise FieldError(
        "schema", f"'features' must be a list or an object, not {type(features).__name__}"
    )


def _check_ms(ts: int) -> None:
    """The decoder's rule for ``ts`` (one too large for a float fails it: OverflowError)."""
    try:
        event_ms(ts)
    except (FieldError, OverflowError) as e:
        raise ValueError(f"ts {str(ts)[:40]}: {e}") from None


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i)[:40] for i in items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}]{more}"
