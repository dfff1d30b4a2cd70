"""Streaming upload: a ``multipart/form-data`` POST becomes one ``PUT`` per file, as it arrives.

The browser's form (several files in one POST) is parsed piece by piece with python-multipart's
push parser; each file part's bytes go straight into a ``PUT`` to the user's file server
(chunked, through a small queue that gives back-pressure), so the router holds at most a few
pieces of a file, never the whole, in memory or on disk. Files are stored one after another,
in the order the browser sent them.

The CSRF token must come as a field *before* the first file (the page puts it first): nothing
is stored until the token has been checked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from kubepie.web.csrf import CSRF_FIELD
from kubepie.web.errors import BadForm, CsrfRefused

#: Pieces of one file queued between the browser and the file server.
QUEUE_PIECES = 4
#: Longest header block of one part, and longest non-file field, in bytes.
MAX_PART_HEADERS = 8 * 1024
MAX_FIELD = 1024
#: Longest file name (bytes of UTF-8), as most POSIX file systems allow.
MAX_NAME = 255

#: Stores one file: ``(name, chunks)``; returns when the file server has answered.
PutFile = Callable[[str, AsyncIterator[bytes]], Coroutine[Any, Any, None]]
#: Checks the CSRF token (raises :class:`CsrfRefused`).
CheckToken = Callable[[str | None], None]


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a ``Content-Type`` header, or :class:`BadForm`."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadForm("the upload form must be sent as multipart/form-data")
    return boundary


def file_name(raw: str) -> str:
    """A safe file name from what the browser sent (the last path component of it)."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in {"", ".", ".."} or "\x00" in name or any(ord(c) < 0x20 for c in name):
        raise BadForm(f"{raw!r} is not a file name that can be stored")
    if len(name.encode()) > MAX_NAME:
        raise BadForm(f"the file name {name[:40]!r}... is too long")
    return name


def existing_name(raw: str) -> str:
    """The name of an entry the page listed (rename, delete): exactly one path segment, taken
    as it is (a POSIX name may hold a backslash or spaces; it is never cleaned up into
    another name)."""
    if raw in {"", ".", ".."} or "/" in raw or "\x00" in raw:
        raise BadForm("that is not the name of an entry of this folder")
    return raw


def check_name(raw: str) -> str:
    """A new folder or file name typed by the user: one path segment, nothing else."""
    name = raw.strip()
    if "/" in name or "\\" in name:
        raise BadForm("a name cannot contain '/' or '\\'")
    return file_name(name)


@dataclass(slots=True)
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    header_size: int = 0
    field_name: str = ""
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)
    queue: asyncio.Queue[bytes | None] | None = None
    task: asyncio.Task[None] | None = None


class UploadStream:
    """Feeds a request body through the parser and runs one ``PUT`` per file part."""

    def __init__(self, boundary: bytes, check_token: CheckToken, put: PutFile) -> None:
        self._events: list[tuple[str, bytes]] = []
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": lambda: self._events.append(("begin", b"")),
                "on_header_field": lambda d, s, e: self._events.append(("field", d[s:e])),
                "on_header_value": lambda d, s, e: self._events.append(("value", d[s:e])),
                "on_header_end": lambda: self._events.append(("header_end", b"")),
                "on_headers_finished": lambda: self._events.append(("headers_done", b"")),
                "on_part_data": lambda d, s, e: self._events.append(("data", d[s:e])),
                "on_part_end": lambda: self._events.append(("end", b"")),
            },
        )
        self._check_token = check_token
        self._put = put
        self._verified = False
        self._part = _Part()
        self._header = ["", ""]
        self.stored: list[str] = []

    async def run(self, body: AsyncIterator[bytes]) -> list[str]:
        """Consume ``body``; returns the names stored, in order."""
        try:
            async for chunk in body:
                try:
                    self._parser.write(chunk)
                except MultipartParseError as exc:
                    raise BadForm("the upload form is malformed") from exc
                events, self._events = self._events, []
                for kind, data in events:
                    await self._event(kind, data)
            self._parser.finalize()
        finally:
            await self._abandon()
        if not self._verified:
            raise CsrfRefused("the form carries no CSRF token")
        return self.stored

    async def _event(self, kind: str, data: bytes) -> None:
        part = self._part
        if kind == "begin":
            self._part = _Part()
        elif kind in ("field", "value"):
            part.header_size += len(data)
            if part.header_size > MAX_PART_HEADERS:
                raise BadForm("a part of the upload form has too large headers")
            # latin-1 keeps the bytes as they are; names are decoded as UTF-8 later, as
            # browsers send them.
            self._header[0 if kind == "field" else 1] += data.decode("latin-1")
        elif kind == "header_end":
            part.headers[self._header[0].strip().lower()] = self._header[1].strip()
            self._header = ["", ""]
        elif kind == "headers_done":
            await self._start(part)
        elif kind == "data":
            await self._data(part, data)
        elif kind == "end":
            await self._end(part)

    async def _start(self, part: _Part) -> None:
        _, params = parse_options_header(part.headers.get("content-disposition", ""))
        part.field_name = params.get(b"name", b"").decode("utf-8", "replace")
        raw_name = params.get(b"filename")
        if raw_name is None:
            return
        part.filename = raw_name.decode("utf-8", "replace")
        if not part.filename:
            return  # the file input was left empty
        if not self._verified:
            raise CsrfRefused("the form carries no CSRF token before its files")
        name = file_name(part.filename)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_PIECES)
        part.queue = queue

        async def chunks() -> AsyncIterator[bytes]:
            while (piece := await queue.get()) is not None:
                yield piece

        part.task = asyncio.create_task(self._put(name, chunks()))
        part.filename = name

    async def _data(self, part: _Part, data: bytes) -> None:
        if part.filename is None:
            part.value += data
            if len(part.value) > MAX_FIELD:
                raise BadForm(f"the form field {part.field_name!r} is too long")
        elif part.queue is not None and data:
            await self._offer(part, bytes(data))

    async def _offer(self, part: _Part, piece: bytes | None) -> None:
        """Queue ``piece`` for the PUT, unless the PUT has already ended (then say why)."""
        assert part.queue is not None
        assert part.task is not None
        put = asyncio.ensure_future(part.queue.put(piece))
        await asyncio.wait({put, part.task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            part.task.result()  # the file server refused: raise its error
            raise BadForm("the file server stopped reading the upload")

    async def _end(self, part: _Part) -> None:
        if part.filename is None:
            if part.field_name == CSRF_FIELD:
                self._check_token(part.value.decode("utf-8", "replace"))
                self._verified = True
            return
        if part.task is None:
            return
        await self._offer(part, None)
        task, part.task = part.task, None
        await task
        self.stored.append(part.filename)

    async def _abandon(self) -> None:
        """Stop a PUT still running (the form failed): the file server commits nothing."""
        task = self._part.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
