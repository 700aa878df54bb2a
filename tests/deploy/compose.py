"""Load docker-compose.yml the way Compose does, as far as the tests need.

YAML with merge keys (``<<: *app``), then variable interpolation (``${VAR}``,
``${VAR:-default}``, ``${VAR-default}``, ``$VAR``, ``$$`` for a literal ``$``) with
a given environment, so tests see the values a deployment would get.
tests/deploy/test_compose.py checks this reading against docker-compose's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promql import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<sep>:?[-?])(?P<default>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``value`` with Compose variables replaced from ``env``."""

    def repl(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        sep, default = m.group("sep"), m.group("default") or ""
        current = env.get(name)
        if sep == ":-":
            return current if current else default
        if sep == "-":
            return default if current is None else current
        if sep in (":?", "?") and not current:
            raise KeyError(f"{name}: {default}")
        return current or ""

    return _VAR.sub(repl, value)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def load_raw(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The parsed file, merge keys applied, variables not interpolated."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


#: Variables the compose file requires (``${VAR:?...}``), with the value tests use.
REQUIRED_ENV = {"TRIPWIRE_RUNBOOK_URL": "https://docs.example.com/tripwire/runbook.md"}


def load(env: Mapping[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The parsed file, variables interpolated from ``env`` (default: only the required)."""
    loaded: dict[str, Any] = _walk(load_raw(path), REQUIRED_ENV if env is None else env)
    return loaded


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict, whichever of the two forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(service: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """``(source, target, read_only)`` for each short-syntax volume of ``service``."""
    out = []
    for spec in service.get("volumes", []):
        assert isinstance(spec, str), f"long-syntax volume not supported here: {spec!r}"
        parts = spec.split(":")
        source, target = parts[0], parts[1]
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        out.append((source, target, read_only))
    return out


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def host_path_for(service: Mapping[str, Any], container_path: str) -> Path | None:
    """The repo path a bind mount of ``service`` puts at ``container_path``, if any."""
    best: tuple[str, str] | None = None
    for source, target, _ in volume_mounts(service):
        if not is_bind(source):
            continue
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[1]):
                best = (source, target)
    if best is None:
        return None
    rest = container_path[len(best[1]) :].lstrip("/")
    base = (COMPOSE_FILE.parent / best[0]).resolve()
    return base / rest if rest else base
