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


def _by_name(stages: list[Stage]) -> dict[str, Stage]:
    return {s.name: s for s in stages if s.name}


def lineage(stages: list[Stage], stage: Stage) -> list[tuple[str, str]]:
    """The instructions that make ``stage``: its parents' (FROM another stage) first."""
    named = _by_name(stages)
    parent = named.get(stage.image)
    return (lineage(stages, parent) if parent else []) + stage.instructions


def _all(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in instructions if kw == keyword]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


BASE = re.compile(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}")


def test_every_stage_is_python_311_slim_pinned_by_digest(stages: list[Stage]) -> None:
    named = _by_name(stages)
    roots = {s.image for s in stages if s.image not in named}
    assert len(roots) == 1, roots
    (base,) = roots
    assert BASE.fullmatch(base), f"{base}: pin the digest, not only the tag"
    digest = base.partition("@")[2]
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert digest in docs, "docs/deploy.md says where the digest is from"


def test_worker_is_the_default_target_and_the_trainer_a_named_one(stages: list[Stage]) -> None:
    assert stages[-1].name == "worker"
    named = _by_name(stages)
    assert "trainer" in named
    worker_venv = [c for c in named["worker"].all("COPY") if "/opt/venv" in c]
    trainer_venv = [c for c in named["trainer"].all("COPY") if "/opt/venv" in c]
    assert worker_venv == ["--from=build-worker /opt/venv /opt/venv"]
    assert trainer_venv == ["--from=build-trainer /opt/venv /opt/venv"]


@pytest.mark.parametrize(
    ("stage", "lock"), [("worker", "worker.lock"), ("trainer", "trainer.lock")]
)
def test_locked_dependencies_are_installed_before_the_sources(
    stages: list[Stage], stage: str, lock: str
) -> None:
    build = _by_name(stages)[f"build-{stage}"]
    steps = lineage(stages, build)
    locked = [i for i, (kw, rest) in enumerate(steps)
              if kw == "RUN" and "--require-hashes" in rest and f"/tmp/{lock}" in rest]  # fmt: skip
    packages = ("training", "stream", "tripwire")
    sources = [i for i, (kw, rest) in enumerate(steps)
               if kw == "COPY" and rest.split()[0] in packages]  # fmt: skip
    app = [i for i, (kw, rest) in enumerate(steps)
           if kw == "RUN" and re.search(r"pip install --no-deps \.(\s|$)", rest)]  # fmt: skip
    assert locked and sources and app, steps
    assert max(locked) < min(sources) < app[0], "locks, then sources, then the app alone"
    assert all("--no-deps" in r for kw, r in steps if kw == "RUN" and "pip install" in r)


def _torch_pin() -> str:
    make = (REPO / "Makefile").read_text()
    m = re.search(r"^TORCH\s*\?=\s*torch==(\S+)", make, re.M)
    assert m, "Makefile pins no torch"
    return m.group(1)


def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, hashes)}`` of a pip-compile lock file."""
    text = (REPO / "requirements" / name).read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)(.*)$", line)
        if m:
            out[m.group(1).lower()] = (m.group(2), re.findall(r"--hash=sha256:(\w{64})", line))
    return out


# numba/llvmlite are not here: the ae/vae scoring kernels need them in the worker too
TRAINING_ONLY = {"pyod", "matplotlib"}


def test_locks_are_hashed_pin_cpu_torch_and_keep_training_out_of_the_worker() -> None:
    worker, trainer = _lock("worker.lock"), _lock("trainer.lock")
    for lock in (worker, trainer):
        assert all(hashes for _, hashes in lock.values()), "every package hashed"
        assert lock["torch"][0] == _torch_pin() + "+cpu"
        assert not any(n.startswith(("nvidia-", "cuda-", "triton")) for n in lock), "CUDA"
    assert not TRAINING_ONLY & set(worker), "the worker image is slim"
    assert TRAINING_ONLY <= set(trainer)
    for name, (version, _) in worker.items():
        assert trainer[name][0] == version, f"{name}: the two images disagree"


def test_locks_satisfy_pyproject() -> None:
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locks = {
        "worker.lock": project["dependencies"],
        "trainer.lock": project["dependencies"] + project["optional-dependencies"]["train"],
    }
    for lock_name, requirements in locks.items():
        lock = _lock(lock_name)
        for spec in requirements:
            req = Requirement(spec)
            version = lock[req.name.lower()][0]
            assert req.specifier.contains(Version(version), prereleases=True), (lock_name, spec)


def test_tests_run_the_images_torch() -> None:
    import torch

    assert torch.__version__.split("+")[0] == _torch_pin(), "tests run the image's torch"


def test_final_stage_runs_as_the_non_root_user_it_creates(stages: list[Stage]) -> None:
    for stage in ("worker", "trainer"):
        steps = lineage(stages, _by_name(stages)[stage])
        users = _all(steps, "USER")
        assert users, f"{stage}: no USER, the container would run as root"
        uid = users[-1].split(":")[0]
        assert uid not in ("root", "0")
        assert re.search(rf"useradd\b.*--uid {uid}\b", " ".join(_all(steps, "RUN")))


def test_final_stages_copy_the_venv_not_the_build_tools(stages: list[Stage]) -> None:
    for stage in ("worker", "trainer", "runtime"):
        assert not any("pip install" in r for r in _by_name(stages)[stage].all("RUN"))


def test_entrypoint_is_the_tripwire_command(stages: list[Stage]) -> None:
    named = _by_name(stages)
    for stage, cmd in (("worker", ["worker"]), ("trainer", ["train", "--help"])):
        steps = lineage(stages, named[stage])
        assert json.loads(_all(steps, "ENTRYPOINT")[-1]) == ["tripwire"]
        assert json.loads(_all(steps, "CMD")[-1]) == cmd
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
    assert "/healthz" in code, "liveness: the event loop, not only the HTTP thread"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Unhealthy(_Health):
    status = 503


def _probe(command: list[str], port: int) -> int:
    env = {"PATH": "/usr/bin:/bin", env_name("metrics_port"): str(port)}
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode


def test_healthcheck_passes_on_200_and_fails_on_503_and_a_closed_port(final: Stage) -> None:
    command = [sys.executable, *_healthcheck(final)[1:]]
    codes = []
    for handler in (_Health, _Unhealthy):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            port = server.server_address[1]
            codes.append(_probe(command, port))
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    codes.append(_probe(command, port))  # now closed
    assert codes[0] == 0 and codes[1] != 0 and codes[2] != 0, codes


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
    assert {"requirements/worker.lock", "requirements/trainer.lock"} <= copied
    for package, directory in project["tool"]["setuptools"]["package-dir"].items():
        assert directory in copied, f"package {package} ({directory}/) not copied"
