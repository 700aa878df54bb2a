"""``tripwire registry list|show|promote|rollback|verify|gc``.

``promote --evidence`` is the promotion gate (:mod:`tripwire.training.registry.gate`);
``show NAME@ALIAS --history`` prints the alias's move log. A refused promotion
prints one line and exits 1; other failures exit 2.

``register_registry(subparsers)`` adds the ``registry`` command; ``training/cli.py``
calls it. Each leaf sets ``func(args) -> int``; failures raise ``RegistryError``,
which ``tripwire.cli`` prints before exiting with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from tripwire.core.config import add_arguments, env_defaults, from_args, guarded
from tripwire.core.errors import ConfigError, RegistryError
from tripwire.core.registry.manifest import is_version
from tripwire.core.registry.reader import DEFAULT_ALIAS, parse_ref
from tripwire.training.registry.gate import (
    Budget,
    Gate,
    PromotionRefused,
    parse_fraction,
    read_evidence,
)
from tripwire.training.registry.moves import history_lines
from tripwire.training.registry.store import Registry
from tripwire.training.registry.verify import STALE_AFTER_SECONDS

METRIC_COLUMNS = ("roc_auc", "pr_auc", "f1")


@dataclass(frozen=True)
class RegistrySettings:
    """Where the registry lives (``TRIPWIRE_REGISTRY``)."""

    registry: str = field(
        default="./registry", metadata={"help": "model registry directory", "metavar": "DIR"}
    )


@dataclass(frozen=True)
class GateSettings:
    """The budget of ``promote --evidence`` (``TRIPWIRE_MAX_ALERT_RATE_CHANGE``, ...).

    Amounts are percentages (``25%``) or fractions in [0, 1] (``0.25``).
    """

    max_alert_rate_change: str | None = field(
        default=None,
        metadata={
            "help": "refuse if the candidate's alert rate differs from the current version's "
            "by more than this, either way (e.g. 25%%)",
            "metavar": "PCT",
        },
    )
    min_recall: str | None = field(
        default=None,
        metadata={"help": "refuse if the candidate's recall is lower", "metavar": "X"},
    )
    min_precision: str | None = field(
        default=None,
        metadata={"help": "refuse if the candidate's precision is lower", "metavar": "X"},
    )
    min_events: int = field(
        default=1000,
        metadata={"help": "refuse evidence covering fewer events", "metavar": "N"},
    )

    def budget(self) -> Budget:
        def amount(value: str | None, option: str) -> float | None:
            return None if value is None else parse_fraction(value, option)

        if self.min_events < 0:
            raise ConfigError(f"--min-events {self.min_events}: must be >= 0")
        return Budget(
            max_alert_rate_change=amount(self.max_alert_rate_change, "--max-alert-rate-change"),
            min_recall=amount(self.min_recall, "--min-recall"),
            min_precision=amount(self.min_precision, "--min-precision"),
            min_events=self.min_events,
        )

    @property
    def stated(self) -> bool:
        """True if any limit beyond the default ``min_events`` was given."""
        return any(v is not None for v in (self.max_alert_rate_change, self.min_recall,
                                          self.min_precision))  # fmt: skip


def register_registry(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``registry`` and its subcommands to a ``tripwire`` subparsers object."""
    parser = subparsers.add_parser(
        "registry", help="inspect the model registry and move aliases",
        description="List, show, verify model versions; promote and roll back aliases.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    defaults, env_error = env_defaults(RegistrySettings)

    def leaf(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p, RegistrySettings, defaults)
        return p

    p = leaf("list", "models, their versions (created, detector, threshold, metrics), aliases")
    p.add_argument("name", nargs="?", help="only this model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=guarded(env_error, cmd_list))

    p = leaf("show", "print a version's manifest.json, or with --history an alias's moves")
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help="bare NAME means NAME@production")
    p.add_argument(
        "--history", action="store_true",
        help="who moved the alias, when, from which version to which, on which evidence",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="with --history: the alias file as JSON")
    p.set_defaults(func=guarded(env_error, cmd_show))

    p = leaf("promote", "point an alias at a version (which must verify), optionally on evidence")
    _promote_arguments(p, env_error)

    p = leaf("rollback", "move an alias back to the version it pointed at before")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--alias", default=DEFAULT_ALIAS, help="alias to move (default: %(default)s)")
    p.set_defaults(func=guarded(env_error, cmd_rollback))

    p = leaf("verify", "re-check manifests, every artifact's sha256 and every alias")
    p.add_argument("ref", nargs="?", metavar="NAME[@VERSION]", help="default: everything")
    p.set_defaults(func=guarded(env_error, cmd_verify))

    p = leaf("gc", "remove abandoned publishes (.tmp-* dirs of crashed publishers)")
    p.add_argument(
        "--older-than", type=float, default=STALE_AFTER_SECONDS, metavar="SECONDS",
        help="only dirs idle this long (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="list, do not remove")
    p.set_defaults(func=guarded(env_error, cmd_gc))


def _promote_arguments(p: argparse.ArgumentParser, env_error: ConfigError | None) -> None:
    """``promote``'s options: the alias, the evidence, the gate's budget, ``--force``."""
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", help="a version number, 'latest' or an alias")
    p.add_argument("--alias", default=DEFAULT_ALIAS, help="alias to move (default: %(default)s)")
    p.add_argument(
        "--evidence", metavar="REPORT.json",
        help="a `tripwire replay` (or shadow) report comparing VERSION with the alias's current "
        "version: checked against the budget below and recorded with the move",
    )  # fmt: skip
    gate, gate_error = env_defaults(GateSettings)
    add_arguments(p, GateSettings, gate)
    p.add_argument(
        "--force", action="store_true",
        help="promote even if the evidence is outside the budget (recorded as forced; never "
        "overrides a version that fails verification)",
    )  # fmt: skip
    p.set_defaults(func=guarded(env_error or gate_error, cmd_promote))


#: ``tripwire.cli`` convention: a command module exposes ``register``.
register = register_registry


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(from_args(RegistrySettings, args).registry)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _fmt(value: Any, spec: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return "-"


def _section(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    value = manifest.get(key)
    return value if isinstance(value, dict) else {}


def _summary(reg: Registry, name: str, version: str) -> dict[str, Any]:
    """What ``registry list`` shows of one version (``{"error": ...}`` if unreadable)."""
    try:
        m = reg.manifest(name, version)
    except RegistryError as e:
        return {"error": str(e)}
    metrics, detector, threshold, features = (
        _section(m, k) for k in ("metrics", "detector", "threshold", "features")
    )
    return {
        "created_at": m.get("created_at"),
        "detector": detector.get("kind"),
        "features": features.get("count"),
        "threshold": {"method": threshold.get("method"), "value": threshold.get("value")},
        "metrics": {k: metrics.get(k) for k in METRIC_COLUMNS},
    }


def _version_row(reg: Registry, name: str, version: str, aliases: list[str]) -> list[str]:
    s = _summary(reg, name, version)
    if "error" in s:
        return [version, f"<unreadable: {s['error']}>"]
    return [
        version,
        str(s["created_at"] or "-"),
        str(s["detector"] or "-"),
        str(s["features"] if s["features"] is not None else "-"),
        f"{s['threshold']['method'] or '-'}={_fmt(s['threshold']['value'], '.6g')}",
        *(_fmt(s["metrics"][k], ".4f") for k in METRIC_COLUMNS),
        ",".join(aliases) or "-",
    ]


def _table(rows: list[list[str]]) -> list[str]:
    full = [r for r in rows if len(r) == len(rows[0])]
    widths = [max(len(r[i]) for r in full) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    names = [args.name] if args.name else reg.models()
    if args.json:
        doc = {
            n: {
                "versions": reg.versions(n),
                "aliases": reg.aliases(n),
                "details": {v: _summary(reg, n, v) for v in reg.versions(n)},
            }
            for n in names
        }
        _out(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    if not names:
        _out(f"no models in registry {reg.root}")
        return 0
    for name in names:
        versions, aliases = reg.versions(name), reg.aliases(name)
        moved = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"
        _out(f"{name}  (aliases: {moved})")
        header = ["VERSION", "CREATED", "DETECTOR", "FEATURES", "THRESHOLD"]
        rows = [header + [c.upper() for c in METRIC_COLUMNS] + ["ALIASES"]]
        for v in versions:
            rows.append(_version_row(reg, name, v, [a for a, av in aliases.items() if av == v]))
        if not versions:
            _out("  no versions")
            continue
        for line in _table(rows):
            _out("  " + line)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    reg = _registry(args)
    if not args.history:
        name, version = reg.resolve(args.ref)
        _out(json.dumps(reg.manifest(name, version), indent=2, sort_keys=True))
        return 0
    name, selector = parse_ref(args.ref)
    alias = selector or DEFAULT_ALIAS
    if is_version(alias) or alias == "latest":
        raise RegistryError(f"--history shows an alias's moves: name an alias, not {alias}")
    record = reg.alias_record(name, alias)
    if record is None:
        raise RegistryError(f"model {name!r} has no alias {alias!r}")
    if args.json:
        _out(json.dumps(record, indent=2, sort_keys=True))
    else:
        for line in history_lines(name, alias, record):
            _out(line)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    reg = _registry(args)
    settings = from_args(GateSettings, args)
    budget = settings.budget()
    if args.evidence is None and settings.stated:
        raise ConfigError("a budget (--max-alert-rate-change, --min-recall...) needs --evidence")
    gate = None if args.evidence is None else Gate(read_evidence(args.evidence), budget)
    _, version = reg.resolve(f"{args.name}@{args.version}")
    try:
        move = reg.promote(args.name, args.alias, version, gate=gate, force=args.force)
    except PromotionRefused as e:
        sys.stderr.write(f"tripwire registry promote: {e}; --force overrides\n")
        return 1
    _out(str(move))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    _out(str(_registry(args).rollback(args.name, args.alias)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    reg = _registry(args)
    name = version = None
    if args.ref:
        name, version = parse_ref(args.ref)
        if version is not None:
            name, version = reg.resolve(args.ref)
    problems = reg.verify(name, version)
    for p in problems:
        _out(str(p))
    errors = sum(p.severity == "error" for p in problems)
    scope = args.ref or str(reg.root)
    _out(f"{scope}: {errors} error(s), {len(problems) - errors} warning(s)")
    return 1 if errors else 0


def cmd_gc(args: argparse.Namespace) -> int:
    removed = _registry(args).gc(older_than=args.older_than, dry_run=args.dry_run)
    for path in removed:
        _out(f"{'would remove' if args.dry_run else 'removed'} {path}")
    _out(f"{len(removed)} abandoned temp entr{'y' if len(removed) == 1 else 'ies'}")
    return 0
