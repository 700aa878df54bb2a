"""``tripwire registry ...`` through the real entry point: output and exit codes."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tripwire.training.registry import Registry

METRICS = {"roc_auc": 0.99512, "pr_auc": 0.9, "f1": 0.875, "precision": 1.0}


@pytest.fixture
def two_versions(publish_mean: Callable[..., str]) -> None:
    publish_mean(seed=1, threshold=1.5, metrics=METRICS)
    publish_mean(seed=2, threshold=2.25, metrics=None)


def test_list(two_versions: None, registry: Registry, tripwire_cli: Callable) -> None:
    registry.promote("demo", "production", "1")
    registry.promote("demo", "staging", "1")
    rc, out, _ = tripwire_cli("registry", "list")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "demo  (aliases: production -> 1, staging -> 1)"
    assert lines[1].split() == [
        "VERSION", "CREATED", "DETECTOR", "FEATURES", "THRESHOLD",
        "ROC_AUC", "PR_AUC", "F1", "ALIASES",
    ]  # fmt: skip
    v1, v2 = lines[2].split(), lines[3].split()
    assert v1[0] == "1" and v1[2:] == [
        "test-mean", "3", "fpr=1.5", "0.9951", "0.9000", "0.8750", "production,staging",
    ]  # fmt: skip
    assert v2[0] == "2" and v2[2:] == ["test-mean", "3", "fpr=2.25", "-", "-", "-", "-"]


def test_list_json(two_versions: None, registry: Registry, tripwire_cli: Callable) -> None:
    registry.promote("demo", "production", "2")
    rc, out, _ = tripwire_cli("registry", "list", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["demo"]["versions"] == ["1", "2"] and doc["demo"]["aliases"] == {"production": "2"}
    v1, v2 = doc["demo"]["details"]["1"], doc["demo"]["details"]["2"]
    assert v1["metrics"] == {"roc_auc": 0.99512, "pr_auc": 0.9, "f1": 0.875}  # the table's
    assert v1["threshold"] == {"method": "fpr", "value": 1.5} and v1["features"] == 3
    assert v1["detector"] == "test-mean" and v1["created_at"]
    assert v2["metrics"] == {"roc_auc": None, "pr_auc": None, "f1": None}


def test_list_json_marks_an_unreadable_manifest(
    two_versions: None, registry: Registry, tripwire_cli: Callable
) -> None:
    (registry.version_dir("demo", "2") / "manifest.json").write_text("{")
    rc, out, _ = tripwire_cli("registry", "list", "--json")
    assert rc == 0
    assert "cannot be read as JSON" in json.loads(out)["demo"]["details"]["2"]["error"]


def test_list_marks_an_unreadable_manifest(
    two_versions: None, registry: Registry, tripwire_cli: Callable
) -> None:
    (registry.version_dir("demo", "2") / "manifest.json").write_text("{")
    rc, out, _ = tripwire_cli("registry", "list")
    assert rc == 0
    assert re.search(r"\n  2 +<unreadable: .*manifest.json cannot be read as JSON", out)


def test_list_of_a_missing_registry(tmp_path: Path, tripwire_cli: Callable) -> None:
    rc, out, err = tripwire_cli("registry", "list", "--registry", str(tmp_path / "none"))
    assert (rc, out) == (2, "")
    assert (
        err == f"tripwire registry: error: registry directory {tmp_path / 'none'} does not exist\n"
    )


def test_show(two_versions: None, tripwire_cli: Callable) -> None:
    rc, out, _ = tripwire_cli("registry", "show", "demo@2")
    manifest = json.loads(out)
    assert rc == 0 and manifest["version"] == "2" and manifest["threshold"]["value"] == 2.25
    rc, _, err = tripwire_cli("registry", "show", "demo")
    assert rc == 2 and "no 'production' alias" in err and "demo@latest" in err


def test_promote_and_rollback(
    two_versions: None, registry: Registry, tripwire_cli: Callable
) -> None:
    assert tripwire_cli("registry", "promote", "demo", "1") == (
        0,
        "demo@production: unset -> 1\n",
        "",
    )
    assert tripwire_cli("registry", "promote", "demo", "latest")[1] == "demo@production: 1 -> 2\n"
    rc, out, _ = tripwire_cli("registry", "promote", "demo", "production", "--alias", "canary")
    assert (rc, out) == (0, "demo@canary: unset -> 2\n")
    assert tripwire_cli("registry", "rollback", "demo") == (0, "demo@production: 2 -> 1\n", "")
    assert registry.aliases("demo") == {"canary": "2", "production": "1"}

    rc, _, err = tripwire_cli("registry", "rollback", "demo")
    assert rc == 2 and "no previous version to roll back to" in err
    rc, _, err = tripwire_cli("registry", "promote", "demo", "5")
    assert rc == 2 and "no version 5 (versions: 1, 2)" in err


def test_verify(two_versions: None, registry: Registry, tripwire_cli: Callable) -> None:
    registry.promote("demo", "production", "2")
    assert tripwire_cli("registry", "verify") == (
        0,
        f"{registry.root}: 0 error(s), 0 warning(s)\n",
        "",
    )
    (registry.version_dir("demo", "1") / "mean.npy").write_bytes(b"bad")
    rc, out, _ = tripwire_cli("registry", "verify")
    assert rc == 1
    assert out.splitlines()[0].startswith("error: demo/1/mean.npy: sha256 mismatch")
    assert out.splitlines()[-1].endswith("1 error(s), 0 warning(s)")
    assert tripwire_cli("registry", "verify", "demo@2")[0] == 0
    assert tripwire_cli("registry", "verify", "demo@production")[0] == 0
    assert tripwire_cli("registry", "verify", "demo@1")[0] == 1
    rc, _, err = tripwire_cli("registry", "verify", "nope")
    assert rc == 2 and "no model 'nope'" in err


def test_gc(two_versions: None, registry: Registry, tripwire_cli: Callable) -> None:
    stale = registry.root / "demo" / ".tmp-abandoned"
    stale.mkdir()
    (stale / "a.bin").write_bytes(b"a")
    old = time.time() - 7200
    os.utime(stale / "a.bin", (old, old))
    os.utime(stale, (old, old))
    rc, out, _ = tripwire_cli("registry", "verify")
    assert rc == 0 and "warning: demo/.tmp-abandoned: abandoned publish" in out
    rc, out, _ = tripwire_cli("registry", "gc", "--dry-run")
    assert (rc, out) == (0, f"would remove {stale}\n1 abandoned temp entry\n") and stale.exists()
    assert tripwire_cli("registry", "gc")[1] == f"removed {stale}\n1 abandoned temp entry\n"
    assert not stale.exists()


def test_help_shows_the_env_var(tripwire_cli: Callable, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        tripwire_cli("registry", "list", "--help")
    assert "TRIPWIRE_REGISTRY" in capsys.readouterr().out
