"""``tripwire train`` and ``tripwire score`` end to end, through the real entry point."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.registry import normal_rows, publish_model, symlinked_pickle
from tripwire.cli import main
from tripwire.core.registry import load_scorer
from tripwire.training.data import load_data

N_FEATURES = 6


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No TRIPWIRE_* variable from the outside changes what these tests run."""
    for key in list(os.environ):
        if key.startswith("TRIPWIRE_"):
            monkeypatch.delenv(key)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path: Path, X: np.ndarray, y: np.ndarray, columns: list[str] | None = None) -> Path:
    names = [f"m{j}" for j in range(X.shape[1])]
    order = columns or ["id", *names, "label"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(order)
        for i, (row, label) in enumerate(zip(X, y, strict=True)):
            cells = {"id": f"ev-{i}", "label": int(label)}
            cells.update({n: repr(float(v)) for n, v in zip(names, row, strict=True)})
            w.writerow([cells[c] for c in order])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small AE published as m@production from a labelled CSV: (registry, csv)."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, N_FEATURES))
    normal = rng.normal(size=(400, 2)) @ basis + 0.1 * rng.normal(size=(400, N_FEATURES))
    X = np.vstack([normal, rng.uniform(-5, 5, size=(60, N_FEATURES))]).astype(np.float32)
    y = np.r_[np.zeros(400), np.ones(60)].astype(int)
    order = rng.permutation(len(X))
    data = write_csv(root / "events.csv", X[order], y[order])
    reg = root / "reg"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["train", "--data", str(data), "--registry", str(reg), "--name", "m",
                     "--model", "ae", "--epochs", "8", "--promote", "production",
                     "--plot", "none"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return reg, data


# -- train -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "ae", "vae"])
def test_demo_with_default_settings_reaches_the_quality_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str | None
) -> None:
    """The done-when bar: accuracy and recall >= 0.99 on the demo test split.

    ``None``: no ``--model``, i.e. ``tripwire train``'s default detector.
    """
    model = [] if kind is None else ["--model", kind]
    code, out, _ = run(capsys, "train", "--demo", *model, "--registry", str(tmp_path))
    assert code == 0
    manifest = json.loads((tmp_path / "demo" / "1" / "manifest.json").read_text())
    m = manifest["metrics"]
    assert m["accuracy"] >= 0.99 and m["recall"] >= 0.99, m
    assert m["n"] == 1000 and m["n_anomalies"] == 200
    assert manifest["threshold"]["method"] == "f1"
    assert manifest["detector"]["kind"] == (kind or "ensemble")
    assert "published demo@1" in out and "accuracy" in out and "scores.png" in out


def test_train_summary_and_promotion(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reg, data = trained
    code, out, _ = run(capsys, "train", "--data", str(data), "--registry", str(reg),
                       "--name", "m", "--model", "ae", "--epochs", "2",
                       "--threshold", "pot:1e-3",
                       "--plot", "none")  # fmt: skip
    assert code == 0
    assert "published m@2" in out and "promoted" not in out
    assert "\nthreshold      pot:0.001,0.98 = " in out  # as --threshold takes it, no dict
    assert load_scorer(reg, "m@production").version == "1"  # not promoted this time
    assert load_scorer(reg, "m@latest").version == "2"


BAD_INPUTS = [
    ("ragged.csv", "a,b\n1,2\n3\n", [], "row 3: expected 2 columns, found 1"),
    ("text.csv", "a,b\n1,2\n1,abc\n", [], "row 3: column 'b': 'abc' is not a number"),
    ("nan.csv", "a,b\n1,2\n1,NaN\n", [], "row 3: 'b': 'NaN' is NaN/inf"),
    ("inf.csv", "a,b\ninf,2\n", [], "row 2: 'a': 'inf' is NaN/inf"),
    ("empty.csv", "", [], "empty file"),
    ("header.csv", "a,b\n", [], "no data rows"),
    ("nolabel.csv", "a,b\n1,2\n", ["--label-col", "y"], "row 1: label column 'y' not in header"),
    ("labels.csv", "a,label\n1,0\n2,5\n", [], "row 3: label 'label' is '5'"),
    ("data.parquet", "x", [], "unknown file type '.parquet'"),
    ("bad.jsonl", '{"features": [1]}\n{"features": [1,\n', [], "row 2: invalid JSON"),
    ("missing.csv", None, [], "no such file"),
]


@pytest.mark.parametrize(("name", "text", "extra", "message"), BAD_INPUTS)
def test_bad_training_input_exits_2_naming_file_and_row(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str | None,
    extra: list[str],
    message: str,
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    reg = tmp_path / "reg"
    code, out, err = run(capsys, "train", "--data", str(path), "--registry", str(reg), *extra)
    assert code == 2
    assert err.startswith(f"tripwire train: error: {path}") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert not reg.exists()


def test_npz_without_x_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, features=np.ones((3, 2)))
    code, _, err = run(capsys, "train", "--data", str(path), "--registry", str(tmp_path / "r"))
    assert code == 2 and f"{path}: missing key 'X'" in err


@pytest.mark.parametrize("model", ["svm", "pyod:NoSuchModel"])
def test_an_unknown_model_fails_before_the_data_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    missing = tmp_path / "missing.csv"  # loading it would fail with "no such file"
    code, _, err = run(capsys, "train", "--data", str(missing), "--model", model,
                       "--registry", str(tmp_path / "r"))  # fmt: skip
    assert code == 2 and "no such file" not in err
    assert "unknown detector" in err or "unknown PyOD model" in err, err


@pytest.mark.parametrize(
    ("argv", "usage", "unknown"),
    [
        (["train", "--dta", "x"], "usage: tripwire train ", "--dta x"),
        (["registry", "list", "--bogus"], "usage: tripwire registry list ", "--bogus"),
        (["score", "--modle", "m"], "usage: tripwire score ", "--modle m"),
    ],
)
def test_a_typo_shows_the_subcommands_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, unknown: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and f"unrecognized arguments: {unknown}\n" in err


def test_help_shows_no_default_for_unset_options(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "score"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "default: None" not in out and "default: ]" not in out
        assert "[env TRIPWIRE_DATA]" in out  # unset: only where to set it


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--demo", "--threshold", "fpr:7"], {}, "must be in (0, 1)"),
        (["--demo", "--threshold", "median"], {}, "unknown threshold method"),
        (["--demo", "--model", "svm"], {}, "unknown detector 'svm'"),
        (["--demo", "--data", "x.csv"], {}, "exactly one of --data PATH or --demo"),
        ([], {}, "exactly one of --data PATH or --demo"),
        (["--demo"], {"TRIPWIRE_EPOCHS": "many"}, "TRIPWIRE_EPOCHS='many'"),
        (["--demo", "--params", "[1]"], {}, "--params must be a JSON object"),
    ],
)
def test_bad_options_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = run(capsys, "train", "--registry", str(tmp_path / "r"), *argv)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_real_console_process_prints_no_stack_trace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire", "train", "--data", str(bad), "--registry",
         str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tripwire train: error: {bad}, row 3: column 'b': 'x' is not a number"
    )
    assert "Traceback" not in proc.stderr


def test_help_shows_env_vars_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "score"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        out = " ".join(capsys.readouterr().out.split())  # undo line wrapping
        assert "TRIPWIRE_REGISTRY" in out and "default: ./registry" in out
    # the last command's help was score's
    assert "TRIPWIRE_MODEL_REF" in out and "--top-k" in out


# -- score -----------------------------------------------------------------------


def test_score_npy_is_the_scorers_output(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, data = trained
    out = tmp_path / "scores.npy"
    code, text, _ = run(capsys, "score", "--registry", str(reg), "--model", "m@production",
                        "--data", str(data), "--out", str(out), "--batch-rows", "7")  # fmt: skip
    assert code == 0 and "scored 460 rows with m@1" in text
    scores = np.load(out)
    ds = load_data(data)
    expected = load_scorer(reg, "m@production").score(ds.X).scores
    assert scores.shape == (460,) and scores.dtype == np.float64
    np.testing.assert_array_equal(scores, expected)  # batches of 7 change nothing


def test_score_csv_has_ids_flags_and_top_features(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, data = trained
    out = tmp_path / "scores.csv"
    code, _, _ = run(capsys, "score", "--registry", str(reg), "--model", "m",
                     "--data", str(data), "--out", str(out), "--top-k", "2")  # fmt: skip
    assert code == 0
    ds = load_data(data)
    scorer = load_scorer(reg, "m@production")
    result = scorer.score(ds.X)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 460 and list(rows[0]) == [
        "id", "score", "is_anomaly",
        "top1_feature", "top1_contribution", "top2_feature", "top2_contribution",
    ]  # fmt: skip
    assert [r["id"] for r in rows] == ds.ids
    np.testing.assert_array_equal([float(r["score"]) for r in rows], result.scores)
    assert [r["is_anomaly"] == "1" for r in rows] == list(result.is_anomaly)
    assert 0 < sum(result.is_anomaly) < 460
    assert result.contributions is not None
    for i in (0, 17, 459):
        top = scorer.top_features(ds.X[i], result.contributions[i], 2)
        assert rows[i]["top1_feature"] == top[0].name and rows[i]["top2_feature"] == top[1].name
        assert float(rows[i]["top1_contribution"]) >= float(rows[i]["top2_contribution"])


def test_score_matches_named_columns_in_any_order(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, data = trained
    ds = load_data(data)
    assert ds.y is not None
    names = list(ds.feature_names)
    shuffled = write_csv(tmp_path / "shuffled.csv", ds.X, ds.y, ["label", *names[::-1], "id"])
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    for src, out in ((data, a), (shuffled, b)):
        assert run(capsys, "score", "--registry", str(reg), "--model", "m@1",
                   "--data", str(src), "--out", str(out))[0] == 0  # fmt: skip
    np.testing.assert_array_equal(np.load(a), np.load(b))


@pytest.mark.parametrize(
    ("model", "make_data", "out", "message"),
    [
        ("m@9", "good", "s.npy", "has no version 9"),
        ("nosuch", "good", "s.npy", "cannot load model nosuch"),
        ("m@1", "narrow", "s.npy", "the model expects 6 features; input has 3"),
        ("m@1", "ragged", "s.csv", "ragged.csv, row 3: expected 6 columns, found 2"),
        ("m@1", "good", "s.parquet", "expected a .npy or .csv path"),
        ("", "good", "s.npy", "--model NAME[@VERSION|@ALIAS] is required"),
    ],
)
def test_score_errors_exit_2(
    trained: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    make_data: str,
    out: str,
    message: str,
) -> None:
    reg, data = trained
    if make_data == "narrow":
        data = tmp_path / "narrow.npz"
        np.savez(data, X=np.ones((4, 3)))
    elif make_data == "ragged":
        data = tmp_path / "ragged.csv"
        data.write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n1,2\n")
    argv = ["score", "--registry", str(reg), "--data", str(data), "--out", str(tmp_path / out)]
    if model:
        argv += ["--model", model]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / out).exists()


def test_score_never_unpickles_a_version_outside_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 §4, as reproduced: on main this `tripwire score` created the marker."""
    pub = publish_model(tmp_path / "registry", kind="pyod:IForest")
    marker = tmp_path / "pickle-was-executed"
    symlinked_pickle(pub, tmp_path / "outside", "2", marker)
    data = tmp_path / "rows.npz"
    np.savez(data, X=normal_rows(5))
    argv = ["score", "--registry", str(pub.root), "--model", "demo@2", "--data", str(data),
            "--out", str(tmp_path / "s.npy")]  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 2 and "demo/2: is a symlink (to " in err, err
    assert not marker.exists()
