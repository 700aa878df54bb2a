"""The Dockerfile and .dockerignore, parsed and cross-checked (no Docker engine here).

Base image, non-root user, CPU torch pinned like the rest of the project, entrypoint
and exposed port against the app, build context contents, and the HEALTHCHECK
command actually run against a live HTTP endpoint.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.deploy import app
from tests.deploy.promql import REPO
from tripwire.core.config import env_name

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    image: str
    name: str | None
    args: dict[str, str] = field(default_factory=dict)
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions with continuations joined; comment lines dropped (as Docker does)."""
    buffer = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        yield (buffer + stripped).strip()
        buffer = ""
    if buffer.strip():
        yield buffer.strip()


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: variables.get(m.group(1) or m.group(2), m.group(0)),
        text,
    )


def parse(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            (stages[-1].args if stages else global_args)[key] = value.strip('"')
        elif keyword == "FROM":
            image, _, name = _expand(rest, global_args).partition(" AS ")
            stages.append(Stage(image.strip(), name.strip() or None, {}))
        elif stages:
            stages[-1].instructions.append((keyword, _expand(rest, stages[-1].args)))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_every_stage_is_python_311_slim(stages: list[Stage]) -> None:
    assert stages
    for stage in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage.image), stage.image


def test_final_stage_runs_as_the_non_root_user_it_creates(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0")
    created = " ".join(final.all("RUN"))
    assert re.search(rf"useradd\b.*--uid {uid}\b", created), f"user {uid} not created"


def _torch_pin() -> str:
    make = (REPO / "Makefile").read_text()
    m = re.search(r"^TORCH\s*\?=\s*torch==(\S+)", make, re.M)
    assert m, "Makefile pins no torch"
    return m.group(1)


def test_cpu_torch_is_installed_first_and_pinned_like_the_project(stages: list[Stage]) -> None:
    build = stages[0]
    runs = build.all("RUN")
    torch_runs = [i for i, r in enumerate(runs) if re.search(r"\btorch==", r)]
    assert len(torch_runs) == 1, runs
    torch_run = runs[torch_runs[0]]
    version = re.search(r"torch==([\w.]+)", torch_run)
    assert version and version.group(1) == _torch_pin()
    index = re.search(r"--index-url\s+\"?([^\s\"]+)", torch_run)
    assert index and index.group(1).rstrip("/").endswith("/whl/cpu")
    app_install = [i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r)]
    assert app_install and app_install[0] > torch_runs[0], "torch before `pip install .`"
    import torch

    assert torch.__version__.split("+")[0] == _torch_pin(), "tests run the image's torch"


def test_final_stage_copies_the_venv_not_the_build_tools(final: Stage) -> None:
    copies = final.all("COPY")
    assert any(c.startswith("--from=build") and "/opt/venv" in c for c in copies)
    assert not any("pip install" in r for r in final.all("RUN"))


def test_entrypoint_is_the_tripwire_command(final: Stage) -> None:
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["tripwire"]
    assert json.loads(final.all("CMD")[-1]) == ["worker"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "tripwire" in scripts


def _healthcheck(final: Stage) -> list[str]:
    (check,) = final.all("HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python", "slim has no curl: probe with python"
    return list(command)


def test_exposed_port_and_healthcheck_default_are_the_workers_metrics_port(
    final: Stage,
) -> None:
    port = app.default(app.worker_classes(), "metrics_port")
    assert final.all("EXPOSE") == [str(port)]
    code = _healthcheck(final)[-1]
    var = env_name("metrics_port")
    m = re.search(rf"['\"]{var}['\"],\s*['\"](\d+)['\"]", code)
    assert m and int(m.group(1)) == port


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/metrics"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"tripwire_events_consumed_total 0\n" if ok else b"")

    def log_message(self, *args: object) -> None:
        pass


def test_healthcheck_command_passes_on_a_live_endpoint_and_fails_without(
    final: Stage,
) -> None:
    command = [sys.executable, *_healthcheck(final)[1:]]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        port = server.server_address[1]
        env = {"PATH": "/usr/bin:/bin", env_name("metrics_port"): str(port)}
        ok = subprocess.run(command, env=env, capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    env = {"PATH": "/usr/bin:/bin", env_name("metrics_port"): str(port)}  # now closed
    down = subprocess.run(command, env=env, capture_output=True, timeout=30)
    assert down.returncode != 0


# --- build context ------------------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, Go filepath.Match plus `**`."""
    out = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        out.append((negated, re.compile(regex)))
    return out


def ignored(rel: str) -> bool:
    """Whether the path ``rel`` (relative to the context) is left out of the build."""
    parts = rel.split("/")
    result = False
    for negated, regex in _ignore_patterns():
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not negated
    return result


def test_dockerignore_keeps_local_state_out() -> None:
    for path in (".venv/bin/python", ".git/HEAD", "registry/demo/1/manifest.json",
                 ".pytest_cache/v", ".mypy_cache/x", ".ruff_cache/x",
                 "training/__pycache__/x.pyc", "tests/conftest.py"):  # fmt: skip
        assert ignored(path), path
    assert not ignored("training/registry/store.py")


def test_copied_sources_exist_and_are_in_the_context(stages: list[Stage]) -> None:
    copied: set[str] = set()
    for stage in stages:
        for copy in stage.all("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if copy.startswith("--from"):
                continue
            for source in words[:-1]:
                path = REPO / source
                assert path.exists(), f"COPY {source}: not in the repository"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                for f in files:
                    rel = f.relative_to(REPO).as_posix()
                    if "__pycache__" not in rel:
                        assert not ignored(rel), f"{rel} is copied but .dockerignore drops it"
                copied.add(source.strip("/"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["readme"] in copied, "pip install . needs the readme"
    for package, directory in project["tool"]["setuptools"]["package-dir"].items():
        assert directory in copied, f"package {package} ({directory}/) not copied"
