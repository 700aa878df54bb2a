"""Opening registry entries without ever leaving the registry.

Every read of the registry goes through here. The root is opened once per
operation and may itself be a symlink (it *is* the registry). Every entry below
it is opened one path component at a time, relative to its parent's file
descriptor, with ``O_NOFOLLOW``: a symlink at any level (model dir, version dir,
``aliases/``, alias file, manifest, artifact, a directory inside a version) is
refused, never followed, so no name can lead outside the root.

What was checked is what is read: an entry is ``lstat``-ed (nothing but a regular
file is ever opened), opened with ``O_NOFOLLOW | O_NONBLOCK``, and the open
descriptor itself is checked (``fstat``: a regular file with at most one link).
Callers then read, hash or copy from that descriptor and never open the name
again, so an entry swapped after the check is not the one read. (A file atomically
replaced between the ``lstat`` and the ``open`` is read in its new version, which is
checked all the same: alias files are replaced that way while workers poll them.)

Also refused: anything but a regular file where a file is expected (a FIFO would
block the reader forever, so nothing is opened before its type is known), a file
with more than one hard link (another name, possibly outside the registry, shares
its bytes: the registry never makes hard links), and a file larger than the
caller's bound.

Not checked: mount points. Mounting something inside the registry takes
privileges the registry's writers should not have.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tripwire.core.errors import RegistryError
from tripwire.core.untrusted import escaped

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
#: A version directory holding more entries, or nested deeper, is refused.
MAX_ENTRIES = 10_000
MAX_DEPTH = 16
_CHUNK = 1 << 20


class RefusedEntry(RegistryError):
    """A registry entry that is not opened: a symlink, a special file, a hard link...

    ``path`` is relative to the registry root (or to the directory being checked);
    ``problem`` says what the entry is.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def open_root(root: Path) -> int:
    """Open the registry root (following a symlink: the root is what it names)."""
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RegistryError(f"registry directory {root} does not exist") from None
    except NotADirectoryError:
        raise RegistryError(f"registry path {root} is not a directory") from None


@contextmanager
def closing(fd: int) -> Iterator[int]:
    """``with closing(os.open(...)) as fd``: the descriptor is closed on exit."""
    try:
        yield fd
    finally:
        os.close(fd)


def _parts(rel: str) -> list[str]:
    parts = rel.split("/") if rel else []
    if any(p in ("", ".", "..") for p in parts):
        raise RegistryError(f"not a plain relative path inside the registry: {escaped(rel)}")
    return parts


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file (FIFO, socket or device)"


def describe(parent_fd: int, name: str, st: os.stat_result) -> str:
    """What an entry is, for a refusal: ``a symlink (to /elsewhere)``, ``a directory``..."""
    what = _kind(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        try:
            what += f" (to {escaped(os.readlink(name, dir_fd=parent_fd))})"
        except OSError:
            pass
    return what


def _not(what: str, wanted: str) -> str:
    rule = "; nothing below the registry root is read through a symlink"
    return f"is {what}, not {wanted}" + (rule if what.startswith("a symlink") else "")


def _refused(parent_fd: int, name: str, where: str, wanted: str) -> RefusedEntry:
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    return RefusedEntry(str(escaped(where)), _not(describe(parent_fd, name, st), wanted))


def open_dir(parent_fd: int, rel: str, where: str = "") -> int:
    """Open the directory ``rel`` below ``parent_fd`` without following any symlink.

    Raises ``FileNotFoundError`` when a component is missing, :class:`RefusedEntry`
    when one is not a real directory. ``where`` prefixes the paths in messages.
    """
    fd = os.dup(parent_fd)
    try:
        for part in _parts(rel):
            path = f"{where}/{part}" if where else part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                raise _refused(fd, part, path, "a directory") from None
            os.close(fd)
            fd, where = child, path
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(parent_fd: int, rel: str, where: str = "") -> int:
    """Open the regular file ``rel`` below ``parent_fd``; the descriptor is what was checked.

    Raises ``FileNotFoundError`` when it (or a directory on the way) is missing,
    :class:`RefusedEntry` for a symlink anywhere on the way, a non-regular file or
    a file with other hard links.
    """
    *dirs, name = _parts(rel) or [""]
    path = f"{where}/{rel}" if where else rel
    shown = str(escaped(path))
    with closing(open_dir(parent_fd, "/".join(dirs), where)) as dir_fd:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedEntry(shown, _not(describe(dir_fd, name, st), "a regular file"))
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise RefusedEntry(shown, "was replaced by a symlink while being opened") from None
    try:
        opened = os.fstat(fd)  # what the descriptor is, whatever the name is now
        if not stat.S_ISREG(opened.st_mode):
            raise RefusedEntry(shown, f"became {_kind(opened.st_mode)} while being opened")
        # 0: replaced (renamed over) since it was opened; what was opened is still read
        if opened.st_nlink > 1:
            raise RefusedEntry(
                shown,
                f"has {opened.st_nlink} hard links: a registry file has no other name "
                "(another path could change its bytes)",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int, where: str) -> bytes:
    """All bytes of an open file, refusing one larger than ``limit`` bytes."""
    chunks, size = [], 0
    while chunk := os.read(fd, min(_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RefusedEntry(where, f"is larger than {limit} bytes")
    return b"".join(chunks)


def read_file(parent_fd: int, rel: str, limit: int, where: str = "") -> bytes:
    """The bytes of the regular file ``rel`` (see :func:`open_file`), at most ``limit``."""
    with closing(open_file(parent_fd, rel, where)) as fd:
        return read_fd(fd, limit, str(escaped(f"{where}/{rel}" if where else rel)))


def walk(dir_fd: int) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``dir_fd`` as ``(relative path, lstat)``, directories first.

    Symlinks are reported, never followed; real subdirectories are descended
    (opened by :func:`open_dir`). Refuses trees of more than ``MAX_ENTRIES``
    entries or ``MAX_DEPTH`` levels.
    """
    count = 0

    def entries(fd: int, prefix: str, depth: int) -> Iterator[tuple[str, os.stat_result]]:
        nonlocal count
        if depth > MAX_DEPTH:
            raise RefusedEntry(str(escaped(prefix)), f"nests deeper than {MAX_DEPTH} levels")
        with os.scandir(fd) as it:
            found = sorted((e.name, e.stat(follow_symlinks=False)) for e in it)
        for name, st in found:
            count += 1
            if count > MAX_ENTRIES:
                raise RefusedEntry(prefix or ".", f"holds more than {MAX_ENTRIES} entries")
            rel = f"{prefix}/{name}" if prefix else name
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                with closing(open_dir(fd, name, prefix)) as child:
                    yield from entries(child, rel, depth + 1)

    yield from entries(dir_fd, "", 0)
