"""Parsers for the text formats (``.csv``, ``.jsonl``); see :mod:`tripwire.training.data`.

A ``.jsonl`` line is an input event of the worker's JSON encoding, read by the same
rules (:mod:`tripwire.core.events`: ``id`` a non-empty string or an integer, feature
values JSON numbers finite in float32), with the differences a file needs: ``id`` is
optional (all lines or none), ``key`` and ``ts`` are ignored, a label field may be
present, and the feature names come from the first line instead of a model.

Rows are parsed in chunks of ``_CHUNK_ROWS`` and packed into numpy arrays, so a
large file never sits in Python lists whole. Errors name the file and the 1-based
line number (a CSV header is line 1).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tripwire.core.errors import DataError
from tripwire.core.events import FEATURES_FIELD, ID_FIELD, FieldError, event_text, feature_row

#: Rows parsed into Python lists before being packed into a numpy chunk.
_CHUNK_ROWS = 8192
_LABEL_DEFAULT = "label"
_ID_COL = "id"
_F32_MAX = float(np.finfo(np.float32).max)


class Table(NamedTuple):
    """A parsed file: features (n, d) float32, labels (n,) int8 or None, ids, names."""

    X: np.ndarray
    y: np.ndarray | None
    ids: list[str] | None
    names: tuple[str, ...]
    named: bool


def positional_names(d: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(d))


def preview(names: Sequence[str], k: int = 8) -> str:
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")


# -- csv -------------------------------------------------------------------------


def read_csv(path: Path, label_col: str | None) -> Table:
    src = str(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataError(src, "empty file (expected a header row)")
        header = [h.strip() for h in header]
        label_i, id_i, feat_i = _csv_columns(src, header, label_col)
        X, y, ids = _csv_rows(src, reader, len(header), label_i, id_i, feat_i, header)
    names = tuple(header[i] for i in feat_i)
    return Table(X, y, ids, names, True)


def _csv_columns(
    src: str, header: list[str], label_col: str | None
) -> tuple[int | None, int | None, list[int]]:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(src, f"duplicate column name(s) in header: {', '.join(dupes)}", row=1)
    if label_col is not None and label_col not in header:
        raise DataError(src, f"label column {label_col!r} not in header ({preview(header)})", row=1)
    label_name = label_col or (_LABEL_DEFAULT if _LABEL_DEFAULT in header else None)
    label_i = header.index(label_name) if label_name else None
    id_i = header.index(_ID_COL) if _ID_COL in header else None
    feat_i = [i for i in range(len(header)) if i not in (label_i, id_i)]
    if not feat_i:
        raise DataError(src, "no feature columns in header", row=1)
    return label_i, id_i, feat_i


def _csv_rows(
    src: str,
    reader: Any,
    width: int,
    label_i: int | None,
    id_i: int | None,
    feat_i: list[int],
    header: list[str],
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Parse data rows in chunks so a large file never sits in Python lists whole."""
    chunks: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    rows: list[list[float]] = []
    for rec in reader:
        line = reader.line_num
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue  # blank line
        if len(rec) != width:
            raise DataError(src, f"expected {width} columns, found {len(rec)}", row=line)
        rows.append([_cell(src, rec[i], line, header[i]) for i in feat_i])
        if label_i is not None:
            labels.append(_label(src, rec[label_i], line, header[label_i]))
        if id_i is not None:
            ids.append(rec[id_i].strip())
        if len(rows) >= _CHUNK_ROWS:
            chunks.append(np.asarray(rows, dtype=np.float32))
            rows = []
    if rows or not chunks:
        chunks.append(np.asarray(rows, dtype=np.float32).reshape(-1, len(feat_i)))
    X = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    y = np.asarray(labels, dtype=np.int8) if label_i is not None else None
    return X, y, (ids if id_i is not None else None)


def _cell(src: str, raw: str, line: int, column: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise DataError(src, f"column {column!r}: {raw!r} is not a number", row=line) from None
    return _finite(src, v, raw, line, column)


def _finite(src: str, v: float, raw: Any, line: int, column: str) -> float:
    if not math.isfinite(v):
        raise DataError(src, f"{column!r}: {raw!r} is NaN/inf (not allowed)", row=line)
    if abs(v) > _F32_MAX:
        raise DataError(src, f"{column!r}: {raw!r} overflows float32", row=line)
    return v


def _label(src: str, raw: Any, line: int, column: str) -> int:
    """Accept 0/1 as int, float or string ("1", "1.0"); anything else is an error."""
    if isinstance(raw, bool):
        return int(raw)
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if v not in (0.0, 1.0):
        raise DataError(src, f"label {column!r} is {raw!r}; labels must be 0 or 1", row=line)
    return int(v)


# -- jsonl -----------------------------------------------------------------------


def read_jsonl(path: Path, label_col: str | None) -> Table:
    src = str(path)
    label_key = label_col or _LABEL_DEFAULT
    names: tuple[str, ...] | None = None
    named = has_label = has_id = False
    chunks: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    for line, obj in _json_lines(src, path):
        event_id = _json_id(src, obj, line)  # first, as the worker checks it
        feats = obj.get(FEATURES_FIELD)
        if names is None:
            named = isinstance(feats, dict)
            names = _first_names(src, feats, line)
            has_label = label_key in obj
            has_id = event_id is not None
        rows.append(_json_features(src, feats, names, named, line))
        # Labels and ids are all-or-nothing, decided by the first line.
        if (label_key in obj) != has_label:
            raise DataError(src, f"label {label_key!r} present on some lines only", row=line)
        if has_label:
            labels.append(_label(src, obj[label_key], line, label_key))
        if (event_id is not None) != has_id:
            raise DataError(src, "'id' present on some lines only", row=line)
        if event_id is not None:
            ids.append(event_id)
        if len(rows) >= _CHUNK_ROWS:
            chunks.append(np.asarray(rows, dtype=np.float32))
            rows = []
    if names is None:
        raise DataError(src, "empty file (no JSON lines)")
    if rows:
        chunks.append(np.asarray(rows, dtype=np.float32))
    X = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    y = np.asarray(labels, dtype=np.int8) if has_label else None
    return Table(X, y, ids if has_id else None, names, named)


def _json_lines(src: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(src, f"invalid JSON ({e.msg})", row=line) from None
            except (ValueError, RecursionError) as e:  # an integer of > 4300 digits, nesting
                raise DataError(src, f"invalid JSON ({e})", row=line) from None
            if not isinstance(obj, dict):
                raise DataError(src, "expected a JSON object per line", row=line)
            if FEATURES_FIELD not in obj:
                raise DataError(src, "missing key 'features'", row=line)
            yield line, obj


def _first_names(src: str, feats: Any, line: int) -> tuple[str, ...]:
    if isinstance(feats, dict):
        if not feats:
            raise DataError(src, "'features' is empty", row=line)
        return tuple(str(k) for k in feats)
    if isinstance(feats, list):
        if not feats:
            raise DataError(src, "'features' is empty", row=line)
        return positional_names(len(feats))
    raise DataError(src, "'features' must be a list or an object of name: value", row=line)


def _json_id(src: str, obj: dict[str, Any], line: int) -> str | None:
    try:
        return event_text(obj.get(ID_FIELD), ID_FIELD)
    except FieldError as e:
        raise DataError(src, e.detail, row=line) from None


def _json_features(
    src: str, feats: Any, names: tuple[str, ...], named: bool, line: int
) -> np.ndarray:
    if named:
        if not isinstance(feats, dict):
            raise DataError(src, "'features' must be an object like the first line", row=line)
        if len(feats) != len(names) or any(n not in feats for n in names):
            extra = sorted(set(feats) - set(names))
            missing = [n for n in names if n not in feats]
            raise DataError(
                src,
                f"feature names differ from line 1 (missing: {preview(missing) or '-'}; "
                f"unexpected: {preview(extra) or '-'})",
                row=line,
            )
        values = [feats[n] for n in names]
    else:
        if not isinstance(feats, list):
            raise DataError(src, "'features' must be a list like the first line", row=line)
        if len(feats) != len(names):
            raise DataError(src, f"expected {len(names)} features, found {len(feats)}", row=line)
        values = feats
    try:
        return feature_row(values, names)
    except FieldError as e:  # the worker's rule, and its words: "feature 'f1' is str"
        raise DataError(src, e.detail, row=line) from None
