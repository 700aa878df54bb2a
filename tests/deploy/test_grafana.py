"""Grafana provisioning and the Tripwire dashboard JSON.

Stable uids, every panel wired to the provisioned datasource, a layout that fits
the 24-column grid without overlaps, and the panels an operator needs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy import compose, promql
from tests.deploy.promql import DASHBOARD, REPO

PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
DASHBOARD_UID = "tripwire-overview"


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    spec = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert spec["apiVersion"] == 1
    (ds,) = spec["datasources"]
    return ds


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in promql._panels(dashboard["panels"]) if p["type"] != "row"]


def test_datasource_points_at_the_compose_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "tripwire-prometheus"
    assert datasource["access"] == "proxy"
    services = compose.load()["services"]
    listen = next(
        a.split("=", 1)[1]
        for a in services["prometheus"]["command"]
        if a.startswith("--web.listen-address=")
    )
    assert datasource["url"] == f"http://prometheus:{listen.rpartition(':')[2]}"
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    assert datasource["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


def test_dashboard_provider_loads_from_files() -> None:
    spec = yaml.safe_load((PROVISIONING / "dashboards" / "tripwire.yml").read_text())
    (provider,) = spec["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == DASHBOARD_UID
    assert dashboard["title"] == "Tripwire"
    assert dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None, "a provisioned dashboard carries no database id"


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_datasource_and_instance_variables(
    dashboard: dict[str, Any], datasource: dict[str, Any]
) -> None:
    variables = _variables(dashboard)
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert ds["current"]["value"] == datasource["uid"], "defaults to the provisioned one"
    instance = variables["instance"]
    assert instance["type"] == "query" and instance["includeAll"] and instance["multi"]
    assert instance["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert instance["definition"] == 'label_values(up{job="tripwire-worker"}, instance)'
    assert instance["allValue"] == promql.GRAFANA_VARIABLES["instance"]


def test_worker_queries_are_scoped_to_the_selected_instances(dashboard: dict[str, Any]) -> None:
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            for token in promql.tokenize(target["expr"]):
                if token.kind == "ident" and token.text.startswith(("tripwire_", "process_")):
                    rest = target["expr"][token.start + len(token.text) :]
                    assert rest.startswith("{") and 'instance=~"$instance"' in rest.split("}")[0], (
                        panel["title"], target["expr"])  # fmt: skip


def test_last_batch_age_is_empty_before_the_first_batch(dashboard: dict[str, Any]) -> None:
    """The gauge is 0 until a batch finished: time() - 0 would show ~56 years."""
    (panel,) = [p for p in _panels(dashboard) if p["title"] == "Last batch age"]
    (target,) = panel["targets"]
    assert "tripwire_last_processed_timestamp_seconds" in target["expr"]
    guard = r"and \(tripwire_last_processed_timestamp_seconds\{[^}]*\} > 0\)"
    assert re.search(guard, target["expr"])
    assert panel["fieldConfig"]["defaults"]["noValue"]


def test_every_panel_and_target_uses_the_provisioned_datasource(
    dashboard: dict[str, Any], datasource: dict[str, Any]
) -> None:
    for panel in _panels(dashboard):
        wanted = {"type": "prometheus", "uid": "${datasource}"}
        assert panel["datasource"] == wanted, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), f"{panel['title']}: duplicate refId"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
            assert target["expr"].strip()


def test_panel_ids_unique_and_layout_fits_without_overlap(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def _exprs_of(dashboard: dict[str, Any], panel_type: str | None = None) -> list[str]:
    return [
        t["expr"]
        for p in _panels(dashboard)
        if panel_type in (None, p["type"])
        for t in p["targets"]
    ]


def test_score_distribution_is_a_heatmap_of_the_score_histogram(
    dashboard: dict[str, Any],
) -> None:
    heatmaps = [p for p in _panels(dashboard) if p["type"] == "heatmap"]
    assert len(heatmaps) == 1
    (target,) = heatmaps[0]["targets"]
    assert "tripwire_score_ratio_bucket" in target["expr"] and "by (le)" in target["expr"]
    assert target["format"] == "heatmap"
    assert heatmaps[0]["options"]["calculate"] is False, "buckets come from Prometheus"


@pytest.mark.parametrize(
    ("what", "needle"),
    [
        ("events/s", "rate(tripwire_events_consumed_total"),
        ("anomalies/s", "rate(tripwire_anomalies_total"),
        ("anomaly rate", "/ sum(rate(tripwire_events_scored_total"),
        ("threshold", "tripwire_threshold"),
        ("batch size", "tripwire_batch_size_"),
        ("inference p99", "histogram_quantile(0.99, sum by (le) (rate(tripwire_inference_"),
        ("latency p50", "histogram_quantile(0.5, sum by (le) (rate(tripwire_end_to_end_"),
        ("latency p99", "histogram_quantile(0.99, sum by (le) (rate(tripwire_end_to_end_"),
        ("DLQ by reason", "sum by (reason) (rate(tripwire_invalid_events_total"),
        ("consumer lag", "tripwire_consumer_lag"),
        ("model version", "by (name, version) (tripwire_model_info"),
        ("build info", "(instance, version, revision, python, faust, torch) (tripwire_build_info"),
        ("readiness", "tripwire_ready"),
        ("broker up", "tripwire_broker_up"),
        ("loop heartbeat", "tripwire_event_loop_heartbeat_age_seconds"),
        ("memory", "process_resident_memory_bytes"),
        ("restarts", "changes(process_start_time_seconds"),
        ("lag from outside", "kafka_consumergroup_lag{"),
        ("reloads by result", "sum by (result) (increase(tripwire_model_reloads_total"),
        ("produce errors", "tripwire_produce_errors_total"),
        ("last processed age", "time() - tripwire_last_processed_timestamp_seconds"),
    ],
)
def test_dashboard_has_the_operator_panels(
    dashboard: dict[str, Any], what: str, needle: str
) -> None:
    assert any(needle in e for e in _exprs_of(dashboard)), f"no panel shows {what}"


def test_rate_queries_use_grafanas_rate_interval(dashboard: dict[str, Any]) -> None:
    """Fixed short windows break when the scrape interval changes; 1d baselines are fine."""
    for expr in _exprs_of(dashboard):
        for token in promql.tokenize(expr):
            if token.kind == "range":
                assert token.text in ("[$__rate_interval]", "[1d]"), (expr, token.text)
