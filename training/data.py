"""Training and scoring input: ``.npz``, ``.csv``, ``.jsonl`` files and the demo data.

Every loader returns a :class:`Dataset` of float32 features, optional 0/1 labels and
optional row ids, or raises :class:`~training.errors.DataError` naming the file, the
row and the problem. For ``.csv`` and ``.jsonl`` the row is the 1-based line number
in the file (a CSV header is line 1); for ``.npz`` the problem text names the array
element.

Formats
-------
``.npz``
    Key ``X`` (n, d); optional ``y`` (0/1, or the key named by ``label_col``),
    ``ids`` and ``feature_names``. Integer and boolean ``X`` is cast to float.
``.csv``
    A header row, then one row per sample. The label column is ``label_col`` if
    given, otherwise a column named ``label`` if present. A column named ``id``
    gives the row ids. Features are ``feature_cols`` in that order, or every other
    column in file order.
``.jsonl``
    One object per line in the shape of a stream event::

        {"id": "e1", "features": [0.1, 2.3], "label": 0}
        {"id": "e2", "features": {"cpu": 0.1, "mem": 2.3}}

    List features are named ``f0 .. f{d-1}``. Named features take the order of
    the first line (later lines may list them in any order but must have the same
    names); the order of a model's features is whatever it was trained with, so
    ``tripwire score`` aligns inputs by name. ``"label"`` (or ``label_col``) and
    ``"id"`` are optional.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import DataError

#: Rows parsed into Python lists before being packed into a numpy chunk.
_CHUNK_ROWS = 8192
_LABEL_DEFAULT = "label"
_ID_COL = "id"
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Dataset:
    """Features, optional labels and ids of one input.

    Attributes
    ----------
    X : ndarray of float32, shape (n, d)
    y : ndarray of int8, shape (n,), or None
        1 = anomaly, 0 = normal.
    ids : list of str (length n) or None
    feature_names : tuple of str (length d)
    source : str
        Where the data came from (file path or demo description).
    sha256 : str
        Hash of the file bytes (or of the generated arrays for demo data).
    named : bool
        True when feature names came from the input (CSV header, named JSON
        features, ``feature_names`` key); False when generated as ``f0 ..``.
    """

    X: np.ndarray
    y: np.ndarray | None
    ids: list[str] | None
    feature_names: tuple[str, ...]
    source: str
    sha256: str
    named: bool = True

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])


def positional_names(d: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(d))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_data(
    path: str | Path,
    label_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
) -> Dataset:
    """Load a dataset from ``.npz``, ``.csv`` or ``.jsonl``.

    Parameters
    ----------
    path : str or Path
    label_col : str, optional
        Name of the 0/1 label column (CSV), key (JSONL) or array (NPZ). When not
        given, ``label`` (CSV/JSONL) or ``y`` (NPZ) is used if present.
    feature_cols : sequence of str, optional
        Features to keep, in this order. Default: all.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Unknown extension, unreadable or empty file, ragged rows, non-numeric
        values, NaN/inf, missing label column or key, labels other than 0/1.
    """
    p = Path(path)
    loaders = {".npz": _load_npz, ".csv": _load_csv, ".jsonl": _load_jsonl}
    loader = loaders.get(p.suffix.lower())
    if loader is None:
        raise DataError(str(p), f"unknown file type {p.suffix!r} (expected .npz, .csv or .jsonl)")
    if not p.is_file():
        raise DataError(str(p), "no such file")
    try:
        ds = loader(p, label_col)
    except OSError as e:
        raise DataError(str(p), f"cannot read: {e.strerror or e}") from None
    if ds.n_rows == 0:
        raise DataError(str(p), "no data rows")
    if feature_cols:
        ds = select_features(ds, feature_cols)
    return ds


def select_features(ds: Dataset, names: Sequence[str]) -> Dataset:
    """Keep the features ``names`` in that order; DataError if any is missing."""
    index = {n: i for i, n in enumerate(ds.feature_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise DataError(
            ds.source,
            f"feature column(s) {', '.join(map(repr, missing))} not found "
            f"(have: {_preview(ds.feature_names)})",
        )
    cols = [index[n] for n in names]
    X = np.ascontiguousarray(ds.X[:, cols])
    return Dataset(X, ds.y, ds.ids, tuple(names), ds.source, ds.sha256, ds.named)


def align_features(ds: Dataset, names: Sequence[str]) -> Dataset:
    """Arrange ``ds`` columns as a model's ``names`` expect.

    Named inputs are matched by name (extra columns are dropped); positional inputs
    (``f0 ..``) must have exactly ``len(names)`` columns.
    """
    if all(n in ds.feature_names for n in names) and (ds.named or len(names) == ds.X.shape[1]):
        return select_features(ds, names)
    if not ds.named and ds.X.shape[1] == len(names):
        return Dataset(ds.X, ds.y, ds.ids, tuple(names), ds.source, ds.sha256, False)
    missing = [n for n in names if n not in ds.feature_names]
    raise DataError(
        ds.source,
        f"the model expects {len(names)} features; input has {ds.X.shape[1]} "
        f"(missing: {_preview(missing)})",
    )


def _preview(names: Sequence[str], k: int = 8) -> str:
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")


# -- npz -------------------------------------------------------------------------


def _load_npz(path: Path, label_col: str | None) -> Dataset:
    src = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise DataError(src, f"not a readable .npz file ({e})") from None
    if "X" not in arrays:
        raise DataError(src, f"missing key 'X' (keys: {', '.join(sorted(arrays)) or 'none'})")
    X = _npz_features(src, arrays["X"])
    y = None
    label_key = label_col or "y"
    if label_key in arrays:
        y = _npz_labels(src, arrays[label_key], X.shape[0], label_key)
    elif label_col:
        raise DataError(src, f"label key {label_col!r} not found")
    ids = None
    if "ids" in arrays:
        ids = [str(v) for v in arrays["ids"].reshape(-1)]
        if len(ids) != X.shape[0]:
            raise DataError(src, f"'ids' has {len(ids)} entries but X has {X.shape[0]} rows")
    named = "feature_names" in arrays
    names = (
        tuple(str(v) for v in arrays["feature_names"].reshape(-1))
        if named
        else positional_names(X.shape[1])
    )
    if len(names) != X.shape[1]:
        raise DataError(src, f"'feature_names' has {len(names)} entries; X has {X.shape[1]}")
    return Dataset(X, y, ids, names, src, file_sha256(path), named)


def _npz_features(src: str, X: np.ndarray) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise DataError(src, f"X must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(src, f"X must be 2-dimensional (rows, features), got shape {X.shape}")
    if X.shape[1] == 0:
        raise DataError(src, "X has no feature columns")
    X = X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(src, f"X[{i}, {j}] is {X[i, j]} (NaN/inf not allowed)")
    return X


def _npz_labels(src: str, y: np.ndarray, n: int, key: str) -> np.ndarray:
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise DataError(src, f"{key!r} has {y.shape[0]} labels but X has {n} rows")
    if y.dtype.kind not in "biuf":
        raise DataError(src, f"labels {key!r} must be 0/1, got dtype {y.dtype}")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise DataError(src, f"{key}[{bad[0]}] = {y[bad[0]].item()!r}: labels must be 0 or 1")
    return y.astype(np.int8)


# -- csv -------------------------------------------------------------------------


def _load_csv(path: Path, label_col: str | None) -> Dataset:
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
    return Dataset(X, y, ids, names, src, file_sha256(path), True)


def _csv_columns(
    src: str, header: list[str], label_col: str | None
) -> tuple[int | None, int | None, list[int]]:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(src, f"duplicate column name(s) in header: {', '.join(dupes)}", row=1)
    if label_col is not None and label_col not in header:
        raise DataError(
            src, f"label column {label_col!r} not in header ({_preview(header)})", row=1
        )
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


def _load_jsonl(path: Path, label_col: str | None) -> Dataset:
    src = str(path)
    label_key = label_col or _LABEL_DEFAULT
    names: tuple[str, ...] | None = None
    named = has_label = has_id = False
    chunks: list[np.ndarray] = []
    rows: list[list[float]] = []
    labels: list[int] = []
    ids: list[str] = []
    for line, obj in _json_lines(src, path):
        feats = obj.get("features")
        if names is None:
            named = isinstance(feats, dict)
            names = _first_names(src, feats, line)
            has_label = label_key in obj
            has_id = obj.get("id") is not None
        rows.append(_json_features(src, feats, names, named, line))
        # Labels and ids are all-or-nothing, decided by the first line.
        if (label_key in obj) != has_label:
            raise DataError(src, f"label {label_key!r} present on some lines only", row=line)
        if has_label:
            labels.append(_label(src, obj[label_key], line, label_key))
        if (obj.get("id") is not None) != has_id:
            raise DataError(src, "'id' present on some lines only", row=line)
        if has_id:
            ids.append(str(obj["id"]))
        if len(rows) >= _CHUNK_ROWS:
            chunks.append(np.asarray(rows, dtype=np.float32))
            rows = []
    if names is None:
        raise DataError(src, "empty file (no JSON lines)")
    if rows:
        chunks.append(np.asarray(rows, dtype=np.float32))
    X = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    y = np.asarray(labels, dtype=np.int8) if has_label else None
    return Dataset(X, y, ids if has_id else None, names, src, file_sha256(path), named)


def _json_lines(src: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(src, f"invalid JSON ({e.msg})", row=line) from None
            if not isinstance(obj, dict):
                raise DataError(src, "expected a JSON object per line", row=line)
            if "features" not in obj:
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


def _json_features(
    src: str, feats: Any, names: tuple[str, ...], named: bool, line: int
) -> list[float]:
    if named:
        if not isinstance(feats, dict):
            raise DataError(src, "'features' must be an object like the first line", row=line)
        if len(feats) != len(names) or any(n not in feats for n in names):
            extra = sorted(set(feats) - set(names))
            missing = [n for n in names if n not in feats]
            raise DataError(
                src,
                f"feature names differ from line 1 (missing: {_preview(missing) or '-'}; "
                f"unexpected: {_preview(extra) or '-'})",
                row=line,
            )
        values = [feats[n] for n in names]
    else:
        if not isinstance(feats, list):
            raise DataError(src, "'features' must be a list like the first line", row=line)
        if len(feats) != len(names):
            raise DataError(src, f"expected {len(names)} features, found {len(feats)}", row=line)
        values = feats
    return [_json_value(src, v, line, n) for v, n in zip(values, names, strict=True)]


def _json_value(src: str, v: Any, line: int, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise DataError(src, f"feature {name!r}: {v!r} is not a number", row=line)
    return _finite(src, float(v), v, line, name)


# -- demo ------------------------------------------------------------------------


def demo_data(seed: int = 0) -> tuple[Dataset, Dataset]:
    """The founding tutorial's data: PyOD ``generate_data`` with its parameters.

    ``n_train=10000, n_test=1000, n_features=50, contamination=0.2``: normal rows
    around 5 +- ~0.85 per feature, anomalies uniform in [-5, 5]. Returns the
    (train, test) datasets, both labelled.
    """
    from pyod.utils.data import generate_data  # heavy import, only for --demo

    X_train, X_test, y_train, y_test = generate_data(
        n_train=10000, n_test=1000, n_features=50, contamination=0.2, random_state=seed
    )
    names = positional_names(50)
    out = []
    for split, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        y8 = np.asarray(y, dtype=np.int8)
        h = hashlib.sha256(X32.tobytes() + y8.tobytes()).hexdigest()
        source = f"demo:pyod.generate_data(n_train=10000,n_test=1000,n_features=50,contamination=0.2,random_state={seed}):{split}"  # noqa: E501
        out.append(Dataset(X32, y8, None, names, source, h, False))
    return out[0], out[1]
