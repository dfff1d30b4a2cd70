"""The router's HTTP/1.1 connections, bounded: uvicorn's httptools protocol with limits.

uvicorn bounds neither the size of a request head (httptools keeps appending to a header value
as long as bytes come) nor the time a client may take: a connection that sends nothing, half a
head, or a body that stops, is held for ever. Each one costs a descriptor and memory, so a few
hundred of them take the router down. :class:`ConnectionLimits` bounds every connection of a
listener (main and S3 alike):

* **Head size and header count.** Bytes of a head still incomplete are counted as they arrive
  (memory stays within ``max_head_size`` plus one read); a complete head is measured exactly.
  Too large, or more than ``max_headers`` fields: ``431`` and the connection is closed.
* **Head time.** From its first byte a head must be complete within ``head_timeout``, or
  ``408`` and close (a slow-loris client).
* **Body progress.** A request body must make progress every ``body_timeout`` seconds while
  the router is reading it (not while the router itself holds reading back, and not before it
  has asked for the body of an ``Expect: 100-continue`` request): ``408`` when no answer was
  started yet, else the connection is closed; the handler sees the client gone.
* **Idle.** A new connection that sends nothing, and a kept-alive one between requests, is
  closed after ``idle_timeout``.
* **Connections.** Beyond ``max_connections`` open connections of a listener, a new one is
  answered ``503`` and closed at once, before it can hold anything.

After a 431 or 408 the connection closes lingering, as nginx does: the answer is sent, then the
write side is shut, and what the client still sends is read and dropped for up to
:data:`LINGER_SECONDS` (at most :data:`LINGER_BYTES`), so that the client reads the answer
instead of a reset.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger("kubepie.router")

#: Bytes of a request line and of each header line besides the parts httptools hands over
#: (method, spaces, version, ``: ``, CRLF): used to measure a complete head.
_REQUEST_LINE_OVERHEAD = 16
_HEADER_LINE_OVERHEAD = 4
#: How long, and for how many bytes, a refused connection keeps reading before it closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on each client connection of one listener (see the module docstring)."""

    max_head_size: int
    max_headers: int
    head_timeout: float
    body_timeout: float
    idle_timeout: int
    max_connections: int


def bounded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class a uvicorn ``Config(http=...)`` takes, bound to ``limits``."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limits": limits})


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ConnectionLimits` (use
    :func:`bounded_protocol` for a class bound to a listener's limits)."""

    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._refused = False
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._lingered = 0

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning(
                "refusing a connection: %d connections are open on this listener",
                len(self.connections) - 1,
            )
            self._refuse(503, "Too many connections; try again later.", linger=False)
            return
        # Idle until its first byte, like a kept-alive connection between requests.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._cancel(self._linger_timer)
        self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering: drop what the client still sends
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.transport.close()
            return
        was_in_head = self._in_head
        if was_in_head and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_expired)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if was_in_head and self._in_head:  # still no complete head: count what it holds
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_size:
                self._refuse(431, "Request header fields too large.")

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count <= self.limits.max_headers:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._cancel(self._head_timer)
        self._head_timer = None
        self._in_head = False
        size = _REQUEST_LINE_OVERHEAD + len(self.url)
        size += sum(len(n) + len(v) + _HEADER_LINE_OVERHEAD for n, v in self.headers)
        too_many = self._header_count > self.limits.max_headers
        self._header_count = 0
        self._head_bytes = 0
        if too_many or size > self.limits.max_head_size:
            self._refuse(431, "Request header fields too large.")
            return
        super().on_headers_complete()
        self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        super().on_body(body)
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel(self._body_timer)
        self._body_timer = None
        self._in_head = True
        super().on_message_complete()

    # -- timers ----------------------------------------------------------------------------

    def _arm_body_timer(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._in_head and not self._refused and not self.transport.is_closing():
            self._refuse(408, "Request header timeout.")

    def _body_expired(self) -> None:
        self._body_timer = None
        if self._refused or self.transport.is_closing() or self.cycle is None:
            return
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            self._arm_body_timer()  # the router holds reading back, not the client
            return
        self._refuse(408, "Request body timeout.")

    # -- refusing --------------------------------------------------------------------------

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()  # the client has stopped sending: no need to linger

    def _refuse(self, status: int, reason: str, *, linger: bool = True) -> None:
        """Answer ``status`` (unless an answer was started) and close the connection,
        lingering (see the module docstring); the handler of a request in progress sees the
        client gone."""
        self._refused = True
        self._cancel_timers()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if status != 503:
            log.info("closing a client connection: %s (%d)", reason, status)
        if not started:
            body = reason.encode("ascii")
            self.transport.write(
                b"".join(
                    (
                        STATUS_LINE[status],
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n",
                        body,
                    )
                )
            )
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _cancel_timers(self) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
