"""deploy/k8s/: schema-validated and cross-checked against the app (no cluster here).

Core kinds are validated (strict: unknown fields fail) against the Kubernetes OpenAPI
schemas bundled with ``kubernetes-validate``. KEDA's ScaledObject and the Prometheus
Operator's ServiceMonitor are custom resources those schemas do not have: they are
checked against the fields of their CRDs (KEDA v2 ``keda.sh_scaledobjects``,
prometheus-operator ``monitoring.coreos.com_servicemonitors``) as far as the
manifests use them, written out below. Cross-checks as in test_compose.py: env
vars are real settings, ports, probes, grace period against the drain bound, the
registry mount, the consumer group and topic, the partition cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import app, compose, promql
from tests.deploy.promql import REPO
from tests.deploy.test_compose import _check_env, _settings_from_cli

K8S = REPO / "deploy" / "k8s"
#: Oldest Kubernetes minor still supported upstream when this was written; the
#: manifests use nothing newer.
K8S_VERSION = "1.30.0"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """``{kind/name: resource}`` of every manifest file under deploy/k8s/."""
    out = {}
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in _docs(path):
            meta = doc.get("metadata", {})
            out[f"{doc['kind']}/{meta.get('name') or meta.get('generateName')}"] = doc
    return out


def _core(manifests: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    custom = {"Kustomization", "ScaledObject", "ServiceMonitor"}
    return [(k, d) for k, d in manifests.items() if d["kind"] not in custom]


def test_core_manifests_validate_strictly(manifests: dict[str, dict[str, Any]]) -> None:
    for key, doc in _core(manifests):
        doc = dict(doc, metadata=dict(doc["metadata"]))
        if "generateName" in doc["metadata"]:  # the schema wants a name; kubectl makes one
            doc["metadata"]["name"] = doc["metadata"].pop("generateName") + "x"
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_field(manifests: dict[str, dict[str, Any]]) -> None:
    doc = yaml.safe_load((K8S / "worker-deployment.yaml").read_text())
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbes"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_job_and_the_crds() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files - {"trainer-job.yaml"}, "training is never part of an apply"
    assert kustomization["namespace"] == "tripwire"


SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                   "apiVersion": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer"},
                "cooldownPeriod": {"type": "integer"},
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            # trigger metadata values are strings in the CRD
                            "metadata": {"type": "object",
                                         "additionalProperties": {"type": "string"}},
                            "authenticationRef": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}  # fmt: skip

SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object", "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object",
                             "properties": {"matchLabels": {"type": "object"}}},
                "endpoints": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                   "interval": {"type": "string"}}}},
            },
        },
    },
}  # fmt: skip


def test_custom_resources_match_their_crds(manifests: dict[str, dict[str, Any]]) -> None:
    jsonschema.validate(manifests["ScaledObject/tripwire-worker"], SCALED_OBJECT)
    jsonschema.validate(manifests["ServiceMonitor/tripwire-worker"], SERVICE_MONITOR)
    broken = yaml.safe_load((K8S / "worker-scaledobject.yaml").read_text())
    broken["spec"]["maxReplicas"] = broken["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCALED_OBJECT)


# --- cross-checks against the worker ------------------------------------------------


def _worker_pod(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = manifests["Deployment/tripwire-worker"]["spec"]["template"]["spec"]
    return spec


def _worker_env(manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = manifests["ConfigMap/tripwire-worker"]["data"]
    return env


def test_worker_env_vars_are_real_settings_and_parse(
    manifests: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (container,) = _worker_pod(manifests)["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "tripwire-worker"}}]
    service = {"environment": _worker_env(manifests), "command": container["args"]}
    _check_env(service, app.worker_classes())
    assert _settings_from_cli(monkeypatch, service, app.worker_classes())


def test_probes_and_port_are_the_workers(manifests: dict[str, dict[str, Any]]) -> None:
    classes, env = app.worker_classes(), _worker_env(manifests)
    port = app.effective(classes, env, "metrics_port")
    (container,) = _worker_pod(manifests)["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    from tripwire.stream.observability.health import LIVENESS_TIMEOUT

    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > LIVENESS_TIMEOUT
    annotations = manifests["Deployment/tripwire-worker"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == str(port)
    service = manifests["Service/tripwire-worker"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["metadata"]["name"] == "tripwire-worker", "= the rules' job label"


def test_grace_period_covers_the_drain_bound(manifests: dict[str, dict[str, Any]]) -> None:
    drain = app.effective(app.worker_classes(), _worker_env(manifests), "drain_timeout")
    grace = _worker_pod(manifests)["terminationGracePeriodSeconds"]
    assert drain > 0 and grace == drain + 5, (grace, drain)


def test_registry_is_shared_read_only_by_workers_and_written_by_the_trainer(
    manifests: dict[str, dict[str, Any]],
) -> None:
    pvc = manifests["PersistentVolumeClaim/tripwire-registry"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = _worker_pod(manifests)
    registry = app.effective(app.worker_classes(), _worker_env(manifests), "registry")
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == registry]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"] == {"claimName": "tripwire-registry", "readOnly": True}
    job = manifests["Job/tripwire-train-"]["spec"]["template"]["spec"]
    (trainer,) = job["containers"]
    args = trainer["args"]
    target = args[args.index("--registry") + 1]
    (tmount,) = [m for m in trainer["volumeMounts"] if m["mountPath"] == target]
    assert not tmount.get("readOnly")
    (tvolume,) = [v for v in job["volumes"] if v["name"] == tmount["name"]]
    assert tvolume["persistentVolumeClaim"]["claimName"] == "tripwire-registry"
    served = f"{args[args.index('--name') + 1]}@{args[args.index('--promote') + 1]}"
    assert app.effective(app.worker_classes(), _worker_env(manifests), "model_ref") == served


def test_trainer_command_parses_with_the_real_cli(
    manifests: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (trainer,) = manifests["Job/tripwire-train-"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in trainer["env"] if e["name"].startswith("TRIPWIRE_")}
    classes = [c for c in app.trainer_classes() if c.__name__ == "TrainSettings"]
    service = {"environment": env, "command": trainer["args"]}
    (settings,) = _settings_from_cli(monkeypatch, service, classes)
    assert getattr(settings, "promote")


def test_images_are_the_project_version(manifests: dict[str, dict[str, Any]]) -> None:
    services = compose.load()["services"]
    (worker,) = _worker_pod(manifests)["containers"]
    (trainer,) = manifests["Job/tripwire-train-"]["spec"]["template"]["spec"]["containers"]
    assert worker["image"] == services["worker"]["image"]
    assert trainer["image"] == services["trainer"]["image"]


def test_pods_run_as_the_images_user(manifests: dict[str, dict[str, Any]]) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for pod in (
        _worker_pod(manifests),
        manifests["Job/tripwire-train-"]["spec"]["template"]["spec"],
    ):
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] and f"--uid {ctx['runAsUser']}" in dockerfile
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"]
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


def test_disruption_budget_and_service_select_the_workers(
    manifests: dict[str, dict[str, Any]],
) -> None:
    labels = manifests["Deployment/tripwire-worker"]["spec"]["template"]["metadata"]["labels"]
    for key in ("PodDisruptionBudget/tripwire-worker", "Service/tripwire-worker"):
        spec = manifests[key]["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), key
    assert manifests["PodDisruptionBudget/tripwire-worker"]["spec"]["maxUnavailable"] == 1
    monitor = manifests["ServiceMonitor/tripwire-worker"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()


def test_autoscaling_follows_the_groups_lag_capped_at_the_partitions(
    manifests: dict[str, dict[str, Any]],
) -> None:
    scaled = manifests["ScaledObject/tripwire-worker"]["spec"]
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    env = _worker_env(manifests)
    classes = app.worker_classes()
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == app.effective(classes, env, "group_id")
    assert meta["topic"] == app.effective(classes, env, "input_topic")
    assert meta["bootstrapServers"] == app.effective(classes, env, "bootstrap")
    assert meta["allowIdleConsumers"] == "false"
    partitions = compose.environment(compose.load()["services"]["topic-init"])["PARTITIONS"]
    assert scaled["maxReplicaCount"] == int(partitions), "one worker per partition at most"
    assert scaled["scaleTargetRef"]["name"] == "tripwire-worker"
    assert meta["offsetResetPolicy"] == app.effective(classes, env, "auto_offset_reset")


def test_resources_are_the_documented_measured_figures(
    manifests: dict[str, dict[str, Any]],
) -> None:
    """The numbers in the manifests are those docs/deploy.md derives from measurements."""
    docs = (REPO / "docs" / "deploy.md").read_text()
    (worker,) = _worker_pod(manifests)["containers"]
    (trainer,) = manifests["Job/tripwire-train-"]["spec"]["template"]["spec"]["containers"]
    for who, container in (("worker", worker), ("trainer", trainer)):
        for kind in ("requests", "limits"):
            for resource, value in container["resources"][kind].items():
                row = f"| {who} | {resource} {kind[:-1]} | {value} |"
                assert row in docs, f"docs/deploy.md has no row {row!r}"


def test_expected_workers_rule_on_kubernetes_fires_when_a_pod_is_gone(tmp_path: Path) -> None:
    """kube-state-metrics says 3 desired, 2 answer: TripwireWorkersMissing fires."""
    from tests.deploy.test_prometheus import promtool

    expected = K8S / "monitoring" / "workers-expected.rules.yml"
    assert promtool("check", "rules", str(expected)).returncode == 0
    spec = {
        "rule_files": [str(p) for p in promql.rule_files()] + [str(expected)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "external_labels": {"runbook_url": "https://docs.example.com/runbook.md"},
            "input_series": [
                {"series": 'kube_deployment_spec_replicas{namespace="tripwire", '
                           'deployment="tripwire-worker"}', "values": "3x10"},
                {"series": 'up{job="tripwire-worker", instance="a"}', "values": "1x10"},
                {"series": 'up{job="tripwire-worker", instance="b"}', "values": "1x10"},
            ],
            "promql_expr_test": [
                {"expr": "tripwire:workers_expected", "eval_time": "5m",
                 "exp_samples": [{"labels": "tripwire:workers_expected", "value": 3}]},
            ],
            "alert_rule_test": [{
                "eval_time": "5m", "alertname": "TripwireWorkersMissing",
                "exp_alerts": [{
                    "exp_labels": {"severity": "critical"},
                    "exp_annotations": {
                        "summary": "Fewer Tripwire workers answer than expected",
                        "description": (
                            "2 worker(s) answered the last scrape for 3 minutes, 3 expected. "
                            "A crashed or restarting worker drops out of service discovery; "
                            "its partitions move to the others after the session timeout "
                            "(or nobody scores them)."),
                        "runbook_url": "https://docs.example.com/runbook.md#tripwireworkersmissing",
                    },
                }],
            }],
        }],
    }  # fmt: skip
    path = tmp_path / "k8s_test.yml"
    path.write_text(yaml.safe_dump(spec))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
