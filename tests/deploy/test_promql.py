"""Every query in the dashboard and the rules against the metrics contract.

Names: each selected series must be one stream/observability/metrics.py exports (a histogram as
``_bucket``/``_sum``/``_count``, a counter as ``_total``) or Prometheus' ``up``.
Coverage: every metric the worker exports is on the dashboard. Syntax: promtool
parses every dashboard query and every live-test probe.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.deploy import promql
from tripwire.stream.observability.metrics import Metrics

#: Series Prometheus makes itself for every target.
SCRAPE_SERIES = {"up"}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return promql.exported_names(Metrics(CollectorRegistry()).registry)


def test_metric_names_skip_functions_keywords_and_labels() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(tripwire_x_bucket{job="a"}[$__rate_interval])))'
        " / on (instance) group_left (name) tripwire_info > bool 0 and up offset 5m"
    )
    assert promql.metric_names(expr) == {"tripwire_x_bucket", "tripwire_info", "up"}
    assert promql.metric_names("sum without (partition) (lag:sum) unless absent(x)") == {
        "lag:sum",
        "x",
    }


def test_probe_turns_filters_into_bool_and_unwraps_absent() -> None:
    assert promql.probe('up{job="w"} == 0') == 'up{job="w"} == bool 0'
    assert promql.probe("a > on () 3 * b and on () a > 0.01") == (
        "a > bool on () 3 * b and on () a > bool 0.01"
    )
    assert promql.probe("absent(up == 1)") == "(up == bool 1)"
    assert promql.probe("a >= bool 1") == "a >= bool 1"
    assert promql.probe('x{le=~"1|2"} <= 2') == 'x{le=~"1|2"} <= bool 2'
    assert promql.probe("rate(x[$__rate_interval])", "7s") == "rate(x[7s])"


def test_exported_names_follow_the_metric_types(exported: set[str]) -> None:
    assert {"tripwire_events_consumed_total", "tripwire_batch_size_bucket",
            "tripwire_batch_size_count", "tripwire_threshold",
            "tripwire_model_info"} <= exported  # fmt: skip
    assert "tripwire_batch_size" not in exported


def test_there_are_queries_to_check() -> None:
    kinds = {e.kind for e in promql.all_exprs()}
    assert {"panel", "alert"} <= kinds
    assert len(promql.dashboard_exprs()) >= 15


@pytest.mark.parametrize("expr", promql.all_exprs(), ids=lambda e: e.source)
def test_query_reads_only_exported_series(expr: promql.Expr, exported: set[str]) -> None:
    names = promql.metric_names(expr.expr)
    if expr.source == "alert Watchdog":  # vector(1): fires always, by design
        assert expr.expr.strip() == "vector(1)" and not names
        return
    assert names, f"{expr.source} selects no series"
    unknown = names - exported - SCRAPE_SERIES - promql.EXTERNAL_SERIES
    assert not unknown, (
        f"{expr.source} reads series stream/observability/metrics.py does not export"
    )


#: Process metrics of the worker's registry that alerts read: shown on the dashboard.
PROCESS_SHOWN = {"process_resident_memory_bytes", "process_start_time_seconds"}


def test_dashboard_shows_every_exported_metric() -> None:
    """Every tripwire_* family, and the process metrics the alerts read."""
    used: set[str] = set()
    for expr in promql.dashboard_exprs():
        used |= promql.metric_names(expr.expr)
    families = [f.name for f in Metrics(CollectorRegistry()).registry.collect()]
    assert PROCESS_SHOWN <= set(families), "the process collector is not on the registry"
    for name in families:
        if name.startswith("tripwire_") or name in PROCESS_SHOWN:
            assert any(n.startswith(name) for n in used), f"{name} is exported but on no panel"


def test_the_registry_carries_process_gc_and_platform_metrics() -> None:
    families = {f.name for f in Metrics(CollectorRegistry()).registry.collect()}
    assert {"process_cpu_seconds", "python_gc_collections", "python_info"} <= families
    assert "tripwire_build_info" in families


def test_promtool_parses_every_query_and_probe(tmp_path: Path) -> None:
    """Dashboard queries are not checked by `check rules` otherwise: load them as rules."""
    tool = shutil.which("promtool")
    assert tool, "promtool missing: `make system-deps` installs Debian's prometheus package"
    rules = []
    for i, expr in enumerate(promql.all_exprs()):
        rules.append({"record": f"check:query_{i}", "expr": promql.probe(expr.expr, "1m")})
        if expr.kind == "panel":
            query = promql.substitute_grafana(expr.expr, "1m")
            rules.append({"record": f"check:panel_{i}", "expr": query})
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run(
        [tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
