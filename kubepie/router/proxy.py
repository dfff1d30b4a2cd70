"""Forward one ASGI request to a file server and stream the answer back.

* Bodies stream in both directions and are never held whole: the request body goes to the
  file server as uvicorn hands it over, the response body leaves as the file server sends it
  (with back-pressure, see :mod:`kubepie.router.upstream`).
* Hop-by-hop headers are dropped both ways; so are the client's ``Authorization``, ``Cookie``
  and every ``X-KubePie-*`` header (the file server must see neither user secrets nor
  anything the client claims about itself). The per-server secret is added. Which headers
  go is decided once, by :func:`kubepie.router.headers.prepare`; callers pass the
  :class:`~kubepie.router.headers.RequestHeaders` they took their decisions from.
* A client that goes away aborts the upstream exchange at once (the file server sees its
  connection close; an upload in flight is not committed).
* :class:`~kubepie.router.errors.UpstreamUnavailable` is raised only while nothing of the
  request has been consumed, so the caller may restart the server and try again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Receive, Send

from kubepie.router.errors import UpstreamBroken, UpstreamUnavailable
from kubepie.router.headers import HOP_BY_HOP, RequestHeaders, prepare, upstream
from kubepie.router.upstream import Headers, ResponseHead, UpstreamPool, request_head

#: Called with each piece of the request body before it is forwarded, and with ``b""`` once
#: the body has ended; raising stops the exchange (the file server sees the connection drop).
BodyCheck = Callable[[bytes], None]


@dataclass(slots=True)
class Transfer:
    """Counters of one forwarded exchange."""

    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    started_response: bool = False


def upstream_headers(
    client: Iterable[tuple[bytes, bytes]] | RequestHeaders,
    secret: str,
    *,
    replace: dict[bytes, bytes] | None = None,
) -> tuple[Headers, int | None, bool]:
    """Headers for the file server, the request's content length and whether it is chunked.

    Pure. ``client`` is the request's raw headers or, better, the :class:`RequestHeaders` the
    caller took its decisions from (:func:`kubepie.router.headers.prepare`). ``replace`` sets
    headers (lower-case names) to new values, e.g. a rewritten ``Destination``.
    """
    request = client if isinstance(client, RequestHeaders) else prepare(client)
    out = upstream(request, secret.encode("latin-1"), replace)
    return out, request.length, request.chunked


def response_headers(upstream: Headers) -> Headers:
    """The file server's headers minus hop-by-hop ones (content-length is kept). Pure."""
    tokens: set[bytes] = set()
    for name, value in upstream:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return [
        (name, value)
        for name, value in upstream
        if name == b"content-length" or (name not in HOP_BY_HOP and name not in tokens)
    ]


async def forward(
    pool: UpstreamPool,
    address: str,
    secret: str,
    *,
    method: str,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]] | RequestHeaders,
    receive: Receive,
    send: Send,
    transfer: Transfer,
    replace: dict[bytes, bytes] | None = None,
    body_check: BodyCheck | None = None,
) -> None:
    """Send the request to ``address`` and stream the response to ``send``; see the module."""
    out_headers, length, chunked = upstream_headers(headers, secret, replace=replace)
    conn = await pool.acquire(address)  # UpstreamUnavailable: nothing consumed yet
    head_future = conn.start(head_only=method == "HEAD")
    disconnected = asyncio.Event()
    body_sent = False
    clean = False
    pump: asyncio.Task[None] | None = None

    async def pump_body() -> None:
        """Forward the request body, then watch for the client going away (one task)."""
        nonlocal body_sent
        more = chunked or bool(length)
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                conn.abort()
                return
            if not more:
                continue  # nothing more is expected but the disconnect
            data: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if data:
                if body_check is not None:
                    body_check(data)
                transfer.bytes_in += len(data)
                if chunked:
                    await conn.write(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    await conn.write(data)
            if not more:
                if body_check is not None:
                    body_check(b"")  # the end of the body: the checker verifies it is complete
                if chunked:
                    await conn.write(b"0\r\n\r\n")
                body_sent = True

    try:
        try:
            await conn.write(request_head(method, target, out_headers))
        except UpstreamBroken as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        if not (chunked or length):
            body_sent = True  # nothing to send; the pump only watches for a disconnect
        pump = asyncio.create_task(pump_body())
        try:
            head = await _first(head_future, pump)
        except UpstreamBroken as exc:
            if transfer.bytes_in == 0 and not disconnected.is_set():
                raise UpstreamUnavailable(str(exc)) from exc
            raise
        transfer.status = head.status
        await send(
            {
                "type": "http.response.start",
                "status": head.status,
                "headers": response_headers(head.headers),
            }
        )
        transfer.started_response = True
        try:
            async for chunk in conn.body():
                transfer.bytes_out += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamBroken:
            if disconnected.is_set():
                return  # we aborted it: the client went away
            raise
        if disconnected.is_set():
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        clean = body_sent and not disconnected.is_set()
    finally:
        if pump is not None:
            if not pump.done():
                pump.cancel()
            # Wait for it and retrieve its outcome: a body pump that failed after the answer
            # came (the file server answered early and closed) is not an error of this request.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        if clean:
            pool.release(conn)
        else:
            pool.discard(conn)


async def _first(head: asyncio.Future[ResponseHead], pump: asyncio.Task[None]) -> ResponseHead:
    """The response head; a failure of the body pump (client gone, bad chunk) wins first."""
    waiting: set[asyncio.Future[Any]] = {head, pump}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if pump in done:
        error = pump.exception()
        if error is not None:
            head.cancel()
            raise error
    return await head
