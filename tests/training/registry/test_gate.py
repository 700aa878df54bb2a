"""``tripwire registry promote --evidence``: the promotion gate (issue 17, item 3).

A real registry, evidence reports as ``tripwire replay`` writes them, the real
command. The alias file records who promoted what on which evidence, and
``show --history`` prints it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.evidence import comparison, label_scores, model_figures, report, write
from tripwire.training.registry import Registry
from tripwire.training.registry.gate import parse_fraction

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def three(registry: Registry, publish_mean: Callable[..., str]) -> Registry:
    """Versions 1, 2, 3 of demo; production moved 1 -> 2."""
    for seed in (1, 2, 3):
        publish_mean(seed=seed)
    registry.promote("demo", "production", "1")
    registry.promote("demo", "production", "2")
    return registry


def evidence(
    reg: Registry,
    tmp_path: Path,
    *,
    alerts: tuple[int, int] = (100, 110),
    events: int = 10_000,
    diff: tuple[int, int, int] | None = None,
    baseline: str = "2",
    labels: tuple[int, int, int, int] | None = None,
    digest: str | None = None,
) -> Path:
    """A report comparing demo@<baseline> with demo@3 (figures consistent by construction)."""
    base_key, cand_key = f"demo@{baseline}", "demo@3"
    only_b, only_c, both = diff or (alerts[0] - min(alerts), alerts[1] - min(alerts), min(alerts))
    scores = None if labels is None else label_scores(*labels)
    models = {
        base_key: model_figures(reg.manifest_sha256("demo", baseline), events, alerts[0],
                                labels=None if labels is None else label_scores(0, 0, 0, 0)),
        cand_key: model_figures(digest or reg.manifest_sha256("demo", "3"), events, alerts[1],
                                ref="demo@candidate", labels=scores),
    }  # fmt: skip
    label_info = (
        None if labels is None else {"source": "l.csv", "labelled_events": 9, "positives": 3}
    )
    doc = report(models, [comparison(base_key, cand_key, only_b, only_c, both)], labels=label_info)
    return write(tmp_path / "report.json", doc)


def _moves(reg: Registry) -> list[dict[str, Any]]:
    record = reg.alias_record("demo", "production")
    assert record is not None
    return record["moves"]


def test_a_promotion_within_budget_moves_and_records_the_evidence(
    three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    path = evidence(three, tmp_path, alerts=(100, 110), diff=(5, 15, 95))
    rc, out, err = tripwire_cli(
        "registry", "promote", "demo", "3", "--evidence", str(path),
        "--max-alert-rate-change", "25%",
    )  # fmt: skip
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (rc, err) == (0, "")
    assert out == (
        f"demo@production: 2 -> 3 on evidence sha256:{digest[:12]}… (replay, 10000 events; "
        "alert rate 1% -> 1.1% (+10.0%); alerts only before 5, only after 15, both 95)\n"
    )
    move = _moves(three)[-1]
    assert {k: move[k] for k in ("action", "from", "to", "forced", "overridden")} == {
        "action": "promote", "from": "2", "to": "3", "forced": False, "overridden": [],
    }  # fmt: skip
    assert move["by"] == {
        "user": pwd.getpwuid(os.geteuid()).pw_name, "uid": os.geteuid(),
        "host": socket.gethostname(),
    }  # fmt: skip
    ev = move["evidence"]
    assert ev["sha256"] == digest and ev["file"] == str(path.resolve())
    assert (ev["baseline"], ev["candidate"], ev["events"]) == ("demo@2", "demo@3", 10_000)
    assert ev["alert_rate"] == {"baseline": 0.01, "candidate": 0.011, "change": pytest.approx(0.1)}
    assert ev["alerts"] == {"only_baseline": 5, "only_candidate": 15, "both": 95}
    assert ev["budget"]["max_alert_rate_change"] == 0.25 and ev["failures"] == []

    rc, out, _ = tripwire_cli("registry", "show", "demo@production", "--history")
    lines = out.splitlines()
    assert rc == 0 and lines[0] == "demo@production -> 3  (earlier versions: 1, 2)"
    who = f"by {move['by']['user']} (uid {os.geteuid()}) on {socket.gethostname()}"
    assert lines[1].split("  ")[2:] == ["promote 2 -> 3", who]
    assert (
        lines[2]
        == f"      evidence sha256:{digest} ({path.resolve()}, created 2026-11-28T10:00:00Z)"
    )
    assert "alert rate 1% -> 1.1% (+10.0%)" in lines[3]
    assert lines[4] == "      budget: alert-rate change ±25%, events >= 1000"
    assert lines[5].endswith("promote 1 -> 2  by " + lines[1].split(" by ")[1])
    assert lines[6] == "      no evidence"


def test_a_promotion_over_budget_is_refused_in_one_line(
    three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    path = evidence(three, tmp_path, alerts=(100, 150))
    before = three.alias_path("demo", "production").read_bytes()
    rc, out, err = tripwire_cli(
        "registry", "promote", "demo", "3", "--evidence", str(path),
        "--max-alert-rate-change", "25%",
    )  # fmt: skip
    assert (rc, out) == (1, "")
    assert err == (
        "tripwire registry promote: refusing to promote demo@3 to production: the "
        "alert rate changes by +50.0% (1% -> 1.5%), over the budget of ±25%; --force overrides\n"
    )
    assert three.alias_path("demo", "production").read_bytes() == before  # nothing moved


def test_fewer_alerts_are_outside_the_budget_too(
    three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    path = evidence(three, tmp_path, alerts=(100, 60))
    rc, _, err = tripwire_cli("registry", "promote", "demo", "3", "--evidence", str(path),
                              "--max-alert-rate-change", "25%")  # fmt: skip
    assert rc == 1 and "changes by -40.0%" in err


def test_force_promotes_and_says_so(three: Registry, tripwire_cli: Cli, tmp_path: Path) -> None:
    path = evidence(three, tmp_path, alerts=(100, 150))
    rc, out, _ = tripwire_cli(
        "registry", "promote", "demo", "3", "--evidence", str(path),
        "--max-alert-rate-change", "25%", "--force",
    )  # fmt: skip
    assert rc == 0 and out.rstrip().endswith("FORCED over: the alert rate changes by +50.0% "
                                            "(1% -> 1.5%), over the budget of ±25%")  # fmt: skip
    move = _moves(three)[-1]
    assert move["forced"] is True and move["overridden"] == move["evidence"]["failures"] != []
    _, shown, _ = tripwire_cli("registry", "show", "demo", "--history")
    assert "promote 2 -> 3" in shown.splitlines()[1] and shown.splitlines()[1].endswith("FORCED")
    assert "      overridden: the alert rate changes by +50.0%" in shown


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"baseline": "1"}, "the evidence has no results for demo@2 (it has demo@1, demo@3)"),
        ({"digest": "f" * 64}, "the evidence scored another demo@3 (manifest sha256 ffffffffffff…"),
        ({"events": 500, "alerts": (5, 5)}, "covers 500 events, fewer than --min-events 1000"),
        ({"alerts": (0, 3)}, "the alert rate changes from none (0% -> 0.03%)"),
    ],
)
def test_evidence_that_is_not_about_this_move_is_refused(
    change: dict[str, Any], why: str, three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    path = evidence(three, tmp_path, **change)
    rc, _, err = tripwire_cli("registry", "promote", "demo", "3", "--evidence", str(path),
                              "--max-alert-rate-change", "25%")  # fmt: skip
    assert rc == 1 and why in err, err
    assert three.alias_version("demo", "production") == "2"


def test_recall_and_precision_budgets_need_labels(
    three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    def promote(path: Path, *budget: str) -> tuple[int, str, str]:
        return tripwire_cli("registry", "promote", "demo", "3", "--evidence", str(path), *budget)

    unlabelled = evidence(three, tmp_path)
    rc, _, err = promote(unlabelled, "--min-recall", "0.8")
    assert rc == 1 and "the evidence has no labels: --min-recall cannot be checked" in err
    low = evidence(three, tmp_path, alerts=(100, 110), labels=(7, 103, 3, 9000))  # recall 0.7
    rc, _, err = promote(low, "--min-recall", "80%", "--min-precision", "0.5")
    assert rc == 1 and "recall 0.7 is below --min-recall 0.8; precision 0.0636" in err
    good = evidence(three, tmp_path, alerts=(100, 110), labels=(9, 101, 1, 9000))  # recall 0.9
    rc, out, _ = promote(good, "--min-recall", "0.8")
    assert rc == 0 and "recall 0.9" in out
    assert _moves(three)[-1]["evidence"]["recall"] == 0.9


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--max-alert-rate-change", "25%"], "needs --evidence"),
        (["--evidence", "REPORT", "--max-alert-rate-change", "25"], "ambiguous: write 25% or 0.25"),
        (["--evidence", "REPORT", "--min-recall", "much"], "expected a percentage (25%)"),
        (["--evidence", "missing.json"], "cannot read evidence missing.json"),
        (["--evidence", "GARBAGE"], "is not JSON"),
        (["--evidence", "INVALID"], "is not valid: source: 'guess' is not one of"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], why: str, three: Registry, tripwire_cli: Cli, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    good = evidence(three, tmp_path)
    (tmp_path / "GARBAGE").write_text("{not json")
    write(tmp_path / "INVALID", {**json.loads(good.read_text()), "source": "guess"})
    argv = [str(good) if a == "REPORT" else a for a in argv]
    rc, _, err = tripwire_cli("registry", "promote", "demo", "3", *argv)
    assert rc == 2 and why in err, err
    assert three.alias_version("demo", "production") == "2"


def test_the_budget_can_come_from_the_environment(
    three: Registry, tripwire_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPWIRE_MAX_ALERT_RATE_CHANGE", "5%")
    path = evidence(three, tmp_path, alerts=(100, 110))
    rc, _, err = tripwire_cli("registry", "promote", "demo", "3", "--evidence", str(path))
    assert rc == 1 and "over the budget of ±5%" in err


def test_a_first_promotion_has_no_baseline(
    registry: Registry, publish_mean: Callable[..., str], tripwire_cli: Cli, tmp_path: Path
) -> None:
    for seed in (1, 2, 3):
        publish_mean(seed=seed)
    path = evidence(registry, tmp_path)
    rc, _, err = tripwire_cli("registry", "promote", "demo", "3", "--evidence", str(path),
                              "--max-alert-rate-change", "25%")  # fmt: skip
    assert rc == 1 and "the alias is unset: no baseline" in err
    rc, out, _ = tripwire_cli("registry", "promote", "demo", "3", "--evidence", str(path))
    assert rc == 0 and out.startswith("demo@production: unset -> 3 on evidence sha256:")


def test_force_never_promotes_a_version_that_fails_verification(
    three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    path = evidence(three, tmp_path)
    (three.version_dir("demo", "3") / "mean.npy").write_bytes(b"tampered")
    rc, _, err = tripwire_cli(
        "registry", "promote", "demo", "3", "--evidence", str(path), "--force"
    )
    assert rc == 2 and "refusing to promote to production demo@3" in err and "sha256" in err


def test_old_alias_files_keep_working_and_new_ones_keep_the_old_fields(
    three: Registry, tripwire_cli: Cli, tmp_path: Path
) -> None:
    """Schema 1 files (no schema_version, no moves) read; schema 2 keeps schema 1's shape."""
    path = three.alias_path("demo", "production")
    path.write_text(json.dumps({"version": "2", "history": ["1"], "updated_at": "then"}))
    assert three.alias_version("demo", "production") == "2"
    _, out, _ = tripwire_cli("registry", "show", "demo", "--history")
    assert "no moves recorded" in out
    assert tripwire_cli("registry", "promote", "demo", "3")[0] == 0
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 2 and doc["version"] == "3" and doc["history"] == ["1", "2"]
    assert isinstance(doc["updated_at"], str) and len(doc["moves"]) == 1  # what schema 1 read
    assert tripwire_cli("registry", "rollback", "demo")[0] == 0
    doc = json.loads(path.read_text())
    assert (doc["version"], doc["history"]) == ("2", ["1"])
    assert [m["action"] for m in doc["moves"]] == ["promote", "rollback"]


def test_a_newer_alias_schema_is_refused(three: Registry, tripwire_cli: Cli) -> None:
    path = three.alias_path("demo", "production")
    path.write_text(json.dumps({"schema_version": 3, "version": "2", "history": []}))
    rc, _, err = tripwire_cli("registry", "promote", "demo", "3")
    assert rc == 2 and "written by a newer Tripwire" in err


def test_parse_fraction() -> None:
    assert parse_fraction("25%") == 0.25 and parse_fraction(" 0.25 ") == 0.25
    assert parse_fraction("150%") == 1.5 and parse_fraction("0") == 0.0
