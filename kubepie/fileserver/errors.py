"""Errors of the file server, and the protocol status each one maps to.

::

    FileServerError                 base
    ├── PathRefused                 403  the path is malformed or leaves its mount root
    │                                    (``..``, NUL, encoded separators, symlinks outward)
    ├── ReadOnlyMount               403  a write to a read-only mount
    ├── AccessDenied                403  the kernel said EACCES / EPERM
    ├── NoSuchMount                 404  the first path segment names no mount
    ├── NotFound                    404  ENOENT
    └── InsufficientStorage         507  ENOSPC / EDQUOT

:func:`from_oserror` translates an ``OSError`` from the filesystem into this tree.
"""

from __future__ import annotations

import errno


class FileServerError(Exception):
    status: int = 500


class PathRefused(FileServerError):
    status = 403


class ReadOnlyMount(FileServerError):
    status = 403


class AccessDenied(FileServerError):
    status = 403


class NoSuchMount(FileServerError):
    status = 404


class NotFound(FileServerError):
    status = 404


class InsufficientStorage(FileServerError):
    status = 507


_ERRNO_MAP: dict[int, type[FileServerError]] = {
    errno.EACCES: AccessDenied,
    errno.EPERM: AccessDenied,
    errno.EROFS: ReadOnlyMount,
    errno.ENOENT: NotFound,
    errno.ENOTDIR: NotFound,
    errno.ENOSPC: InsufficientStorage,
    errno.EDQUOT: InsufficientStorage,
}


def from_oserror(exc: OSError, what: str) -> FileServerError:
    """The file-server error for ``exc`` (raised while doing ``what``); generic errors stay 500."""
    kind = _ERRNO_MAP.get(exc.errno or 0, FileServerError)
    return kind(f"{what}: {exc.strerror or exc}")
