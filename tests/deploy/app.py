"""The app's own settings, read by introspection, for cross-checks with deploy files.

The deploy files name env vars, ports and topics; the source of truth for those is
the frozen settings dataclasses (``tripwire.training.settings``, ``tripwire.stream.settings``) and
``tripwire.core.config.env_name``. Nothing here hard-codes a setting.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

from tripwire.core.config import env_name, load_env

WORKER_SETTINGS_MODULE = "tripwire.stream.settings"
TRAINER_SETTINGS_MODULE = "tripwire.training.settings"

#: Env vars read outside the settings dataclasses, with the file that reads each one
#: (checked by test_compose.py, so this list cannot drift silently).
PROCESS_ENV = {
    "TRIPWIRE_LOG_LEVEL": "tripwire/cli.py",
    "TRIPWIRE_REVISION": "stream/observability/metrics.py",
}


def worker_settings_module() -> ModuleType:
    """``tripwire.stream.settings`` (an import error fails the calling test, never skips it)."""
    return importlib.import_module(WORKER_SETTINGS_MODULE)


def require_worker_command() -> None:
    """Fail the calling test unless ``tripwire worker`` is a subcommand."""
    from tripwire.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "worker" in (sub.choices or {}), "`tripwire worker` is not registered in tripwire/cli.py"


def settings_classes(module: ModuleType) -> list[type]:
    """The settings dataclasses defined in ``module``."""
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == module.__name__
    ]
    assert classes, f"no settings dataclass in {module.__name__}"
    return classes


def env_names(classes: list[type]) -> dict[str, tuple[type, str]]:
    """``TRIPWIRE_<FIELD>`` -> (settings class, field name) for every field."""
    out: dict[str, tuple[type, str]] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            out[env_name(f.name, cls)] = (cls, f.name)
    return out


def effective(classes: list[type], env: dict[str, str], field_name: str) -> Any:
    """The value ``field_name`` takes in a process whose environment is ``env``."""
    for cls in classes:
        if field_name in {f.name for f in dataclasses.fields(cls)}:
            return getattr(load_env(cls, env), field_name)
    raise KeyError(f"no settings field {field_name!r} in {[c.__name__ for c in classes]}")


def default(classes: list[type], field_name: str) -> Any:
    return effective(classes, {}, field_name)


def fields_matching(classes: list[type], predicate: Any) -> list[str]:
    return sorted({f.name for cls in classes for f in dataclasses.fields(cls) if predicate(f.name)})


def worker_classes() -> list[type]:
    return settings_classes(worker_settings_module())


def trainer_classes() -> list[type]:
    return settings_classes(importlib.import_module(TRAINER_SETTINGS_MODULE))
