"""A lean HTTP/1.1 client for the router's data path: one user's file server at a time.

Why not httpx: a streaming httpx proxy reaches a fifth of nginx on this machine (see the
baselines note). Here each connection is an :class:`asyncio.Protocol` whose bytes go straight
into the C parser of ``httptools``; response body pieces are handed to the consumer as the
``bytes`` objects the event loop produced, with no copy and no per-chunk Python object beyond
one queue entry. Flow control in both directions: reading from the file server pauses while
more than :data:`HIGH_WATER` bytes wait for the client, and request bodies wait for the
transport's ``resume_writing``.

Connections are kept alive and pooled per upstream address for at most :data:`IDLE_S`, below
uvicorn's 5 s keep-alive, so a pooled connection is not one the server is about to close.
Errors are :class:`~kubepie.router.errors.UpstreamUnavailable` (could not connect: the caller
may restart the server and retry) and :class:`~kubepie.router.errors.UpstreamBroken` (the
connection failed during the exchange: never retried, the body may be half sent).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import httptools

from kubepie.router.errors import UpstreamBroken, UpstreamUnavailable

#: Response body bytes buffered in the router per connection before reading pauses (2 MiB:
#: two 1 MiB reads, so the file server never waits on a full buffer while we send).
HIGH_WATER = 2 * 1024 * 1024
#: Seconds an idle pooled connection is kept; below uvicorn's default keep-alive of 5 s.
IDLE_S = 4.0
#: Most idle connections kept per upstream address.
MAX_IDLE = 16
#: Longest response head accepted from a file server.
MAX_HEAD = 64 * 1024
#: Seconds to wait for a connection to the file server.
CONNECT_TIMEOUT_S = 5.0

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    headers: Headers


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, parses the response with httptools."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False
        self._parse_body = False
        self._raw_remaining: int | None = None
        self._keep_alive = False
        self._head_buffer = b""
        self._headers: Headers = []
        self._head: asyncio.Future[ResponseHead] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._body_event = asyncio.Event()
        self._complete = False
        self._error: BaseException | None = None
        self._paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the Transport interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._raw_remaining == -1:  # a body delimited by the connection's end
            self._message_done()
        if not self._complete:
            self._fail(UpstreamBroken("the file server closed the connection"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # nothing asked: a stray byte means the connection is unusable
            self.abort()
            return
        try:
            if self._raw_remaining is not None:
                self._raw(data)
            elif self._parse_body:
                self._parser.feed_data(data)
            else:
                self._read_head(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"malformed response from the file server: {exc}"))
            self.abort()

    def _read_head(self, data: bytes) -> None:
        """Feed only the head to httptools, then choose how to read the body.

        A ``Content-Length`` body is then sliced here, without the parser: httptools would copy
        every piece into a new ``bytes`` object, which costs a fifth of the throughput. Chunked
        bodies go through the parser. The response to HEAD has no body whatever it announces.
        """
        self._head_buffer += data
        end = self._head_buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head_buffer) > MAX_HEAD:
                raise httptools.HttpParserError("response head too large")
            return
        head, rest = self._head_buffer[: end + 4], self._head_buffer[end + 4 :]
        self._head_buffer = b""
        self._parser.feed_data(head)
        status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        if self._complete:  # Content-Length: 0
            pass
        elif self._head_only or status in (204, 304) or 100 <= status < 200:
            self._message_done()
        elif _is_chunked(self._headers):
            self._parse_body = True
            if rest:
                self._parser.feed_data(rest)
            return
        else:
            length = _content_length(self._headers)
            self._raw_remaining = length if length is not None else -1
            if length is None:
                self._keep_alive = False  # the body ends when the connection does
            if rest:
                self._raw(rest)
            return
        if rest:
            self.closed = True  # bytes after a complete response: do not reuse

    def _raw(self, data: bytes) -> None:
        remaining = self._raw_remaining
        assert remaining is not None
        if remaining >= 0 and len(data) > remaining:
            data = data[:remaining]
            self.closed = True  # more than announced: do not reuse
        if data:
            self._push(data)
        if remaining >= 0:
            self._raw_remaining = remaining - len(data)
            if self._raw_remaining == 0:
                self._message_done()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result(ResponseHead(self._parser.get_status_code(), self._headers))

    def on_body(self, body: bytes) -> None:
        self._push(body)

    def _push(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self._body_event.set()
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _message_done(self) -> None:
        self._complete = True
        self._body_event.set()

    def on_message_complete(self) -> None:
        self._message_done()

    # -- used by the pool and the proxy ------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._body_event.set()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def start(self, head_only: bool) -> asyncio.Future[ResponseHead]:
        self._head = asyncio.get_running_loop().create_future()
        self._head_only = head_only
        self._parse_body = False
        self._raw_remaining = None
        self._keep_alive = False
        self._head_buffer = b""
        self._headers = []
        self._chunks.clear()
        self._buffered = 0
        self._complete = False
        self._error = None
        self._parser = httptools.HttpResponseParser(self)
        return self._head

    async def write(self, data: bytes | memoryview) -> None:
        if self.closed or self.transport is None:
            raise UpstreamBroken("the file server closed the connection")
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()
            if self.closed:
                raise UpstreamBroken("the file server closed the connection")

    async def body(self) -> AsyncIterator[bytes]:
        """The response body, piece by piece, as it arrives."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= HIGH_WATER // 2:
                    self._paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
                yield chunk
            if self._complete:
                return
            if self._error is not None:
                raise self._error
            self._body_event.clear()
            await self._body_event.wait()

    @property
    def reusable(self) -> bool:
        return self._complete and not self.closed and self._error is None and self._keep_alive


class UpstreamPool:
    """Keep-alive connections to file servers, by address (``unix:/path`` or ``host:port``)."""

    def __init__(self) -> None:
        self._idle: dict[str, collections.deque[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._swept = time.monotonic()

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or in use."""
        return len(self._all)

    async def _connect(self, address: str) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                if address.startswith("unix:"):
                    _, conn = await loop.create_unix_connection(
                        lambda: _Connection(address), address[len("unix:") :]
                    )
                else:
                    host, _, port = address.rpartition(":")
                    _, conn = await loop.create_connection(
                        lambda: _Connection(address), host.strip("[]"), int(port)
                    )
        except (OSError, TimeoutError, ValueError) as exc:
            raise UpstreamUnavailable(f"cannot connect to the file server: {exc}") from exc
        self._all.add(conn)
        return conn

    def sweep(self, now: float) -> None:
        """Drop expired idle connections of every address (servers come and go)."""
        self._swept = now
        for address, idle in list(self._idle.items()):
            for conn in [c for c in idle if c.closed or now - c.idle_since >= IDLE_S]:
                idle.remove(conn)
                self.discard(conn)
            if not idle:
                del self._idle[address]

    async def acquire(self, address: str) -> _Connection:
        now = time.monotonic()
        if now - self._swept > IDLE_S:
            self.sweep(now)
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            self.discard(conn)
        return await self._connect(address)

    def release(self, conn: _Connection) -> None:
        if not conn.reusable:
            self.discard(conn)
            return
        idle = self._idle.setdefault(conn.address, collections.deque())
        if len(idle) >= MAX_IDLE:
            self.discard(idle.popleft())
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def discard(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if not conn.closed:
            conn.abort()

    def forget(self, address: str) -> None:
        """Close the idle connections to ``address`` (its server was restarted or is gone)."""
        for conn in self._idle.pop(address, ()):
            self.discard(conn)

    async def aclose(self) -> None:
        for conn in list(self._all):
            self.discard(conn)
        self._idle.clear()


def _is_chunked(headers: Headers) -> bool:
    return any(n == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers)


def _content_length(headers: Headers) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise httptools.HttpParserError("malformed Content-Length") from None
    return None


def request_head(method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, ready to write. Pure."""
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"
