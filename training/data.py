"""Training and scoring input: ``.npz``, ``.csv``, ``.jsonl`` files and the demo data.

Every loader returns a :class:`Dataset` of float32 features, optional 0/1 labels and
optional row ids, or raises :class:`~tripwire.core.errors.DataError` naming the file, the
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

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tripwire.core.errors import DataError
from tripwire.training.textdata import positional_names, preview, read_csv, read_jsonl


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
    loaders = {".npz": _load_npz, ".csv": _load_text, ".jsonl": _load_text}
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
            f"(have: {preview(ds.feature_names)})",
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
        f"(missing: {preview(missing)})",
    )


def _load_text(path: Path, label_col: str | None) -> Dataset:
    read = read_csv if path.suffix.lower() == ".csv" else read_jsonl
    t = read(path, label_col)
    return Dataset(t.X, t.y, t.ids, t.names, str(path), file_sha256(path), t.named)


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
