"""Errors of the file server, and the protocol status each one maps to.

::

    FileServerError                 500  base; an errno not listed below
    ├── PathRefused                 403  the path is malformed or leaves its mount root
    │                                    (``..``, NUL, encoded separators, symlinks outward), ELOOP
    ├── ReadOnlyMount               403  a write to a read-only mount, EROFS
    ├── AccessDenied                403  the kernel said EACCES / EPERM
    ├── NameTooLong                 400  ENAMETOOLONG: a name over 255 bytes (or a path too long)
    ├── InvalidName                 400  EILSEQ: a name this filesystem cannot store
    ├── NoSuchMount                 404  the first path segment names no mount
    ├── NotFound                    404  ENOENT, ENOTDIR
    ├── Conflict                    409  EEXIST, EISDIR, ENOTEMPTY, EBUSY, ETXTBSY, EXDEV, EMLINK
    ├── TooLarge                    413  EFBIG: the file would exceed the filesystem's maximum
    ├── Unavailable                 503  EMFILE, ENFILE, ENOMEM, EAGAIN: out of a resource now
    └── InsufficientStorage         507  ENOSPC / EDQUOT

:func:`from_oserror` translates an ``OSError`` from the filesystem into this tree;
:func:`status_for_errno` gives the status alone. ``EINVAL`` stays a 500 on purpose: on Linux
it means a wrong call of ours far more often than a name the filesystem refuses. Every class
has a short ``reason`` that is safe to show to the client (it names no path); the message may
carry more for the log.
"""

from __future__ import annotations

import errno


class FileServerError(Exception):
    status: int = 500
    reason: str = "internal error"


class PathRefused(FileServerError):
    status, reason = 403, "path refused"


class ReadOnlyMount(FileServerError):
    status, reason = 403, "read-only mount"


class AccessDenied(FileServerError):
    status, reason = 403, "permission denied"


class NameTooLong(FileServerError):
    status, reason = 400, "name too long"


class InvalidName(FileServerError):
    status, reason = 400, "invalid name"


class NoSuchMount(FileServerError):
    status, reason = 404, "no such mount"


class NotFound(FileServerError):
    status, reason = 404, "not found"


class Conflict(FileServerError):
    status, reason = 409, "conflict with the current state of the target"


class TooLarge(FileServerError):
    status, reason = 413, "file too large for the filesystem"


class Unavailable(FileServerError):
    status, reason = 503, "temporarily out of resources"


class InsufficientStorage(FileServerError):
    status, reason = 507, "no space left (disk full or quota exceeded)"


_ERRNO_MAP: dict[int, type[FileServerError]] = {
    errno.EACCES: AccessDenied,
    errno.EPERM: AccessDenied,
    errno.EROFS: ReadOnlyMount,
    errno.ELOOP: PathRefused,
    errno.ENAMETOOLONG: NameTooLong,
    errno.EILSEQ: InvalidName,
    errno.ENOENT: NotFound,
    errno.ENOTDIR: NotFound,
    errno.EEXIST: Conflict,
    errno.EISDIR: Conflict,
    errno.ENOTEMPTY: Conflict,
    errno.EBUSY: Conflict,
    errno.ETXTBSY: Conflict,
    errno.EXDEV: Conflict,
    errno.EMLINK: Conflict,
    errno.EFBIG: TooLarge,
    errno.EMFILE: Unavailable,
    errno.ENFILE: Unavailable,
    errno.ENOMEM: Unavailable,
    errno.EAGAIN: Unavailable,
    errno.ENOSPC: InsufficientStorage,
    errno.EDQUOT: InsufficientStorage,
}


def kind_for_errno(number: int | None) -> type[FileServerError]:
    """The error class for an errno; unknown ones are the generic (500) base."""
    return _ERRNO_MAP.get(number or 0, FileServerError)


def status_for_errno(number: int | None) -> int:
    """The HTTP status for an errno (500 for one not listed in the tree above)."""
    return kind_for_errno(number).status


def from_oserror(exc: OSError, what: str) -> FileServerError:
    """The file-server error for ``exc`` (raised while doing ``what``); generic errors stay 500.

    The message names ``what`` and the kernel's words, never the file name in ``exc``.
    """
    kind = kind_for_errno(exc.errno)
    return kind(f"{what}: {exc.strerror or kind.reason}")
