"""docker-compose.yml, parsed and cross-checked (no Docker engine runs here).

Checks that need nothing but the file: services, pinned images, Kafka's KRaft
settings, volumes, scaling. Cross-checks against the app: every TRIPWIRE_* variable
is a real setting, topic names, model name, bootstrap address, metrics port. And the
schema check of docker-compose itself (`docker-compose config`).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import app, promql
from tests.deploy.compose import (
    COMPOSE_FILE,
    REPO,
    REQUIRED_ENV,
    environment,
    host_path_for,
    interpolate,
    is_bind,
    load,
    load_raw,
    volume_mounts,
)
from tripwire.core.config import FILE_SUFFIX, from_args, load_env

APP_SERVICES = ("trainer", "worker")
KAFKA_REQUIRED_ENV = (
    "KAFKA_NODE_ID",
    "KAFKA_PROCESS_ROLES",
    "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_CONTROLLER_LISTENER_NAMES",
    "KAFKA_CONTROLLER_QUORUM_VOTERS",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_INTER_BROKER_LISTENER_NAME",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "CLUSTER_ID",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load()


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def _option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


# --- the file itself ----------------------------------------------------------------


def test_required_services_exist(services: dict) -> None:
    for name in ("kafka", "topic-init", "trainer", "worker", "prometheus", "grafana"):
        assert name in services, f"service {name!r} missing"


def test_images_are_pinned(services: dict) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (a build needs an image name to share it)"
        repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not pinned"


#: The image and the Dockerfile target (None: the default, last stage) of each app service.
APP_IMAGES = {"worker": ("tripwire", None), "trainer": ("tripwire-trainer", "trainer")}


def test_app_image_tag_is_the_project_version(services: dict) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, (image, target) in APP_IMAGES.items():
        assert services[name]["image"] == f"{image}:{version}"
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["build"].get("target") == target
        assert (REPO / services[name]["build"]["context"] / "Dockerfile").is_file()
        if target:
            assert re.search(rf"^FROM \S+ AS {target}$", (REPO / "Dockerfile").read_text(), re.M)


def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    """docker-compose's schema check; and a broken copy is rejected (the check bites)."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose missing: `make system-deps` installs Debian's package"
    env = {"PATH": "/usr/bin:/bin", **REQUIRED_ENV}
    ok = subprocess.run(
        [tool, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period:", "stop_grace:"))
    bad = subprocess.run(
        [tool, "-f", str(broken), "config", "-q"], capture_output=True, text=True, env=env
    )
    assert bad.returncode != 0 and "stop_grace" in bad.stderr
    unset = subprocess.run(
        [tool, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert unset.returncode != 0 and "TRIPWIRE_RUNBOOK_URL" in unset.stderr, "required"


def test_our_reading_matches_docker_compose() -> None:
    """Merge keys and interpolation as the tests read them = as Compose resolves them."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose missing: `make system-deps` installs Debian's package"
    env = {"PATH": "/usr/bin:/bin", "TRIPWIRE_PARTITIONS": "3", "TRIPWIRE_IMAGE_TAG": "9.9",
           "TRIPWIRE_WORKERS": "4", **REQUIRED_ENV}  # fmt: skip
    out = subprocess.run(
        [tool, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, env=env,
        check=True,
    ).stdout  # fmt: skip
    resolved = yaml.safe_load(out)["services"]
    ours = load(env)["services"]
    assert resolved["worker"]["deploy"]["replicas"] == 4
    for name, service in ours.items():
        assert environment(resolved[name]) == environment(service), name
        assert resolved[name]["image"] == service["image"], name
        if "command" in service:
            # `config` prints a loadable file, so a literal `$` comes back as `$$`
            command = [c.replace("$$", "$") for c in resolved[name]["command"]]
            assert command == service["command"], name


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate("${A:-x}", {}) == "x"
    assert interpolate("${A:-x}", {"A": ""}) == "x"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("${A}-$B", {"A": "1", "B": "2"}) == "1-2"
    assert interpolate("$$HOME", {"HOME": "/root"}) == "$HOME"


# --- Kafka --------------------------------------------------------------------------


def test_kafka_kraft_single_node(services: dict) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    missing = [k for k in KAFKA_REQUIRED_ENV if not env.get(k)]
    assert not missing, f"kafka env vars missing: {missing}"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = _listeners(env["KAFKA_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert controller not in advertised, "the controller listener is not advertised"
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    host, _, port = voter.rpartition(":")
    assert host in ("kafka", kafka.get("hostname")) and int(port) == listeners[controller][1]
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", f"{key} must be 1 on a single broker"
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID: 16 bytes, b64"


def test_kafka_stores_data_on_a_volume_and_has_a_healthcheck(services: dict) -> None:
    kafka = services["kafka"]
    log_dirs = environment(kafka)["KAFKA_LOG_DIRS"]
    mounts = {target: source for source, target, _ in volume_mounts(kafka)}
    assert log_dirs in mounts and not is_bind(mounts[log_dirs])
    test = kafka["healthcheck"]["test"]
    assert "kafka-broker-api-versions.sh" in " ".join(test)


def test_topic_init_creates_the_topics(services: dict) -> None:
    init = services["topic-init"]
    assert init["image"] == services["kafka"]["image"], "same image: same kafka-topics.sh"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init.get("restart") == "no"
    script = " ".join(_command(init))
    assert "kafka-topics.sh" in script and "--create" in script and "--if-not-exists" in script
    assert "--bootstrap-server kafka:9092" in script
    env = environment(init)
    assert set(env["TOPICS"].split()) >= {"features", "anomalies", "features.dlq", "scores"}
    assert env["PARTITIONS"] == "6"
    raw = environment(load_raw()["services"]["topic-init"])
    assert raw["PARTITIONS"] == "${TRIPWIRE_PARTITIONS:-6}"
    partitions = {"TRIPWIRE_PARTITIONS": "3", **REQUIRED_ENV}
    assert environment(load(partitions)["services"]["topic-init"])["PARTITIONS"] == "3"


# --- app services: trainer, worker --------------------------------------------------


def test_trainer_publishes_to_the_registry_volume(services: dict) -> None:
    trainer = services["trainer"]
    command = _command(trainer)
    assert command[0] == "train"
    registry = _option(command, "--registry")
    mounts = {target: (source, ro) for source, target, ro in volume_mounts(trainer)}
    source, read_only = mounts[registry]
    assert not is_bind(source) and not read_only
    assert _option(command, "--promote")
    assert trainer.get("restart") == "no"
    assert trainer["profiles"] == ["train"], "training is an explicit act"


def _settings_from_cli(
    monkeypatch: pytest.MonkeyPatch, service: dict, classes: list[type]
) -> list[object]:
    """Parse ``service``'s command with the real CLI in the service's environment.

    Options take their defaults from the environment when the parser is built, so the
    process environment is replaced by the service's for that. Returns one validated
    settings object per class.
    """
    for key in list(os.environ):
        if key.startswith("TRIPWIRE_"):
            monkeypatch.delenv(key)
    for key, value in environment(service).items():
        monkeypatch.setenv(key, value)
    from tripwire.cli import build_parser

    args = build_parser().parse_args(_command(service))
    out = []
    for cls in classes:
        settings: Any = from_args(cls, args)
        settings.validate()
        out.append(settings)
    return out


def test_trainer_command_is_valid_for_the_real_cli(
    services: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    classes = [c for c in app.trainer_classes() if c.__name__ == "TrainSettings"]
    (settings,) = _settings_from_cli(monkeypatch, services["trainer"], classes)
    assert getattr(settings, "demo") and getattr(settings, "promote")


def test_trainer_env_vars_are_real_settings(services: dict) -> None:
    classes = [c for c in app.trainer_classes() if c.__name__ == "TrainSettings"]
    _check_env(services["trainer"], classes)


def test_worker_scales(services: dict) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "container_name prevents --scale"
    assert "ports" not in worker, "a fixed host port prevents --scale; use expose"
    assert worker.get("restart") in ("always", "unless-stopped", "on-failure")
    assert _command(worker) == ["worker"]
    deps = worker["depends_on"]
    assert set(deps) == {"kafka", "topic-init"}, "no dependency on the trainer"
    assert deps["topic-init"]["condition"] == "service_completed_successfully"
    assert deps["kafka"]["condition"] == "service_healthy"
    raw = load_raw()["services"]["worker"]
    assert raw["deploy"]["replicas"] == "${TRIPWIRE_WORKERS:-1}"
    assert app.effective(app.worker_classes(), environment(worker), "wait_for_model") is True


def test_worker_reads_the_trainers_registry_read_only(services: dict) -> None:
    trainer, worker = services["trainer"], services["worker"]
    t_registry = _option(_command(trainer), "--registry")
    t_volume = {target: source for source, target, _ in volume_mounts(trainer)}[t_registry]
    w_registry = app.effective(app.worker_classes(), environment(worker), "registry")
    mounts = {target: (source, ro) for source, target, ro in volume_mounts(worker)}
    assert mounts.get(w_registry) == (t_volume, True)


def test_worker_serves_the_model_the_trainer_promotes(services: dict) -> None:
    command = _command(services["trainer"])
    expected = f"{_option(command, '--name')}@{_option(command, '--promote')}"
    model = app.effective(app.worker_classes(), environment(services["worker"]), "model_ref")
    assert model == expected


def test_worker_env_vars_are_real_settings(services: dict) -> None:
    _check_env(services["worker"], app.worker_classes())


def test_worker_command_is_valid_for_the_real_cli(
    services: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.require_worker_command()
    settings = _settings_from_cli(monkeypatch, services["worker"], app.worker_classes())
    assert settings


def test_worker_topics_are_created_by_topic_init(services: dict) -> None:
    classes = app.worker_classes()
    env = environment(services["worker"])
    created = set(environment(services["topic-init"])["TOPICS"].split())
    topic_fields = app.fields_matching(classes, lambda n: n.endswith("_topic"))
    assert topic_fields, "the worker settings name no *_topic field"
    for name in topic_fields:
        topic = app.effective(classes, env, name)
        if topic:  # an empty optional topic (scores off) is not used
            assert topic in created, f"{name}={topic!r} is not created by topic-init"


def test_worker_bootstrap_is_the_brokers_internal_listener(services: dict) -> None:
    env = environment(services["worker"])
    bootstrap = app.effective(app.worker_classes(), env, "bootstrap")
    if isinstance(bootstrap, tuple):
        bootstrap = ",".join(bootstrap)
    kafka_env = environment(services["kafka"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    internal = advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for server in str(bootstrap).split(","):
        server = re.sub(r"^\w+://", "", server.strip())
        host, _, port = server.rpartition(":")
        assert (host, int(port)) == internal


def test_worker_metrics_port_is_exposed_and_reachable(services: dict) -> None:
    classes = app.worker_classes()
    worker = services["worker"]
    env = environment(worker)
    port = app.effective(classes, env, "metrics_port")
    assert [str(p) for p in worker["expose"]] == [str(port)]
    for name in app.fields_matching(
        classes, lambda n: "metrics" in n and any(k in n for k in ("host", "addr", "bind"))
    ):
        bind = app.effective(classes, env, name)
        assert bind not in ("127.0.0.1", "localhost", "::1"), (
            f"{name}={bind!r}: Prometheus in another container cannot reach a loopback bind"
        )


def _check_env(service: dict, classes: list[type]) -> None:
    """Every TRIPWIRE_* var of ``service`` is a field of ``classes`` and converts."""
    env = environment(service)
    known = app.env_names(classes)
    for key in env:
        if key in app.PROCESS_ENV:
            assert key in (REPO / app.PROCESS_ENV[key]).read_text()
            continue
        assert key.startswith("TRIPWIRE_"), f"{key}: app settings use the TRIPWIRE_ prefix"
        if key.endswith(FILE_SUFFIX) and key not in known:  # a Secret read from a file
            cls, name = known[key.removesuffix(FILE_SUFFIX)]
            assert _field_type(cls, name) == "Secret", f"{key}: only a Secret has a _FILE"
            continue
        assert key in known, f"{key} is not a setting of {[c.__name__ for c in classes]}"
    # a secret file exists only in the container
    readable = {k: v for k, v in env.items() if not k.endswith(FILE_SUFFIX)}
    for cls in classes:
        load_env(cls, readable)  # ConfigError on a value of the wrong type


def _field_type(cls: type, name: str) -> str:
    import dataclasses

    (field,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return field.type if isinstance(field.type, str) else field.type.__name__


# --- volumes, prometheus, grafana -----------------------------------------------------


def test_volumes_are_declared_and_bind_mounts_exist(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, _, _ in volume_mounts(service):
            if is_bind(source):
                assert (REPO / source).exists(), f"{name}: bind source {source} missing"
            else:
                assert source in declared, f"{name}: volume {source!r} not declared"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_prometheus_service_mounts_config_and_rules(services: dict) -> None:
    prom = services["prometheus"]
    args = dict(a.lstrip("-").split("=", 1) for a in _command(prom))
    config_path = args["config.file"]
    assert host_path_for(prom, config_path) == REPO / "deploy" / "prometheus.yml"
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    container_dir = str(Path(config_path).parent)
    generated = f"{container_dir}/generated"
    assert generated + ":mode=1777" in prom["tmpfs"], "the entry point writes its rule here"
    for pattern in config["rule_files"]:
        if pattern.startswith("generated/"):
            continue
        host = host_path_for(prom, f"{container_dir}/{pattern}")
        assert host is not None, f"rule files {pattern!r} are not mounted"
        assert list(host.parent.glob(host.name)), f"{pattern!r} matches no file"
    entry = prom["entrypoint"]
    assert entry[0] == "/bin/sh" and host_path_for(prom, entry[1]) == promql.ENTRYPOINT
    data = {target: source for source, target, _ in volume_mounts(prom)}
    assert not is_bind(data[args["storage.tsdb.path"]]), "TSDB on a named volume"


def test_prometheus_scrapes_the_worker_service_on_its_metrics_port(services: dict) -> None:
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    sd = jobs["tripwire-worker"]["dns_sd_configs"]
    assert len(sd) == 1 and sd[0]["type"] == "A", "DNS A records: one per replica"
    assert sd[0]["names"] == ["worker"] and "worker" in services
    port = app.effective(app.worker_classes(), environment(services["worker"]), "metrics_port")
    assert sd[0]["port"] == port


def test_grafana_is_provisioned(services: dict) -> None:
    grafana = services["grafana"]
    prov = host_path_for(grafana, "/etc/grafana/provisioning")
    assert prov == REPO / "deploy" / "grafana" / "provisioning"
    provider = yaml.safe_load((prov / "dashboards" / "tripwire.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    dashboards = host_path_for(grafana, path)
    assert dashboards is not None and (dashboards / "tripwire.json").is_file()
    env = environment(grafana)
    home = host_path_for(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env, "no password in the environment"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


# --- issue 15: what `up` starts, exposure, secrets, health checks ---------------------


def _default_profile(services: dict) -> dict:
    """The services `docker compose up` starts: those in no profile."""
    return {name: s for name, s in services.items() if not s.get("profiles")}


def test_up_twice_publishes_nothing(services: dict) -> None:
    """No service that `up` starts can write the registry or runs `tripwire train`.

    So a second `up` (or a scale-out) changes no model: the trainer is only started
    with `--profile train`, and nothing in the default profile depends on it (Compose
    would pull it in).
    """
    default = _default_profile(services)
    assert "trainer" not in default and {"worker", "prometheus", "alertmanager"} <= set(default)
    trainer_mounts = volume_mounts(services["trainer"])
    registry_volumes = {src for src, tgt, _ in trainer_mounts if tgt == "/registry"}
    for name, service in default.items():
        assert "trainer" not in (service.get("depends_on") or {}), name
        command = _command(service)
        assert "train" not in command[:1] and "--promote" not in command, name
        for source, target, read_only in volume_mounts(service):
            if source in registry_volumes:
                assert read_only, f"{name} mounts the registry writable"


def test_monitoring_does_not_depend_on_the_app(services: dict) -> None:
    app_services = {"worker", "trainer", "topic-init", "kafka"}
    for name in ("prometheus", "alertmanager", "grafana"):
        deps = set(services[name].get("depends_on") or {})
        assert not deps & app_services, f"{name} waits for {deps & app_services}"


def test_published_ports_are_loopback_only(services: dict) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_secrets_are_files_and_ignored_everywhere(compose: dict, services: dict) -> None:
    declared = compose["secrets"]
    for name, spec in declared.items():
        path = (REPO / spec["file"]).resolve()
        assert path.parent == (REPO / "deploy" / "secrets").resolve(), name
        rel = path.relative_to(REPO).as_posix()
        ignored = subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO)
        assert ignored.returncode == 0, f"{rel} is not git-ignored"
    used = {s for svc in services.values() for s in svc.get("secrets", [])}
    assert used == set(declared)
    for path in (".env", "deploy/secrets/grafana_admin_password"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0
    from tests.deploy.test_dockerfile import ignored as docker_ignored

    assert docker_ignored(".env") and docker_ignored("deploy/secrets/grafana_admin_password")


def test_secrets_init_creates_each_file_once(tmp_path: Path, compose: dict) -> None:
    script = REPO / "deploy" / "secrets" / "init"
    env = {"PATH": "/usr/bin:/bin", "TRIPWIRE_SECRETS_DIR": str(tmp_path)}
    subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True)
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert set(files) == {Path(s["file"]).name for s in compose["secrets"].values()
                          if "kafka" not in s["file"]}  # fmt: skip
    assert len(files["grafana_admin_password"]) >= 20
    assert oct((tmp_path / "grafana_admin_password").stat().st_mode & 0o777) == "0o600"
    subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True)
    assert files == {p.name: p.read_text() for p in tmp_path.iterdir()}, "kept on rerun"


def test_alertmanager_receivers_read_the_secret_files(services: dict) -> None:
    am = services["alertmanager"]
    args = dict(a.lstrip("-").split("=", 1) for a in _command(am))
    config_host = host_path_for(am, args["config.file"])
    assert config_host == REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(config_host.read_text())
    files = {c["url_file"] for r in config["receivers"] for c in r.get("webhook_configs", [])}
    assert files == {f"/run/secrets/{s}" for s in am["secrets"]}


def test_worker_health_check_probes_readiness_on_its_metrics_port(services: dict) -> None:
    test = services["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and "/readyz" in test[-1]
    port = app.default(app.worker_classes(), "metrics_port")
    assert f"'TRIPWIRE_METRICS_PORT', '{port}'" in test[-1]


def test_stop_grace_covers_the_drain_timeout(services: dict) -> None:
    worker = services["worker"]
    drain = app.effective(app.worker_classes(), environment(worker), "drain_timeout")
    grace = int(worker["stop_grace_period"].rstrip("s"))
    assert 0 < drain and grace >= drain + 5, (grace, drain)


def test_rules_name_the_workers_group_and_input_topic(services: dict) -> None:
    classes, env = app.worker_classes(), environment(services["worker"])
    group = app.effective(classes, env, "group_id")
    topic = app.effective(classes, env, "input_topic")
    for expr in promql.rule_exprs():
        for value in re.findall(r'consumergroup="([^"]+)"', expr.expr):
            assert value == group, expr.source
        for value in re.findall(r'topic="([^"]+)"', expr.expr):
            assert value == topic, expr.source
    exporter = services["kafka-exporter"]
    assert "--kafka.server=kafka:9092" in exporter["command"]
    assert "--offset.show-all" in exporter["command"], "lag of unowned partitions too"


def test_expected_workers_and_replicas_come_from_one_variable() -> None:
    raw = load_raw()["services"]
    assert raw["worker"]["deploy"]["replicas"] == "${TRIPWIRE_WORKERS:-1}"
    assert environment(raw["prometheus"])["TRIPWIRE_WORKERS"] == "${TRIPWIRE_WORKERS:-1}"
    assert "--enable-feature=expand-external-labels" in raw["prometheus"]["command"]
    runbook = environment(raw["prometheus"])["TRIPWIRE_RUNBOOK_URL"]
    assert runbook.startswith("${TRIPWIRE_RUNBOOK_URL:?"), "required"


# --- issue 14: a secured Kafka, the `#~` lines ------------------------------------------

#: The secured-Kafka lines, as docker-compose.yml's header tells the reader to uncomment them.
SECURED_LINE = re.compile(r"^( *)#~ ", re.MULTILINE)


def _secured(tmp_path: Path) -> Path:
    text = COMPOSE_FILE.read_text()
    assert len(SECURED_LINE.findall(text)) >= 10
    assert "sed -i 's/^\\( *\\)#~ /\\1/' docker-compose.yml" in text  # the header says how
    path = tmp_path / "docker-compose.yml"
    path.write_text(SECURED_LINE.sub(r"\1", text))
    return path


def test_the_secured_kafka_lines_make_every_client_secured(tmp_path: Path) -> None:
    compose = load(path=_secured(tmp_path))
    services = compose["services"]
    worker = services["worker"]
    _check_env(worker, app.worker_classes())
    env = environment(worker)
    assert env["TRIPWIRE_SECURITY_PROTOCOL"] == "SASL_SSL" and "TRIPWIRE_SASL_PASSWORD" not in env
    files = {v for v in env.values() if v.startswith("/run/secrets/")}
    assert files == {f"/run/secrets/{s}" for s in worker["secrets"]}
    exporter = services["kafka-exporter"]
    flags = " ".join(exporter["command"] + exporter["entrypoint"])
    assert "--sasl.enabled" in flags and "--tls.enabled" in flags and "--sasl.password=" in flags
    assert set(re.findall(r"/run/secrets/([\w.]+)", flags)) == set(exporter["secrets"])
    init = services["topic-init"]
    assert init["command"][0].count("${KAFKA_CLIENT_CONFIG:-}") == 2  # interpolated
    assert "/run/secrets/kafka_client.properties" in init["command"][0]
    assert set(init["secrets"]) <= set(compose["secrets"])
    used = {s for svc in services.values() for s in svc.get("secrets", [])}
    assert used == set(compose["secrets"])
    from tests.deploy.test_dockerfile import ignored as docker_ignored

    for spec in compose["secrets"].values():
        rel = Path(spec["file"]).as_posix().removeprefix("./")
        assert rel.startswith("deploy/secrets/kafka") or "kafka" not in rel
        assert subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO).returncode == 0
        assert docker_ignored(rel), rel


def test_the_secured_kafka_lines_pass_docker_compose_config(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose missing: `make system-deps` installs Debian's package"
    out = subprocess.run(
        [tool, "-f", str(_secured(tmp_path)), "--project-directory", str(REPO), "config"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **REQUIRED_ENV},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    worker = resolved["services"]["worker"]["secrets"]  # long form: {"source": name, ...}
    assert {s["source"] for s in worker} == {"kafka_sasl_password", "kafka_ca.pem"}
