"""Loading .npz/.csv/.jsonl and the demo data; every bad input names file, row, problem."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tripwire.core.errors import DataError
from tripwire.training import textdata
from tripwire.training.data import align_features, demo_data, load_data


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- npz -------------------------------------------------------------------------


def test_npz_casts_ints_to_float32_and_reads_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, X=np.arange(6, dtype=np.int64).reshape(3, 2), y=np.array([0, 1, 0]))
    ds = load_data(p)
    assert ds.X.dtype == np.float32 and ds.X.shape == (3, 2)
    assert ds.y is not None and ds.y.dtype == np.int8 and ds.y.tolist() == [0, 1, 0]
    assert ds.feature_names == ("f0", "f1") and not ds.named
    assert ds.sha256 == sha(p) and ds.source == str(p) and ds.ids is None


def test_npz_feature_names_ids_and_selection(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(
        p,
        X=np.array([[1.0, 2.0, 3.0]]),
        feature_names=np.array(["a", "b", "c"]),
        ids=np.array(["r1"]),
    )
    ds = load_data(p, feature_cols=["c", "a"])
    assert ds.feature_names == ("c", "a") and ds.X.tolist() == [[3.0, 1.0]] and ds.named
    assert ds.ids == ["r1"] and ds.y is None


@pytest.mark.parametrize(
    ("arrays_", "label_col", "message"),
    [
        ({"Z": np.ones((2, 2))}, None, "missing key 'X'"),
        ({"X": np.array([[1.0, np.nan]])}, None, r"X\[0, 1\] is nan"),
        ({"X": np.array([[1.0], [np.inf]])}, None, r"X\[1, 0\] is inf"),
        ({"X": np.ones(3)}, None, "2-dimensional"),
        ({"X": np.array([["a"]])}, None, "numeric"),
        ({"X": np.ones((2, 2)), "y": np.array([0, 2])}, None, r"y\[1\] = 2"),
        ({"X": np.ones((2, 2)), "y": np.array([0, 1, 1])}, None, "3 labels but X has 2"),
        ({"X": np.ones((2, 2))}, "target", "label key 'target' not found"),
        ({"X": np.ones((0, 2))}, None, "no data rows"),
    ],
)
def test_npz_bad_input(tmp_path: Path, arrays_: dict, label_col: str | None, message: str) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays_)
    with pytest.raises(DataError, match=message) as exc:
        load_data(p, label_col=label_col)
    assert str(p) in str(exc.value)


def test_npz_that_is_not_a_zip_is_a_data_error(tmp_path: Path) -> None:
    p = write(tmp_path / "junk.npz", "not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data(p)


# -- csv -------------------------------------------------------------------------


def test_csv_with_id_and_label_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "id,a,b,label\nx1,1,2.5,0\nx2,-3,4e2,1\n")
    ds = load_data(p)
    assert ds.feature_names == ("a", "b") and ds.named
    assert ds.X.tolist() == [[1.0, 2.5], [-3.0, 400.0]]
    assert ds.y is not None and ds.y.tolist() == [0, 1]
    assert ds.ids == ["x1", "x2"]
    assert ds.sha256 == sha(p)


def test_csv_named_label_column_and_feature_selection(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "a,b,c,target\n1,2,3,1\n4,5,6,0\n")
    ds = load_data(p, label_col="target", feature_cols=["c", "a"])
    assert ds.feature_names == ("c", "a") and ds.X.tolist() == [[3.0, 1.0], [6.0, 4.0]]
    assert ds.y is not None and ds.y.tolist() == [1, 0]


def test_csv_without_labels(tmp_path: Path) -> None:
    ds = load_data(write(tmp_path / "d.csv", "a,b\n1,2\n\n3,4\n"))  # blank line skipped
    assert ds.y is None and ds.ids is None and ds.X.shape == (2, 2)


def test_csv_larger_than_a_chunk_matches_numpy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(textdata, "_CHUNK_ROWS", 7)
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    p = tmp_path / "big.csv"
    np.savetxt(p, X, delimiter=",", header="a,b,c", comments="", fmt="%.9g")
    ds = load_data(p)
    np.testing.assert_array_equal(ds.X, X)


@pytest.mark.parametrize(
    ("text", "kwargs", "row", "message"),
    [
        ("a,b\n1,2\n3\n", {}, 3, "expected 2 columns, found 1"),
        ("a,b\n1,2\n3,4,5\n", {}, 3, "expected 2 columns, found 3"),
        ("a,b\n1,2\n1,x\n", {}, 3, "column 'b': 'x' is not a number"),
        ("a,b\n1,nan\n", {}, 2, "NaN/inf"),
        ("a,b\n1,2\n-inf,2\n", {}, 3, "NaN/inf"),
        ("a,b\n1,1e300\n", {}, 2, "overflows float32"),
        ("a,label\n1,0\n2,2\n", {}, 3, "labels must be 0 or 1"),
        ("a,label\n1,yes\n", {}, 2, "labels must be 0 or 1"),
        ("a,b\n1,2\n", {"label_col": "y"}, 1, "label column 'y' not in header"),
        ("a,a\n1,2\n", {}, 1, "duplicate column"),
        ("id,label\nx,1\n", {}, 1, "no feature columns"),
    ],
)
def test_csv_bad_input_names_file_and_line(
    tmp_path: Path, text: str, kwargs: dict, row: int, message: str
) -> None:
    p = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=message) as exc:
        load_data(p, **kwargs)
    assert exc.value.row == row and exc.value.path == str(p)
    assert str(exc.value).startswith(f"{p}, row {row}: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty file"), ("\n", "empty file"), ("a,b\n", "no data rows")],
)
def test_csv_empty(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_data(write(tmp_path / "e.csv", text))


def test_csv_unknown_feature_column(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="'zz' not found"):
        load_data(p, feature_cols=["a", "zz"])


@settings(max_examples=30, deadline=None)
@given(X=arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 5))))
def test_csv_round_trips_any_finite_float32_matrix(tmp_path_factory, X) -> None:
    X = np.where(np.isfinite(X), X, 0).astype(np.float32)
    p = tmp_path_factory.mktemp("rt") / "x.csv"
    lines = [",".join(f"c{j}" for j in range(X.shape[1]))]
    lines += [",".join(repr(float(v)) for v in row) for row in X]
    p.write_text("\n".join(lines) + "\n")
    np.testing.assert_array_equal(load_data(p).X, X)


# -- jsonl -----------------------------------------------------------------------


def jsonl(path: Path, *objs: object) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_jsonl_list_features_with_ids_and_labels(tmp_path: Path) -> None:
    p = jsonl(
        tmp_path / "e.jsonl",
        {"id": "e1", "features": [1, 2.5], "label": 0},
        {"id": 7, "features": [3, 4], "label": 1},
    )
    ds = load_data(p)
    assert ds.X.tolist() == [[1.0, 2.5], [3.0, 4.0]] and ds.feature_names == ("f0", "f1")
    assert ds.y is not None and ds.y.tolist() == [0, 1] and ds.ids == ["e1", "7"]
    assert not ds.named


def test_jsonl_named_features_keep_first_line_order(tmp_path: Path) -> None:
    p = jsonl(
        tmp_path / "e.jsonl",
        {"features": {"mem": 1, "cpu": 2}},
        {"features": {"cpu": 4, "mem": 3}},
    )
    ds = load_data(p)
    assert ds.feature_names == ("mem", "cpu") and ds.X.tolist() == [[1, 2], [3, 4]]
    assert ds.named and ds.y is None and ds.ids is None


@pytest.mark.parametrize(
    ("lines", "row", "message"),
    [
        (['{"features": [1, 2]}', "{not json"], 2, "invalid JSON"),
        (['{"features": [1, 2]}', "[1, 2]"], 2, "JSON object per line"),
        (['{"features": [1, 2]}', '{"x": 1}'], 2, "missing key 'features'"),
        (['{"features": [1, 2]}', '{"features": [1]}'], 2, "expected 2 features, found 1"),
        (['{"features": [1, "a"]}'], 1, "feature 'f1' is str"),
        (['{"features": [1, true]}'], 1, "feature 'f1' is bool"),
        (['{"features": [1, 1e39]}'], 1, r"feature 'f1' is NaN/inf \(or beyond float32\)"),
        (['{"features": [1, 1' + "0" * 400 + "]}"], 1, "out of float range"),
        (['{"id": 1.5, "features": [1]}'], 1, "'id' must be a non-empty string or an integer"),
        (['{"id": "", "features": [1]}'], 1, "'id' must be a non-empty string or an integer"),
        (['{"features": [1, NaN]}'], 1, "NaN/inf"),
        (['{"features": {"a": 1}}', '{"features": {"b": 1}}'], 2, "feature names differ"),
        (['{"features": {"a": 1}}', '{"features": [1]}'], 2, "must be an object"),
        (['{"features": []}'], 1, "'features' is empty"),
        (['{"features": "1,2"}'], 1, "must be a list or an object"),
        (['{"features": [1], "label": 0}', '{"features": [2]}'], 2, "some lines only"),
        (['{"features": [1], "label": 3}'], 1, "labels must be 0 or 1"),
    ],
)
def test_jsonl_bad_input_names_file_and_line(
    tmp_path: Path, lines: list[str], row: int, message: str
) -> None:
    p = write(tmp_path / "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as exc:
        load_data(p)
    assert exc.value.row == row and str(p) in str(exc.value)


def test_jsonl_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty file"):
        load_data(write(tmp_path / "e.jsonl", "\n\n"))


# -- any format ------------------------------------------------------------------


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown file type '.parquet'"):
        load_data(tmp_path / "d.parquet")
    with pytest.raises(DataError, match="no such file"):
        load_data(tmp_path / "missing.csv")


def test_align_features_by_name_and_by_position(tmp_path: Path) -> None:
    named = load_data(write(tmp_path / "d.csv", "b,extra,a\n2,9,1\n"))
    aligned = align_features(named, ("a", "b"))
    assert aligned.X.tolist() == [[1.0, 2.0]] and aligned.feature_names == ("a", "b")
    with pytest.raises(DataError, match="missing: c"):
        align_features(named, ("a", "c"))
    p = tmp_path / "d.npz"
    np.savez(p, X=np.ones((1, 2)))
    positional = load_data(p)
    assert align_features(positional, ("a", "b")).feature_names == ("a", "b")
    with pytest.raises(DataError, match="expects 3 features; input has 2"):
        align_features(positional, ("a", "b", "c"))


def test_demo_data_is_the_tutorials_and_seeded() -> None:
    train, test = demo_data(0)
    assert train.X.shape == (10000, 50) and test.X.shape == (1000, 50)
    assert train.y is not None and test.y is not None
    assert train.y.mean() == pytest.approx(0.2) and test.y.mean() == pytest.approx(0.2)
    assert train.X.dtype == np.float32 and train.y.dtype == np.int8
    again, _ = demo_data(0)
    other, _ = demo_data(1)
    assert again.sha256 == train.sha256 != other.sha256
    np.testing.assert_array_equal(again.X, train.X)
