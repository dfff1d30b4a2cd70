"""Transfer accounting (PieTrack): one JSON line per request.

Fields: ``time`` (ISO 8601 UTC), ``issuer``, ``sub``, ``username``, ``uid``, ``auth``
(session/bearer/basic/sigv4, or ``none`` when authentication failed), ``method``, ``mount``,
``path``, ``status``, ``bytes_in``, ``bytes_out``, ``duration_s``; plus ``credential`` (the
credential *id*, never its secret) when an app credential was used. Never a token, a secret, a
cookie or a query string (presigned URLs carry signatures there).

The file holds who read and wrote which paths, so it is private: created ``0600``, or ``0640``
and given to ``accounting.group`` when one is configured (a log shipper's group). An existing
file with wider permissions is narrowed to that mode, with a warning.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import stat
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from kubepie.router.access import Principal
from kubepie.router.errors import AccountingFileError

log = logging.getLogger("kubepie.router")

#: Mode of the accounting file without, and with, a reader group.
PRIVATE_MODE = 0o600
GROUP_MODE = 0o640


@dataclass(slots=True)
class RequestRecord:
    """What one request did; filled in while it runs."""

    method: str
    path: str
    mount: str | None = None
    principal: Principal | None = None
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = 0.0

    def line(self, now: float, wall: float) -> str:
        """The JSON line (pure given the times)."""
        p = self.principal
        entry = {
            "time": datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds"),
            "issuer": p.identity.issuer if p else None,
            "sub": p.identity.sub if p else None,
            "username": p.identity.username if p else None,
            "uid": p.identity.uid if p else None,
            "auth": p.method.value if p else "none",
            "credential": p.credential.id if p and p.credential else None,
            "method": self.method,
            "mount": self.mount,
            "path": self.path,
            "status": self.status,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "duration_s": round(now - self.started, 6),
        }
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


class AccountingLog:
    """Appends lines to a file (opened in lifespan) or a stream (standard output)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    @classmethod
    def open(cls, path: Path | None, group: str | None = None) -> AccountingLog:
        """Append to ``path`` (standard output when None), readable only by this process's
        user, or also by ``group`` (a name or a number)."""
        if path is None:
            return cls(sys.stdout)
        path.parent.mkdir(parents=True, exist_ok=True)
        gid = None if group is None else _group_id(group)
        mode = PRIVATE_MODE if gid is None else GROUP_MODE
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, mode)
        except OSError as exc:
            raise AccountingFileError(
                f"cannot open the accounting file {path}: {exc.strerror}"
            ) from exc
        try:
            _restrict(fd, path, mode, gid)
        except OSError as exc:
            os.close(fd)
            raise AccountingFileError(
                f"cannot set the permissions of the accounting file {path}: {exc.strerror}"
            ) from exc
        return cls(os.fdopen(fd, "a", encoding="utf-8", buffering=1))

    def write(self, record: RequestRecord) -> None:
        self._stream.write(record.line(time.monotonic(), time.time()) + "\n")

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()


def _group_id(group: str) -> int:
    """The gid of ``group`` (a name, or a number written as digits)."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise AccountingFileError(
            f"accounting.group: there is no group {group!r} on this system"
        ) from None


def _restrict(fd: int, path: Path, mode: int, gid: int | None) -> None:
    """Give the open file ``fd`` exactly ``mode`` (and group ``gid``), warning when an existing
    file was readable more widely."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(0, "not a regular file")
    if gid is not None and info.st_gid != gid:
        os.fchown(fd, -1, gid)
    current = stat.S_IMODE(info.st_mode)
    if current != mode:
        if current & ~mode:
            log.warning(
                "accounting file %s had mode %04o; narrowed to %04o (it names users' paths)",
                path,
                current,
                mode,
            )
        os.fchmod(fd, mode)
