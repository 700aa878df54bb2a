"""The move log of an alias: who moved it, when, from which version to which, on what.

Each ``promote`` or ``rollback`` appends one record to ``moves`` in the alias file
(schema 2, :mod:`tripwire.core.registry.aliases`); the last :data:`HISTORY_LIMIT`
are kept. "Who" is what the operating system says about the process that moved
it: the user name of its effective UID (from the password database, not from
``$USER``), the UID and the host name. Nothing authenticates it: anyone who can
write the alias file can write any record, so it is an audit trail for honest
operators, not a proof.
"""

from __future__ import annotations

import os
import pwd
import socket
from typing import Any

from tripwire.core.registry.aliases import SCHEMA_VERSION
from tripwire.core.registry.manifest import utc_now
from tripwire.core.untrusted import escaped

#: Older alias targets (and moves) beyond this many are dropped from an alias file.
HISTORY_LIMIT = 100


def actor() -> dict[str, Any]:
    """``{"user", "uid", "host"}`` of this process, as the OS reports them."""
    uid = os.geteuid()
    try:
        user: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:  # a UID without a passwd entry (containers): the number says it all
        user = None
    return {"user": user, "uid": uid, "host": socket.gethostname()}


def move_record(
    action: str,
    previous: str | None,
    version: str,
    *,
    evidence: dict[str, Any] | None = None,
    forced: bool = False,
    overridden: list[str] | None = None,
) -> dict[str, Any]:
    """One entry of ``moves`` (field meanings: docs/formats.md, "Alias files")."""
    return {
        "action": action,
        "from": previous,
        "to": version,
        "at": utc_now(),
        "by": actor(),
        "forced": forced,
        "overridden": list(overridden or []),
        "evidence": evidence,
    }


def alias_document(
    record: dict[str, Any] | None, version: str, history: list[str], move: dict[str, Any]
) -> dict[str, Any]:
    """The alias file after ``move``: schema 2, keeping what an older file held."""
    moves = [] if record is None else list(record.get("moves", []))
    return {
        **({} if record is None else record),
        "schema_version": SCHEMA_VERSION,
        "version": version,
        "history": history[-HISTORY_LIMIT:],
        "updated_at": move["at"],
        "moves": [*moves, move][-HISTORY_LIMIT:],
    }


def headline(evidence: dict[str, Any]) -> str:
    """The numbers of an evidence record in one phrase (also for ``show --history``)."""
    parts = [f"{evidence.get('source', '?')}, {evidence.get('events', '?')} events"]
    rates = evidence.get("alert_rate") or {}
    if isinstance(rates.get("candidate"), int | float):
        base, change = rates.get("baseline"), rates.get("change")
        shown = f"alert rate {100 * rates['candidate']:.3g}%"
        if isinstance(base, int | float):
            shown = f"alert rate {100 * base:.3g}% -> {100 * rates['candidate']:.3g}%"
            shown += f" ({change:+.1%})" if isinstance(change, int | float) else " (from none)"
        parts.append(shown)
    alerts = evidence.get("alerts")
    if isinstance(alerts, dict):
        parts.append(
            f"alerts only before {alerts.get('only_baseline')}, only after "
            f"{alerts.get('only_candidate')}, both {alerts.get('both')}"
        )
    for metric in ("recall", "precision"):
        if isinstance(evidence.get(metric), int | float):
            parts.append(f"{metric} {evidence[metric]:.3g}")
    return str(escaped("; ".join(parts), 500))


def _who(by: Any) -> str:
    if not isinstance(by, dict):
        return "unknown"
    user = by.get("user") if by.get("user") is not None else "?"
    uid, host = escaped(by.get("uid"), 16), escaped(by.get("host"), 64)
    return f"{escaped(user, 64)} (uid {uid}) on {host}"


def _budget(budget: Any) -> str:
    if not isinstance(budget, dict):
        return "-"
    parts = []
    labels = {
        "max_alert_rate_change": "alert-rate change ±",
        "min_recall": "recall >= ",
        "min_precision": "precision >= ",
    }
    for key, label in labels.items():
        value = budget.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label}{100 * value:g}%")
    parts.append(f"events >= {escaped(budget.get('min_events'), 16)}")
    return ", ".join(parts)


def _move_lines(move: dict[str, Any]) -> list[str]:
    was = "unset" if move.get("from") is None else escaped(move.get("from"), 32)
    line = (
        f"{escaped(move.get('at'), 40)}  {escaped(move.get('action'), 16)} {was} -> "
        f"{escaped(move.get('to'), 32)}  by {_who(move.get('by'))}"
    )
    lines = [line + ("  FORCED" if move.get("forced") else "")]
    evidence = move.get("evidence")
    if isinstance(evidence, dict):
        file, created = escaped(evidence.get("file"), 300), escaped(evidence.get("created_at"), 40)
        digest = escaped(evidence.get("sha256"), 64)
        lines.append(f"    evidence sha256:{digest} ({file}, created {created})")
        lines.append(f"    {headline(evidence)}")
        lines.append(f"    budget: {_budget(evidence.get('budget'))}")
    elif move.get("action") == "promote":
        lines.append("    no evidence")
    for failure in move.get("overridden") or []:
        lines.append(f"    overridden: {escaped(failure, 500)}")
    return lines


def history_lines(name: str, alias: str, record: dict[str, Any]) -> list[str]:
    """``tripwire registry show NAME@ALIAS --history``: the alias, then its moves, newest first."""
    history = ", ".join(record["history"]) or "none"
    lines = [f"{name}@{alias} -> {record['version']}  (earlier versions: {history})"]
    moves = record.get("moves") or []
    if not moves:
        lines.append("  no moves recorded (moved before Tripwire kept a move log)")
    for move in reversed(moves):
        lines.extend("  " + line for line in _move_lines(move))
    return lines
