"""Atomic replacement of a file by an upload: temp file next to the target, then rename.

Both PUT paths (wsgidav's, :mod:`kubepie.fileserver.dav_provider`, and the plain fast path,
:mod:`kubepie.fileserver.dav_put`) write through :class:`Upload` and finish with
:meth:`Upload.commit`: readers see the old version until the new one is complete, and a failed
or cut upload only ever leaves (then removes) a hidden temporary file.

Replacing by rename needs write permission on the *directory*; the kernel would also let a
user rename over a file they may not write (when the directory is not sticky). To keep the
meaning of a PUT ("write this file"), :func:`check_replaceable` refuses an existing file that
the user cannot write, exactly as an in-place ``open(O_TRUNC)`` would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

from kubepie.fileserver.dav_props import copy_dead_properties

#: Marks the temporary file of an upload in progress; such names are hidden from listings.
UPLOAD_MARK = ".kubepie-upload-"


def new_upload_path(directory: str, name: str) -> str:
    """A fresh temporary name for an upload of ``name`` in ``directory`` (hidden in listings)."""
    return os.path.join(directory, f".{name}{UPLOAD_MARK}{secrets.token_hex(6)}")


def is_upload_name(name: str) -> bool:
    return name.startswith(".") and UPLOAD_MARK in name


def check_replaceable(target: str) -> None:
    """Raise ``PermissionError`` when ``target`` exists and this process may not write it."""
    if os.path.lexists(target) and not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)


class Upload:
    """The temporary file of one PUT, counting the bytes written to it."""

    def __init__(self, target: str) -> None:
        check_replaceable(target)
        self.target = target
        self.path = new_upload_path(os.path.dirname(target), os.path.basename(target))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.fd = os.open(self.path, flags, 0o666)
        self.written = 0
        #: A hidden extra link to the replaced version, dropped by :meth:`release_old`.
        self.retired: str | None = None

    def write(self, data: bytes | bytearray) -> int:
        view = memoryview(data)
        while view:
            count = os.write(self.fd, view)
            view = view[count:]
            self.written += count
        return len(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Close and remove the temporary file (the target is untouched)."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def commit(self) -> os.stat_result:
        """Rename the complete upload over the target; it keeps the old mode, group and dead
        properties. Returns the new file's stat. On failure the temporary file is removed."""
        self.close()
        try:
            check_replaceable(self.target)
            try:
                old = os.stat(self.target)
            except FileNotFoundError:
                pass
            else:
                os.chmod(self.path, stat.S_IMODE(old.st_mode))
                with contextlib.suppress(OSError):
                    os.chown(self.path, -1, old.st_gid)
                copy_dead_properties(self.target, self.path)
                self.retired = self._keep_old_alive()
            os.replace(self.path, self.target)
            return os.stat(self.target)
        except BaseException:
            self.discard()
            self.release_old()
            raise

    def _keep_old_alive(self) -> str | None:
        """Link the old version under a hidden name, so that the rename does not free its
        blocks (a third of a second for 1 GiB on ext4) while the client waits for the answer.
        None when the link is not allowed (e.g. ``fs.protected_hardlinks``): then the rename
        frees the old version itself."""
        name = new_upload_path(os.path.dirname(self.target), os.path.basename(self.target))
        try:
            os.link(self.target, name, follow_symlinks=False)
        except OSError:
            return None
        return name

    def release_old(self) -> None:
        """Drop the replaced version (call after answering; slow for large files)."""
        retired, self.retired = self.retired, None
        if retired is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(retired)
