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


def test_promtool_rule_unit_tests() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


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
    assert alerts - quiet == set(), "alerts never shown to stay quiet"


@pytest.mark.parametrize(
    "rule", [r for r in promql.rules() if "alert" in r], ids=lambda r: r["alert"]
)
def test_alert_has_for_severity_and_runbook(rule: dict) -> None:
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "needs a `for:` duration"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert (REPO / path).resolve() == RUNBOOK.resolve()
    assert anchor == rule["alert"].lower()
    headings = re.findall(r"^#+\s+(.+?)\s*$", RUNBOOK.read_text(), re.M)
    assert rule["alert"] in headings, f"docs/runbook.md has no section {rule['alert']}"


def test_runbook_documents_no_alert_that_does_not_exist() -> None:
    alerts = {r["alert"] for r in promql.rules() if "alert" in r}
    documented = set(re.findall(r"^##\s+(Tripwire\w+)\s*$", RUNBOOK.read_text(), re.M))
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
