"""The router's HTTP/1.1 client against a real uvicorn server on a unix socket: every response
framing (Content-Length, chunked, none), HEAD, 204/304, keep-alive reuse and its limits."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kubepie.router.errors import UpstreamUnavailable
from kubepie.router.upstream import UpstreamPool, request_head

BLOCK = b"x" * 100_000


async def _stream(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield BLOCK

    return StreamingResponse(parts())


async def _sized(request: Request) -> Response:
    return Response(BLOCK * 30)


async def _empty(request: Request) -> Response:
    return Response(status_code=204)


async def _echo(request: Request) -> Response:
    return Response(await request.body())


APP = Starlette(
    routes=[
        Route("/stream", _stream),
        Route("/sized", _sized, methods=["GET", "HEAD"]),
        Route("/empty", _empty),
        Route("/echo", _echo, methods=["PUT"]),
    ]
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    path = tmp_path / "up.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    config = uvicorn.Config(APP, lifespan="off", log_level="warning", http="httptools")
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve(sockets=[sock]))
    for _ in range(500):
        if instance.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"unix:{path}"
    finally:
        instance.should_exit = True
        await task
        sock.close()


async def _get(
    pool: UpstreamPool, address: str, method: str, target: str, body: bytes = b""
) -> tuple[int, bytes, bool]:
    conn = await pool.acquire(address)
    head = conn.start(head_only=method == "HEAD")
    headers = [(b"host", b"up"), (b"content-length", str(len(body)).encode())]
    await conn.write(request_head(method, target.encode(), headers) + body)
    status = (await head).status
    data = b"".join([chunk async for chunk in conn.body()])
    reusable = conn.reusable
    pool.release(conn)
    return status, data, reusable


async def test_every_framing_and_keep_alive(server: str) -> None:
    pool = UpstreamPool()
    try:
        assert await _get(pool, server, "GET", "/sized") == (200, BLOCK * 30, True)
        assert await _get(pool, server, "GET", "/stream") == (200, BLOCK * 30, True)
        assert await _get(pool, server, "HEAD", "/sized") == (200, b"", True)
        assert await _get(pool, server, "GET", "/empty") == (204, b"", True)
        assert await _get(pool, server, "PUT", "/echo", b"hello") == (200, b"hello", True)
        assert pool.open_connections == 1  # one connection served all of them
        assert (await _get(pool, server, "GET", "/nothing"))[0] == 404
        pool.sweep(time.monotonic() + 60)  # much later: idle connections are closed, dropped
        assert pool.open_connections == 0
        assert await _get(pool, server, "GET", "/sized") == (200, BLOCK * 30, True)
    finally:
        await pool.aclose()


async def test_unreachable_upstream_is_unavailable(tmp_path: Path) -> None:
    pool = UpstreamPool()
    with pytest.raises(UpstreamUnavailable):
        await pool.acquire(f"unix:{tmp_path}/missing.sock")
    with pytest.raises(UpstreamUnavailable):
        await pool.acquire("127.0.0.1:9")
    await pool.aclose()
