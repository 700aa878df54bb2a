"""deploy/prometheus.yml and the alerting rules, checked by Prometheus' own promtool.

`promtool check config` / `check rules` for syntax and semantics, `promtool test
rules` for behaviour (tests/deploy/rules_test.yml: every alert fires on series that
should trip it and stays quiet otherwise), plus the house rules for alerts: a
`for:`, a severity, a summary, a description and a runbook section that exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import promql
from tests.deploy.promql import REPO

CONFIG = REPO / "deploy" / "prometheus.yml"
RULES_TEST = Path(__file__).with_name("rules_test.yml")
RUNBOOK = REPO / "docs" / "runbook.md"
SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool missing: `make system-deps` installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    n_files = len(promql.rule_files())
    assert n_files >= 1
    assert f"SUCCESS: {n_files} rule files found" in result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    files = [str(p) for p in promql.rule_files()]
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL syntax error is refused."""
    bad = tmp_path / "bad.rules.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m] > 1\n")
    assert promtool("check", "rules", str(bad)).returncode != 0


#: tripwire:workers_expected in the rule unit tests (rules_test.yml is written for it).
TEST_WORKERS = 2


def test_promtool_rule_unit_tests(tmp_path: Path) -> None:
    """The rules with the expected-workers rule the compose entry point writes."""
    spec = yaml.safe_load(RULES_TEST.read_text())
    spec["rule_files"] = [str(p) for p in promql.rule_files()]
    spec["rule_files"].append(str(promql.generated_rules(tmp_path, TEST_WORKERS)))
    copy = tmp_path / "rules_test.yml"
    copy.write_text(yaml.safe_dump(spec))
    result = promtool("test", "rules", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_expectation_fails_the_rule_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: expecting the crashed-worker alert to stay quiet does."""
    spec = yaml.safe_load(RULES_TEST.read_text())
    spec["rule_files"] = [str(p) for p in promql.rule_files()]
    spec["rule_files"].append(str(promql.generated_rules(tmp_path, TEST_WORKERS)))
    (case,) = [c for c in spec["tests"] if any(
        a["alertname"] == "TripwireWorkersMissing" and a["exp_alerts"]
        for a in c["alert_rule_test"])]  # fmt: skip
    for check in case["alert_rule_test"]:
        check["exp_alerts"] = []
    spec["tests"] = [case]
    copy = tmp_path / "broken_test.yml"
    copy.write_text(yaml.safe_dump(spec))
    assert promtool("test", "rules", str(copy)).returncode != 0


def test_entrypoint_writes_the_expected_workers_and_refuses_junk(tmp_path: Path) -> None:
    rules = yaml.safe_load(promql.generated_rules(tmp_path, 3).read_text())
    (rule,) = rules["groups"][0]["rules"]
    assert rule == {"record": "tripwire:workers_expected", "expr": "vector(3)"}
    assert promtool("check", "rules", str(tmp_path / "expected.rules.yml")).returncode == 0
    bad = subprocess.run(
        ["sh", str(promql.ENTRYPOINT)], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "TRIPWIRE_WORKERS": "3; rm -rf /",
             "TRIPWIRE_GENERATED_RULES": str(tmp_path / "x"), "PROMETHEUS_BIN": "true"},
    )  # fmt: skip
    assert bad.returncode == 2 and "whole number" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_config_loads_the_generated_rules_and_routes_to_alertmanager() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert "generated/*.rules.yml" in config["rule_files"]
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["kafka-exporter"]["static_configs"][0]["targets"] == ["kafka-exporter:9308"]
    assert config["global"]["external_labels"]["runbook_url"] == "${TRIPWIRE_RUNBOOK_URL}"


def test_rule_unit_tests_cover_every_alert_both_ways() -> None:
    """Each alert has a case where it fires and one where it must stay quiet."""
    spec = yaml.safe_load(RULES_TEST.read_text())
    assert [str((RULES_TEST.parent / f).resolve()) for f in spec["rule_files"]] == [
        str(p) for p in promql.rule_files()
    ]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in promql.rules() if "alert" in r}
    assert alerts - fires == set(), "alerts never shown to fire"
    # The Watchdog fires always by design (its expr is vector(1), checked elsewhere).
    assert alerts - quiet == {"Watchdog"}, "alerts never shown to stay quiet"


@pytest.mark.parametrize(
    "rule", [r for r in promql.rules() if "alert" in r], ids=lambda r: r["alert"]
)
def test_alert_has_for_severity_and_runbook(rule: dict) -> None:
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "needs a `for:` duration"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    # absolute: the Prometheus's runbook_url external label, then the anchor
    base, _, anchor = annotations["runbook_url"].partition("#")
    assert base == "{{ $externalLabels.runbook_url }}"
    assert anchor == rule["alert"].lower()
    headings = re.findall(r"^#+\s+(.+?)\s*$", RUNBOOK.read_text(), re.M)
    assert rule["alert"] in headings, f"docs/runbook.md has no section {rule['alert']}"


def test_runbook_documents_no_alert_that_does_not_exist() -> None:
    alerts = {r["alert"] for r in promql.rules() if "alert" in r}
    documented = set(re.findall(r"^##\s+(Tripwire\w+|Watchdog)\s*$", RUNBOOK.read_text(), re.M))
    assert documented == alerts


def test_job_names_in_queries_exist_in_the_scrape_config() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for expr in promql.all_exprs():
        for job in re.findall(r'job\s*=\s*"([^"]+)"', expr.expr):
            assert job in jobs, f"{expr.source}: job {job!r} is not scraped"


def test_rule_files_glob_does_not_load_the_unit_tests() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    loaded = {p for pattern in config["rule_files"] for p in CONFIG.parent.glob(pattern)}
    assert loaded == set(promql.rule_files())
    assert RULES_TEST not in loaded
