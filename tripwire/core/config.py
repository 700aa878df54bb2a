"""Frozen settings objects read from ``TRIPWIRE_*`` env vars and CLI options.

A settings class is a frozen dataclass whose fields carry their help text in
``field(metadata={"help": ...})``. ``add_arguments`` turns every field into a
``--kebab-case`` option whose default comes from the environment (so ``--help``
shows the value in force), and ``from_args`` builds the one settings object the
process passes inward.

Variables are named ``TRIPWIRE_<FIELD>``; a command whose settings must not follow
the production ones (the demo, the benchmarks) sets ``ENV_PREFIX`` on its class
(``ENV_PREFIX: ClassVar[str] = "TRIPWIRE_DEMO_"``), so a worker's environment cannot
steer it. A bad variable never breaks another command: ``env_defaults`` keeps the
error until the command that owns it runs.

>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class S:
...     max_batch: int = field(default=256, metadata={"help": "rows per batch"})
>>> load_env(S, {"TRIPWIRE_MAX_BATCH": "64"}).max_batch
64
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from tripwire.core.errors import ConfigError

PREFIX = "TRIPWIRE_"
T = TypeVar("T")
R = TypeVar("R")


class Secret(str):
    """A string that never prints its value (passwords, SASL secrets)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('****')" if self else "Secret('')"

    def __str__(self) -> str:
        return "****" if self else ""

    def reveal(self) -> str:
        return str.__str__(self)


def env_name(field_name: str, cls: type | None = None) -> str:
    """The variable of ``field_name`` (of settings class ``cls``: its ``ENV_PREFIX``)."""
    return getattr(cls, "ENV_PREFIX", PREFIX) + field_name.upper()


def env_defaults(cls: type[T]) -> tuple[T, ConfigError | None]:
    """Settings from the environment, or the class defaults and the error it raised.

    Parsers of every command are built on each start; a bad variable is reported
    only when the command that reads it runs (``guarded``), not by
    ``--help`` or by other commands.
    """
    try:
        return load_env(cls), None
    except ConfigError as e:
        return cls(), e


def guarded(
    env_error: ConfigError | None, run: typing.Callable[[argparse.Namespace], R]
) -> typing.Callable[[argparse.Namespace], R]:
    """``run``, raising ``env_error`` (from ``env_defaults``) first if there was one."""

    def func(args: argparse.Namespace) -> R:
        if env_error is not None:
            raise env_error
        return run(args)

    return func


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; other types unchanged."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def _convert(tp: Any, raw: str, name: str) -> Any:
    base = _base_type(tp)
    if raw == "" and typing.get_origin(base) is tuple:
        return ()  # an empty list ("empty = none" in the help texts), never None
    if raw == "" and base is not str and base is not Secret:
        return None
    try:
        if base is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if base in (int, float, str, Secret):
            return base(raw)
        if typing.get_origin(base) is tuple:
            return tuple(s.strip() for s in raw.split(",") if s.strip())
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r}: {e}") from None
    return raw


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


#: Suffix of the variable that names a file holding a secret (``TRIPWIRE_<FIELD>_FILE``).
FILE_SUFFIX = "_FILE"


def load_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from its defaults overridden by ``TRIPWIRE_<FIELD>`` variables
    (``<ENV_PREFIX><FIELD>`` if the class sets one).

    A ``Secret`` field can also come from a file, ``TRIPWIRE_<FIELD>_FILE`` (Docker
    and Kubernetes secrets are files): its content, one trailing newline dropped.
    Setting both is an error.
    """
    environ = os.environ if environ is None else environ
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = env_name(f.name, cls)
        if _base_type(hints[f.name]) is Secret and key + FILE_SUFFIX in environ:
            if key in environ:
                raise ConfigError(f"set {key} or {key}{FILE_SUFFIX}, not both")
            kwargs[f.name] = Secret(_read_secret(key + FILE_SUFFIX, environ[key + FILE_SUFFIX]))
        elif key in environ:
            kwargs[f.name] = _convert(hints[f.name], environ[key], key)
    return cls(**kwargs)


def _read_secret(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{name}={path}: cannot read the secret file: {e}") from None
    return value.removesuffix("\n")


def add_arguments(parser: argparse.ArgumentParser, cls: type, defaults: Any) -> None:
    """Add one ``--option`` per field of ``cls``; defaults from ``defaults``."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False:
            continue
        tp = _base_type(hints[f.name])
        value = getattr(defaults, f.name)
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} [env {env_name(f.name, cls)}{shown_default(tp, value)}]"
        opt = "--" + f.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(
                opt, dest=f.name, default=value, help=help_text,
                action=argparse.BooleanOptionalAction,
            )  # fmt: skip
            continue
        parser.add_argument(
            opt, dest=f.name, default=value, help=help_text,
            type=_converter(hints[f.name], opt),
            metavar=f.metadata.get("metavar", f.name.upper()),
        )  # fmt: skip


def shown_default(tp: Any, value: Any) -> str:
    """``"; default: X"`` for ``--help``, or nothing when the option is unset by default."""
    if value is None or value == "" or value == ():
        return ""  # "default: None" would read as a value; the help says what unset means
    shown = "****" if tp is Secret else value
    if isinstance(shown, tuple):
        shown = ",".join(shown)
    return "; default: " + str(shown).replace("%", "%%")  # argparse %-formats help strings


def _converter(tp: Any, opt: str) -> typing.Callable[[str], Any]:
    def convert(raw: str) -> Any:
        return _convert(tp, raw, opt)

    return convert


def from_args(cls: type[T], ns: argparse.Namespace) -> T:
    """The settings object from parsed options (which already hold env defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in vars(ns).items() if k in names})
