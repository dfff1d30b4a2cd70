"""A bound on the request head (request line and headers) of the file server's listeners.

uvicorn's httptools protocol keeps every byte of a request head until the head is complete:
a client that sends one endless header line (64 MiB in the review's test) makes the server
hold all of it. :class:`BoundedHttpToolsProtocol` counts the bytes received while a head is
still open and, past :data:`MAX_REQUEST_HEAD`, answers ``431 Request Header Fields Too
Large`` and closes the connection. The count is per read, so the memory held is at most the
limit plus one read (uvloop reads up to 256 KiB at a time).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Largest request head accepted, in bytes. Behind the router the head is what the router
#: forwards (no cookies); standalone, Basic credentials and WebDAV ``If`` headers with lock
#: tokens stay far below. nginx's default is 32 KiB (4 x 8 KiB), Apache's about 800 KiB.
MAX_REQUEST_HEAD = 64 * 1024

_TOO_LARGE_BODY = b"431 Request Header Fields Too Large: request head over 65536 bytes\n"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE_BODY
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :data:`MAX_REQUEST_HEAD` enforced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False
        self._head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if not self._head_open:
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_REQUEST_HEAD:
            self._head_open = False
            self.transport.write(_TOO_LARGE)
            self.transport.close()
