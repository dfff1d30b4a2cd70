"""A tiny JSON-over-HTTP/1.1 server for the sidecars' loopback endpoints (asyncio streams).

Only ``GET``, one request per connection, bodies are JSON. The sidecars need nothing more, and
the notebook image should not need a web framework to run them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[], Awaitable[tuple[int, Any]]]

_MAX_HEADER = 16 * 1024


def _response(status: int, body: Any) -> bytes:
    payload = json.dumps(body).encode()
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + payload


async def _serve(
    routes: Mapping[str, Handler], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        if len(head) > _MAX_HEADER:
            raise ValueError("header too large")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        path = target.split("?", 1)[0]
        handler = routes.get(path)
        if method != "GET":
            data = _response(405, {"error": "only GET"})
        elif handler is None:
            data = _response(404, {"error": f"no such path {path}"})
        else:
            status, body = await handler()
            data = _response(status, body)
        writer.write(data)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve_json(routes: Mapping[str, Handler], host: str, port: int) -> asyncio.Server:
    """Start serving ``routes`` (path → handler) on ``host:port``; the caller closes it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve(routes, reader, writer)

    return await asyncio.start_server(handle, host, port, limit=_MAX_HEADER)
