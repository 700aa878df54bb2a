"""The registry writer: atomic publish, aliases with history, garbage collection.

Publishing writes into ``NAME/.tmp-<uuid>/``, fsyncs everything, then renames the
directory to the next free version number with ``rename_noreplace``; if another
publisher won that number the manifest is rewritten for the next one and the rename
retried. A crash at any point leaves at most a ``.tmp-*`` dir, which readers ignore.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripwire.core.errors import RegistryError
from tripwire.core.registry.aliases import ALIASES_DIR
from tripwire.core.registry.confined import RefusedEntry, closing, open_dir, open_file
from tripwire.core.registry.integrity import sha256_fd, unlisted_entries
from tripwire.core.registry.manifest import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    artifact_name_problem,
    environment_info,
    utc_now,
    validate_manifest,
)
from tripwire.core.registry.reader import TMP_PREFIX, RegistryReader
from tripwire.core.untrusted import escaped
from tripwire.training.registry import _fs
from tripwire.training.registry.gate import Gate, PromotionRefused, Verdict
from tripwire.training.registry.moves import (
    HISTORY_LIMIT,
    alias_document,
    headline,
    move_record,
)
from tripwire.training.registry.verify import STALE_AFTER_SECONDS, Problem, verify_registry

log = logging.getLogger(__name__)

__all__ = ["HISTORY_LIMIT", "AliasMove", "Registry"]
_MAX_CLAIM_ATTEMPTS = 1000


@dataclass(frozen=True)
class AliasMove:
    """What ``promote``/``rollback`` did: ``alias`` moved from ``previous`` to ``version``.

    ``verdict`` is the gate's (promotions on evidence), ``forced`` whether
    ``--force`` overrode its failures.
    """

    name: str
    alias: str
    previous: str | None
    version: str
    verdict: Verdict | None = None
    forced: bool = False

    def __str__(self) -> str:
        was = "unset" if self.previous is None else self.previous
        line = f"{self.name}@{self.alias}: {was} -> {self.version}"
        if self.previous == self.version:
            return f"{line} (already there: nothing moved)"
        if self.verdict is not None:
            line += f" on evidence sha256:{self.verdict.record['sha256'][:12]}…"
            line += f" ({headline(self.verdict.record)})"
        if self.forced:
            overridden = "; ".join(self.verdict.failures) if self.verdict else ""
            line += f"; FORCED{' over: ' + overridden if overridden else ''}"
        return line


def _json_default(obj: Any) -> Any:
    """Let numpy scalars/arrays through without importing numpy."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class Registry(RegistryReader):
    """A model registry directory: read it, publish versions, move aliases.

    Parameters
    ----------
    root : path
        The registry directory (created on first publish).
    """

    # -- publish -------------------------------------------------------------

    def publish(
        self,
        name: str,
        write_artifacts: Callable[[Path], list[str]],
        manifest: dict[str, Any],
    ) -> str:
        """Publish a new version of ``name`` atomically and return its version.

        Parameters
        ----------
        name : str
            Model name (letters, digits, ``_ . -``).
        write_artifacts : callable
            Called with an empty directory; writes the model files into it and
            returns their names (relative paths). ``Detector.save`` fits.
        manifest : dict
            Everything but the keys publish fills in: ``schema_version``, ``name``,
            ``version``, ``created_at``, ``artifacts`` (sha256 of each file) and
            ``environment``. Validated before anything becomes visible.
        """
        model_dir = self.model_dir(name)
        self._ensure_model_dir(model_dir)
        tmp = model_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.mkdir()
        lock_fd = _fs.lock_dir(tmp)
        try:
            listed = write_artifacts(tmp)
            _fs.publish_modes(tmp)
            doc = self._complete_manifest(name, manifest, self._hash_artifacts(tmp, listed))
            _fs.fsync_tree(tmp)
            version = self._claim_version(model_dir, tmp, doc)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(lock_fd)
        _fs.fsync_dir(model_dir)
        log.info("published %s@%s", name, version)
        return version

    def _ensure_model_dir(self, model_dir: Path) -> None:
        """Create the model dir (0755; the root with the umask); refuse a symlink."""
        self._refuse_symlink(model_dir)
        if model_dir.is_dir():
            return
        root_existed = self.root.is_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            _fs.make_dir(model_dir)
        except FileExistsError:
            self._refuse_symlink(model_dir)  # another publisher made it, or a symlink
        _fs.fsync_dir(self.root)
        if not root_existed:
            _fs.fsync_dir(self.root.resolve().parent)

    def _refuse_symlink(self, path: Path) -> None:
        """Writers never write through a symlink below the root: readers would refuse it."""
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            with closing(os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)) as fd:
                try:
                    open_dir(fd, path.name, str(path.parent))
                except RefusedEntry as e:
                    raise RegistryError(f"cannot write the registry: {e}") from None

    @staticmethod
    def _hash_artifacts(tmp: Path, listed: list[str]) -> dict[str, str]:
        """sha256 of each listed artifact, read as a reader will (no symlinks, one link)."""
        if not isinstance(listed, list | tuple):
            raise RegistryError(f"write_artifacts must return a list of names, got {listed!r}")
        digests = {}
        with closing(os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)) as tmp_fd:
            for name in sorted(set(listed)):
                problem = artifact_name_problem(name)
                if problem:
                    raise RegistryError(f"cannot publish: {problem}")
                try:
                    with closing(open_file(tmp_fd, name)) as fd:
                        digests[name] = sha256_fd(fd)
                except (FileNotFoundError, RefusedEntry) as e:
                    why = "was not written" if isinstance(e, FileNotFoundError) else str(e)
                    raise RegistryError(f"cannot publish: artifact {escaped(name)} {why}") from None
            unlisted = unlisted_entries(tmp_fd, digests)
        if unlisted:
            found = "; ".join(f"{f}: {p}" for f, p in unlisted[:5])
            raise RegistryError(f"cannot publish: write_artifacts left unlisted entries: {found}")
        return digests

    @staticmethod
    def _complete_manifest(
        name: str, manifest: dict[str, Any], artifacts: dict[str, str]
    ) -> dict[str, Any]:
        doc = {
            **manifest,
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "version": "1",  # placeholder until a number is claimed
            "created_at": utc_now(),
            "artifacts": artifacts,
            "environment": environment_info(),
        }
        try:
            doc = json.loads(json.dumps(doc, default=_json_default))
        except (TypeError, ValueError) as e:
            raise RegistryError(f"cannot publish {name}: manifest is not JSON: {e}") from None
        problems = validate_manifest(doc)
        if problems:
            raise RegistryError(f"cannot publish {name}: invalid manifest: {'; '.join(problems)}")
        return doc

    def _claim_version(self, model_dir: Path, tmp: Path, doc: dict[str, Any]) -> str:
        """Rename ``tmp`` to the next free version number; retry if another wins it."""
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            existing = [int(v) for v in self.versions(doc["name"])]
            version = str(max(existing, default=0) + 1)
            doc["version"] = version
            _fs.write_json_durable(tmp / MANIFEST_FILE, doc)
            _fs.fsync_dir(tmp)
            try:
                _fs.rename_noreplace(tmp, model_dir / version)
            except FileExistsError:
                log.debug("version %s of %s taken by another publisher", version, doc["name"])
                continue
            return version
        raise RegistryError(f"could not claim a version number for {doc['name']}")

    # -- aliases -------------------------------------------------------------

    @contextmanager
    def _alias_lock(self, name: str) -> Iterator[None]:
        """Serialise alias read-modify-writes of one model across processes."""
        alias_dir = self.model_dir(name) / ALIASES_DIR
        self._refuse_symlink(self.model_dir(name))
        self._refuse_symlink(alias_dir)
        if not alias_dir.is_dir():
            try:
                _fs.make_dir(alias_dir)
            except FileExistsError:
                self._refuse_symlink(alias_dir)
            _fs.fsync_dir(alias_dir.parent)
        fd = os.open(alias_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _require_intact(self, name: str, version: str, action: str) -> None:
        errors = [p for p in verify_registry(self, name, version) if p.severity == "error"]
        if errors:
            raise RegistryError(
                f"refusing to {action} {name}@{version}: " + "; ".join(map(str, errors))
            )

    def promote(
        self, name: str, alias: str, version: str, *, gate: Gate | None = None, force: bool = False
    ) -> AliasMove:
        """Point ``alias`` at ``version`` (which must exist and verify).

        The version the alias left is appended to its history for ``rollback``, and
        the move (who, when, on which evidence) to its ``moves``. Promoting to the
        version it already points at changes nothing.

        Parameters
        ----------
        gate : Gate, optional
            Evidence and budget: judged against the alias's current version under
            the alias lock; ``PromotionRefused`` if it fails, unless ``force``.
        force : bool
            Move despite the gate's failures; recorded in the move.
        """
        path = self.alias_path(name, alias)
        if not (version.isascii() and version.isdigit()):
            raise RegistryError(f"promote needs a version number, got {escaped(version, 32)}")
        _, version = self.resolve(f"{name}@{version}")  # canonical; lists versions if missing
        self._require_intact(name, version, f"promote to {alias}")
        with self._alias_lock(name):
            record = self.alias_record(name, alias)
            previous = None if record is None else str(record["version"])
            if previous == version:
                return AliasMove(name, alias, version, version)
            verdict = None if gate is None else gate.judge(self, name, version, previous)
            failures = [] if verdict is None else verdict.failures
            if failures and not force:
                raise PromotionRefused(f"{name}@{version} to {alias}", failures)
            history = [] if record is None else [*record["history"], previous]
            move = move_record(
                "promote", previous, version, forced=force, overridden=failures,
                evidence=None if verdict is None else verdict.record,
            )  # fmt: skip
            _fs.replace_json_atomic(path, alias_document(record, version, history, move))
        done = AliasMove(name, alias, previous, version, verdict, force)
        log.info("promoted %s", done)
        return done

    def rollback(self, name: str, alias: str) -> AliasMove:
        """Point ``alias`` back at the version it held before its last move."""
        path = self.alias_path(name, alias)
        self.versions(name)  # raises, listing the models, if there is no such model
        with self._alias_lock(name):
            record = self.alias_record(name, alias)
            if record is None:
                raise RegistryError(
                    f"model {name!r} has no alias {alias!r} "
                    f"(aliases: {', '.join(self.aliases(name)) or 'none'})"
                )
            if not record["history"]:
                raise RegistryError(
                    f"{name}@{alias} has no previous version to roll back to "
                    f"(its history is empty; it points at {record['version']})"
                )
            target = record["history"][-1]
            if target not in self.versions(name):
                raise RegistryError(
                    f"cannot roll back {name}@{alias} to version {target}: it no longer exists"
                )
            self._require_intact(name, target, f"roll {alias} back to")
            entry = move_record("rollback", record["version"], target)
            doc = alias_document(record, target, record["history"][:-1], entry)
            _fs.replace_json_atomic(path, doc)
        move = AliasMove(name, alias, record["version"], target)
        log.info("rolled back %s", move)
        return move

    # -- maintenance ---------------------------------------------------------

    def verify(
        self,
        name: str | None = None,
        version: str | None = None,
        stale_after: float = STALE_AFTER_SECONDS,
    ) -> list[Problem]:
        """Problems found by re-checking manifests, every sha256 and every alias."""
        return verify_registry(self, name, version, stale_after)

    def gc(self, older_than: float = STALE_AFTER_SECONDS, dry_run: bool = False) -> list[Path]:
        """Remove abandoned publishes: unlocked ``.tmp-*`` dirs idle for ``older_than`` s.

        A live publisher holds a lock on its temp dir, so it is never removed.
        Returns the paths removed (or that would be, with ``dry_run``).
        """
        removed = []
        now = time.time()
        for name in self.models():
            for tmp in self.temp_dirs(name):
                try:
                    idle = now - _fs.newest_mtime(tmp)
                except FileNotFoundError:
                    continue
                if idle < older_than or _fs.dir_in_use(tmp):
                    continue
                if not dry_run:
                    shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
            removed.extend(self._gc_alias_temps(name, now - older_than, dry_run))
        return removed

    def _gc_alias_temps(self, name: str, cutoff: float, dry_run: bool) -> list[Path]:
        alias_dir = self.model_dir(name) / ALIASES_DIR
        if not alias_dir.is_dir():
            return []
        stale = [
            p for p in alias_dir.glob(".*.json.tmp-*") if p.lstat().st_mtime < cutoff
        ]  # fmt: skip
        if not dry_run:
            for p in stale:
                p.unlink(missing_ok=True)
        return stale
