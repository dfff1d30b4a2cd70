"""Transfer accounting (PieTrack): one JSON line per request.

Fields: ``time`` (ISO 8601 UTC), ``issuer``, ``sub``, ``username``, ``uid``, ``auth``
(session/bearer/basic/sigv4, or ``none`` when authentication failed), ``method``, ``mount``,
``path``, ``status``, ``bytes_in``, ``bytes_out``, ``duration_s``; plus ``credential`` (the
credential *id*, never its secret) when an app credential was used. Never a token, a secret, a
cookie or a query string (presigned URLs carry signatures there).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from kubepie.router.access import Principal


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
    def open(cls, path: Path | None) -> AccountingLog:
        if path is None:
            return cls(sys.stdout)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path.open("a", encoding="utf-8", buffering=1))

    def write(self, record: RequestRecord) -> None:
        self._stream.write(record.line(time.monotonic(), time.time()) + "\n")

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()
