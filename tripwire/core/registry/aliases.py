"""The alias file ``NAME/aliases/<alias>.json``: its format and how a reader checks it.

Schema 2 (this code writes it; ``schema_version`` absent means 1)::

    {"schema_version": 2,
     "version": "3",                 # the version the alias points at
     "history": ["1", "2"],          # versions it pointed at before, oldest first
     "updated_at": "2026-11-28T10:00:00Z",
     "moves": [{...}, ...]}          # who moved it, when, on which evidence; newest last

``version`` and ``history`` are exactly schema 1's, so readers of schema 1 (which
ignore other keys) read schema 2 files, and schema 1 files read here as schema 2
files with no recorded moves. A file whose ``schema_version`` is newer than
:data:`SCHEMA_VERSION` is refused ("written by a newer Tripwire"). The fields of a
move are documented in docs/formats.md ("Alias files"); readers only need them to
be objects, ``tripwire registry show --history`` prints them.

>>> alias_record({"version": "2", "history": ["1"], "updated_at": "x"}, "a.json")["moves"]
[]
"""

from __future__ import annotations

from typing import Any

from tripwire.core.errors import RegistryError
from tripwire.core.registry.manifest import is_version
from tripwire.core.untrusted import escaped

#: The alias file schema this code writes and the newest it reads.
SCHEMA_VERSION = 2
ALIASES_DIR = "aliases"
#: A larger alias file is refused unread (100 moves with evidence take ~100 KB).
ALIAS_LIMIT = 4 << 20


def alias_record(raw: Any, where: str) -> dict[str, Any]:
    """Check an alias file's parsed JSON; return it with ``moves`` filled in.

    Raises ``RegistryError`` naming ``where`` (the file) and what is wrong.
    """
    if not isinstance(raw, dict):
        raise RegistryError(f"alias file {where} is malformed: expected a JSON object")
    sv = raw.get("schema_version", 1)
    if not isinstance(sv, int) or isinstance(sv, bool) or sv < 1:
        raise RegistryError(f"alias file {where} has an unknown schema_version {escaped(sv)}")
    if sv > SCHEMA_VERSION:
        raise RegistryError(
            f"alias file {where} has schema_version {sv}, written by a newer Tripwire "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade tripwire to read it"
        )
    version, history, moves = raw.get("version"), raw.get("history"), raw.get("moves", [])
    ok = (
        isinstance(version, str)
        and is_version(version)
        and isinstance(history, list)
        and all(isinstance(v, str) and is_version(v) for v in history)
    )
    if not ok:
        raise RegistryError(f"alias file {where} is malformed: expected version and history")
    if not isinstance(moves, list) or not all(isinstance(m, dict) for m in moves):
        raise RegistryError(f"alias file {where} is malformed: 'moves' must be a list of objects")
    return {**raw, "moves": moves}
