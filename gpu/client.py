"""Client of the node daemon API (standard library only: it runs inside user containers).

See :mod:`gpu.daemon` for the protocol. The socket path comes from ``--socket``, else
``$KUBEPIE_GPU_DAEMON_SOCKET`` (set by the device plugin's Allocate), else the default.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from gpu.errors import CallerUnknownError, DaemonError, DaemonUnavailableError, ForbiddenError

SOCKET_ENV = "KUBEPIE_GPU_DAEMON_SOCKET"
DEFAULT_SOCKET = Path("/run/kubepie-gpu/daemon.sock")
_BY_STATUS: dict[int, type[DaemonError]] = {401: CallerUnknownError, 403: ForbiddenError}


def default_socket() -> Path:
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


def read_token(path: Path | None) -> str | None:
    return None if path is None else path.read_text().strip()


async def query(socket_path: Path, request: dict[str, Any], timeout_s: float = 10.0) -> Any:
    """Send one request; the ``result`` of a successful answer, else a :class:`DaemonError`."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(socket_path)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        raise DaemonUnavailableError(
            f"cannot reach the GPU daemon at {socket_path}: {exc}"
        ) from exc
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise DaemonUnavailableError(f"unreadable answer from {socket_path}") from exc
    if reply.get("ok"):
        return reply.get("result")
    status = int(reply.get("status", 500))
    error = _BY_STATUS.get(status, DaemonError)(str(reply.get("error", "request failed")))
    error.status = status
    raise error
