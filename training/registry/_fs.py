"""Durable, atomic filesystem steps the registry is built from.

Everything here is about one property: after a crash at any instant, a reader sees
either the old state or the new one, never a mix. Files are fsynced before they are
renamed into place, and the directory holding the new name is fsynced after.

Modes: everything published (version directories and their files, ``aliases/``
and alias files, model directories) gets :data:`FILE_MODE` / :data:`DIR_MODE`
whatever the umask and whatever mode a detector's writer chose (safetensors
writes 0600), so a worker under another UID can read what the trainer published.
The umask applies only to the registry root when ``publish`` creates it: to
restrict who may read models, restrict the root (e.g. ``chmod 0750`` and a group).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import uuid
from pathlib import Path
from typing import Any

#: Mode of every published file and directory (see the module docstring).
FILE_MODE = 0o644
DIR_MODE = 0o755
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_renameat2: Any = None


def fsync_file(path: Path) -> None:
    """Flush one file's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_modes(root: Path) -> None:
    """Give every file under ``root`` :data:`FILE_MODE` and every directory :data:`DIR_MODE`.

    Symlinks are left alone (publish refuses them); nothing is followed.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(DIR_MODE if name in dirnames else FILE_MODE)
    root.chmod(DIR_MODE)


def make_dir(path: Path) -> None:
    """``mkdir`` with :data:`DIR_MODE` whatever the umask (``FileExistsError`` if it exists)."""
    path.mkdir()
    path.chmod(DIR_MODE)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root``, directories last."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_file(Path(dirpath, name))
        fsync_dir(Path(dirpath))


def write_json_durable(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to a new file ``path`` and fsync it (not atomic by itself)."""
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask narrowed the mode given to open
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as JSON so a reader sees the old or the new file.

    The temp file lives in the same directory (same filesystem, so ``os.replace`` is
    a single atomic rename) and starts with a dot so listings skip it.
    """
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        write_json_durable(tmp, obj)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _load_renameat2() -> Any:
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [
                ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint,
            ]  # fmt: skip
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (AttributeError, OSError):
            _renameat2 = False
    return _renameat2


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, raising ``FileExistsError`` if ``dst`` exists.

    Plain ``rename(2)`` silently replaces an *empty* directory, so two publishers
    racing for the same version number could both "succeed". Linux's
    ``renameat2(RENAME_NOREPLACE)`` refuses atomically. Where it is unavailable we
    check first and rely on the fact that a published version is never empty (it
    holds ``manifest.json``), which ``rename(2)`` never replaces.
    """
    fn = _load_renameat2()
    if fn:
        rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(e.errno, e.strerror, str(dst)) from e
        raise


def lock_dir(path: Path) -> int:
    """Take an exclusive ``flock`` on a directory; return the fd (close it to unlock).

    A publisher holds this on its temp dir for the whole publish; the kernel drops
    it when the process dies, which is how ``gc`` tells abandoned dirs from live ones.
    """

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def dir_in_use(path: Path) -> bool:
    """True if some live process holds ``lock_dir`` on ``path``."""

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the trial lock
    return False


def newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` or anything under it."""
    newest = path.lstat().st_mtime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                newest = max(newest, Path(dirpath, name).lstat().st_mtime)
            except FileNotFoundError:
                continue
    return newest
