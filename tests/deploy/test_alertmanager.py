"""deploy/alertmanager/alertmanager.yml: amtool's check, and a real delivery.

Debian's Alertmanager is 0.25; the compose file runs v0.27, whose webhook receiver
reads its URL from a file (``url_file``), which 0.25 does not know. Both checks use
a copy of the config with ``url: <the file's content>`` in its place, nothing else
changed. The delivery test runs a real Prometheus (the deployment's rules) and a
real Alertmanager on loopback: the Watchdog must reach the watchdog receiver, and
no other alert the team receiver while nothing is wrong.
"""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import promql
from tests.deploy.promql import REPO
from tripwire.embedded import free_port

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def _with_urls(urls: dict[str, str]) -> dict[str, Any]:
    """The config with each ``url_file`` replaced by ``url: urls[receiver name]``."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert hook.pop("url_file").startswith("/run/secrets/"), "URLs are secret files"
            hook["url"] = urls[receiver["name"]]
    return config


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: `make system-deps` installs prometheus-alertmanager"
    return path


def test_amtool_accepts_the_config(tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    urls = {"team": "https://hooks.example.com/team", "watchdog": "https://hc.example.com/x"}
    path.write_text(yaml.safe_dump(_with_urls(urls)))
    ok = subprocess.run(
        [_tool("amtool"), "check-config", str(path)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = _with_urls(urls)
    broken["route"]["receiver"] = "nobody"
    path.write_text(yaml.safe_dump(broken))
    bad = subprocess.run(
        [_tool("amtool"), "check-config", str(path)], capture_output=True, text=True
    )
    assert bad.returncode != 0, "the check can fail"


def test_routes_send_the_watchdog_to_its_receiver_and_the_rest_to_the_team() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["route"]["receiver"] == "team"
    (watchdog,) = config["route"]["routes"]
    assert watchdog["receiver"] == "watchdog"
    assert watchdog["matchers"] == ['alertname = "Watchdog"']
    assert watchdog["repeat_interval"] == "1m", "a dead man's switch needs steady pings"
    alerts = {r["alert"] for r in promql.rules() if "alert" in r}
    assert "Watchdog" in alerts


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[int, list[tuple[str, dict[str, Any]]]]]:
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_address[1], _Hook.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.integration
@pytest.mark.slow
def test_prometheus_delivers_the_watchdog_through_alertmanager(
    tmp_path: Path, hook: tuple[int, list[tuple[str, dict[str, Any]]]]
) -> None:
    hook_port, received = hook
    am_port, prom_port = free_port(), free_port()
    base = f"http://127.0.0.1:{hook_port}"
    am_config = _with_urls({"team": f"{base}/team", "watchdog": f"{base}/watchdog"})
    (tmp_path / "am.yml").write_text(yaml.safe_dump(am_config))
    prom_config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    prom_config["global"].update(evaluation_interval="1s")
    prom_config["global"]["external_labels"]["runbook_url"] = "https://docs.example.com/rb.md"
    prom_config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{am_port}"]}
    ]
    prom_config["scrape_configs"] = []  # no targets: only the Watchdog can fire quickly
    # (the test's Prometheus resends every 1 s: its first send can precede its discovery
    # of the Alertmanager, and the default resend delay is 1 minute)
    prom_config["rule_files"] = [str(p) for p in promql.rule_files()]
    prom_config["rule_files"].append(str(promql.generated_rules(tmp_path / "gen", 0)))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
    logs = [(tmp_path / "am.log").open("wb"), (tmp_path / "prom.log").open("wb")]
    procs = [
        subprocess.Popen(
            [_tool("prometheus-alertmanager"), f"--config.file={tmp_path / 'am.yml'}",
             f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address="],
            stdout=logs[0], stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s"],
            stdout=logs[1], stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(p == "/watchdog" for p, _ in received):
            time.sleep(0.5)
        paths = [p for p, _ in received]
        assert "/watchdog" in paths, (tmp_path / "am.log").read_text()[-2000:]
        (body,) = [b for p, b in received if p == "/watchdog"][:1]
        (alert,) = body["alerts"]
        assert alert["labels"]["alertname"] == "Watchdog" and alert["status"] == "firing"
        assert alert["annotations"]["runbook_url"] == "https://docs.example.com/rb.md#watchdog"
        assert alert["labels"]["system"] == "tripwire", "external labels travel with alerts"
    finally:
        for proc in procs:
            _stop(proc)
        for log in logs:
            log.close()
    # With 0 workers expected and no targets, nothing but the Watchdog and the
    # "nothing scraped" alerts may fire; the team receiver got only those, if any.
    team = {a["labels"]["alertname"] for p, b in received if p == "/team" for a in b["alerts"]}
    assert team <= {"TripwireNoWorkerUp", "TripwireLagExporterDown"}, team
