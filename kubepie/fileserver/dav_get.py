"""The fast path for a plain GET or HEAD of a file: served from the event loop, no adapter.

Through the WSGI adapter every request costs a worker-thread hop and wsgidav's full request
machinery; for small files that dominates (a quarter of nginx's requests per second). A
*plain* GET/HEAD (no ``Range``, no conditional headers) of a regular file is answered here
with the same headers wsgidav sends (Content-Type, Content-Length, Last-Modified, ETag,
Accept-Ranges). The file is opened beneath its mount root in one step
(:meth:`kubepie.fileserver.mounts.Mount.open`, ``O_NONBLOCK`` so a FIFO cannot hold the event
loop) and checked with ``fstat`` on the open descriptor, so what is sent is what was checked.
Larger files stream in blocks of ``block_size`` read by a worker thread, the next block read
while the current one is sent. Everything else (collections, ranges, conditionals, errors) goes
to wsgidav, which gives the full answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import stat
from dataclasses import dataclass

from wsgidav.util import guess_mime_type

from kubepie.fileserver.asgi import Scope, Send, header
from kubepie.fileserver.dav_provider import etag_of
from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mounts, split_url_path

_DECLINE_HEADERS = (
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if",
)
_MIME_OPTIONS = {"default_charset": "utf-8"}


@dataclass(frozen=True, slots=True)
class GetPlan:
    fd: int
    size: int
    headers: list[tuple[bytes, bytes]]
    head: bool


class PlainGet:
    """Decides whether a GET/HEAD is plain (:meth:`plan`) and answers it (:meth:`run`)."""

    def __init__(self, mounts: Mounts, block_size: int) -> None:
        self.mounts = mounts
        self.block_size = block_size

    def plan(self, scope: Scope, dav_path: str) -> GetPlan | None:
        """An open file and its headers for a plain GET/HEAD, or None to decline."""
        if any(header(scope, name) is not None for name in _DECLINE_HEADERS):
            return None
        try:
            segments = split_url_path(dav_path)
            if len(segments) < 2 or dav_path.endswith("/"):
                return None
            mount = self.mounts[segments[0]]
            fd = mount.open(segments[1:], os.O_RDONLY | os.O_NONBLOCK)
        except (FileServerError, OSError):
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        headers = [
            (b"content-type", guess_mime_type(segments[-1], _MIME_OPTIONS).encode("latin-1")),
            (b"content-length", str(st.st_size).encode()),
            (b"last-modified", email.utils.formatdate(int(st.st_mtime), usegmt=True).encode()),
            (b"etag", f'"{etag_of(st)}"'.encode()),
            (b"accept-ranges", b"bytes"),
            (b"date", email.utils.formatdate(usegmt=True).encode()),
        ]
        return GetPlan(fd, st.st_size, headers, scope["method"] == "HEAD")

    async def run(self, plan: GetPlan, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": plan.headers})
            if plan.head or plan.size == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            if plan.size <= self.block_size:
                await send({"type": "http.response.body", "body": os.read(plan.fd, plan.size)})
                return
            await self._stream(plan, send)
        finally:
            os.close(plan.fd)

    async def _stream(self, plan: GetPlan, send: Send) -> None:
        remaining = plan.size
        following = asyncio.ensure_future(asyncio.to_thread(os.read, plan.fd, self.block_size))
        while True:
            block = await following
            remaining -= len(block)
            more = remaining > 0 and bool(block)
            if more:
                following = asyncio.ensure_future(
                    asyncio.to_thread(os.read, plan.fd, self.block_size)
                )
            try:
                await send({"type": "http.response.body", "body": block, "more_body": more})
            except BaseException:
                if more:
                    await following  # never close the descriptor under a running read
                raise
            if not more:
                return
