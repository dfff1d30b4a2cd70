"""File operations on descriptors (``*at`` calls), for callers that resolved a path once.

Everything here takes descriptors obtained beneath a mount root
(:meth:`kubepie.fileserver.mounts.Mount.open` / :meth:`~kubepie.fileserver.mounts.Mount.
open_parent`) and names relative to them; nothing resolves a path from ``/`` again, so a
symlink swapped in after the check cannot redirect the operation. Blocking: run in threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections import OrderedDict

from kubepie.fileserver.beneath import fd_path

_COPY_BLOCK = 1 << 20


def lstat_at(directory: int, name: str) -> os.stat_result:
    """``lstat`` of ``name`` in ``directory`` (a symlink is the link itself)."""
    return os.stat(name, dir_fd=directory, follow_symlinks=False)


def remove_at(directory: int, name: str) -> None:
    """Remove ``name`` from ``directory``: a file or symlink is unlinked, a directory removed
    with everything below it (``shutil.rmtree`` with ``dir_fd``: descriptor-based, never
    follows a symlink)."""
    if stat.S_ISDIR(lstat_at(directory, name).st_mode):
        if not shutil.rmtree.avoids_symlink_attacks:
            raise OSError(errno.ENOTSUP, "no symlink-safe recursive delete on this platform")
        shutil.rmtree(name, dir_fd=directory)
    else:
        os.unlink(name, dir_fd=directory)


def copy_content(src: int, dst: int) -> int:
    """Copy all of ``src`` (from offset 0) to ``dst``'s current position; answers the size."""
    total = 0
    while True:
        try:
            count = os.copy_file_range(src, dst, _COPY_BLOCK, total)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            break
        if count == 0:
            return total
        total += count
    while True:
        data = os.pread(src, _COPY_BLOCK, total)
        if not data:
            return total
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view) :]
        total += len(data)


def copy_attributes(src: int, dst: int, *, xattr_prefix: str = "user.") -> None:
    """Mode, times and ``user.*`` xattrs of ``src`` onto ``dst`` (what ``shutil.copy2`` /
    ``copystat`` copy), both open descriptors; best effort for the xattrs."""
    st = os.fstat(src)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        for name in os.listxattr(src):
            if name.startswith(xattr_prefix):
                with contextlib.suppress(OSError):
                    os.setxattr(dst, name, os.getxattr(src, name))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def mount_id(fd: int) -> int:
    """The id of the mount (vfsmount) that ``fd`` lies on; ``rename`` works only within one.

    Two bind mounts of the same filesystem share ``st_dev`` but not this id. ``-1`` where
    ``/proc`` does not say.
    """
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
            for line in info:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return -1


class Descriptors:
    """``O_PATH`` descriptors of files one request works on, by key, and a ``/proc`` path
    naming each (for calls that take no descriptor, e.g. wsgidav's property manager).

    At most ``limit`` stay open (the oldest are closed first): a caller uses a path right
    after getting it. :meth:`close` closes the rest; so does garbage collection.
    """

    def __init__(self, limit: int = 16) -> None:
        self._open: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def get(self, key: str) -> str | None:
        fd = self._open.get(key)
        if fd is None:
            return None
        self._open.move_to_end(key)
        return fd_path(fd)

    def put(self, key: str, fd: int) -> str:
        """Keep ``fd`` (now owned here) under ``key``; answers its path."""
        old = self._open.pop(key, None)
        if old is not None:
            os.close(old)
        self._open[key] = fd
        while len(self._open) > self._limit:
            os.close(self._open.popitem(last=False)[1])
        return fd_path(fd)

    def close(self) -> None:
        while self._open:
            with contextlib.suppress(OSError):
                os.close(self._open.popitem()[1])

    def __del__(self) -> None:
        self.close()
