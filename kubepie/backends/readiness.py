"""Is a file server ready? Connect to its unix socket and ask, with its secret.

The probe is ``GET /`` with the per-server secret: the server's auth gate answers 401 to a
wrong secret and its WebDAV front redirects ``/`` to ``/dav/`` otherwise, so a 3xx proves the
process listens, serves HTTP and holds the secret we gave it. Request building and status
parsing are pure; :func:`probe` and :func:`wait_ready` do the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from kubepie.backends.errors import StartFailed, StartTimeout

SECRET_HEADER = "X-KubePie-Server-Secret"  # noqa: S105 (a header name)
#: Seconds between two readiness attempts while a server starts.
POLL_INTERVAL = 0.005


def probe_request(secret: str) -> bytes:
    """The readiness request for a server holding ``secret``."""
    return (
        "GET / HTTP/1.1\r\nHost: kubepie-fileserver\r\n"
        f"{SECRET_HEADER}: {secret}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


def status_of(status_line: bytes) -> int | None:
    """The status code of an HTTP/1.x status line, or None when it is not one."""
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    return int(parts[1])


def answered_ready(status: int | None) -> bool:
    """A redirect from ``/`` to ``/dav/``: the server is up and accepted our secret."""
    return status is not None and 300 <= status < 400


async def probe(socket_path: Path, secret: str, limit: float) -> bool:
    """True when the server on ``socket_path`` answers the probe within ``limit`` seconds."""
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            try:
                writer.write(probe_request(secret))
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return answered_ready(status_of(line))


async def wait_ready(
    socket_path: Path, secret: str, *, limit: float, exited: asyncio.Future[int | None]
) -> None:
    """Return once the server is ready.

    Raises :class:`StartFailed` when its process exits first (``exited`` resolves with its exit
    status), :class:`StartTimeout` after ``limit`` seconds.
    """
    deadline = time.monotonic() + limit
    while True:
        if exited.done():
            raise StartFailed(f"the file server exited before it was ready ({_status(exited)})")
        left = deadline - time.monotonic()
        if left <= 0:
            raise StartTimeout(f"the file server was not ready within {limit:g} s")
        if await probe(socket_path, secret, min(left, 1.0)):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_INTERVAL):
                await asyncio.shield(exited)


def _status(exited: asyncio.Future[int | None]) -> str:
    status = exited.result()
    if status is None:
        return "the backend helper process is gone"
    if status < 0:
        return f"killed by signal {-status}"
    return f"exit status {status}"
