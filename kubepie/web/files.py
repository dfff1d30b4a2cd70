"""File operations of the web UI, as the logged-in user, on that user's own file server.

Every operation is one WebDAV request sent through the router's shared request path,
:meth:`kubepie.router.context.RouterContext.forward` (the backend makes sure the user's server
runs, the per-server secret is added, an unreachable server is restarted once): the router
process never opens a user's file. Answers the page needs (``PROPFIND`` listings, statuses)
are captured here, up to :data:`MAX_CAPTURE` bytes; downloads and uploads stream through
without being held whole.

The file server's refusals become :mod:`kubepie.web.errors` that say what was refused and
which permission was missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from starlette.types import Message, Receive, Send

from kubepie.router.access import Principal, check
from kubepie.router.content_security import attachment, secure_head
from kubepie.router.context import RouterContext
from kubepie.router.paths import StoragePath, dav_operations
from kubepie.router.proxy import Transfer
from kubepie.router.servers import dav_address
from kubepie.web.errors import AlreadyExists, FileServerFailed, PageNotFound, PermissionDenied
from kubepie.web.listing import PROPFIND_BODY, Entry, dav_target, parse_multistatus

#: ``Host`` of the UI's own requests (HTTP/1.1 needs one; WebDAV compares Destination to it).
UPSTREAM_HOST = b"localhost"
#: Largest answer captured for a page (a PROPFIND of ~20,000 entries).
MAX_CAPTURE = 32 * 1024 * 1024


@dataclass(slots=True)
class Captured:
    """A file server's answer, kept for the page (see :class:`CaptureSend`)."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class CaptureSend:
    """An ASGI ``send`` that keeps the answer instead of sending it to a client."""

    def __init__(self, limit: int = MAX_CAPTURE) -> None:
        self.captured = Captured()
        self.limit = limit

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.captured.status = message["status"]
            self.captured.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.captured.body += message.get("body", b"")
            if len(self.captured.body) > self.limit:
                raise FileServerFailed("the file server's answer is too large to show")


async def _never() -> Message:
    # After the body, the forwarder watches for the client going away: here it never does.
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover


def bytes_receive(body: bytes) -> Receive:
    """An ASGI ``receive`` that hands over ``body`` in one message."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await _never()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def stream_receive(chunks: AsyncIterator[bytes]) -> Receive:
    """An ASGI ``receive`` that hands over ``chunks`` one by one as they come."""
    done = False

    async def receive() -> Message:
        nonlocal done
        if done:
            return await _never()
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    return receive


def refusal(status: int, action: str, path: str, permission: str) -> Exception:
    """The error for a file server's refusal of ``action`` on ``path`` (pure).

    ``permission`` names what the operation needs, e.g. "write permission on the folder /home".
    """
    if status in (401, 403):
        return PermissionDenied(
            f"You may not {action} {path}: it needs {permission}, which you do not have."
        )
    if status == 404:
        return PageNotFound(f"There is no file or folder {path}.")
    if status in (405, 412) or (status == 409 and action.startswith("rename")):
        return AlreadyExists(f"Could not {action} {path}: the name is already taken.")
    if status == 409:
        return PageNotFound(f"Could not {action} {path}: its folder does not exist.")
    if status == 507:
        return FileServerFailed(f"Could not {action} {path}: the storage is full.")
    return FileServerFailed(f"Could not {action} {path}: the file server answered {status}.")


def shown(segments: Sequence[str]) -> str:
    """A storage path as the pages show it: ``/home/dir``."""
    return "/" + "/".join(segments)


class UserFiles:
    """The logged-in user's files, through their file server."""

    def __init__(self, ctx: RouterContext, principal: Principal) -> None:
        self.ctx = ctx
        self.principal = principal

    async def _send(
        self,
        method: str,
        target: bytes,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        receive: Receive | None = None,
    ) -> Captured:
        capture = CaptureSend()
        all_headers = [(b"host", UPSTREAM_HOST), *headers]
        if receive is None:
            all_headers.append((b"content-length", str(len(body)).encode()))
        await self.ctx.forward(
            self.principal.identity,
            dav_address,
            method=method,
            target=target,
            headers=all_headers,
            receive=receive or bytes_receive(body),
            send=capture,
            transfer=Transfer(),
        )
        return capture.captured

    def _check(self, method: str, segments: Sequence[str], headers: dict[str, str]) -> None:
        check(self.principal, StoragePath(tuple(segments)), dav_operations(method, headers))

    async def list(self, folder: Sequence[str]) -> list[Entry]:
        """The folder's entries (``folder`` empty: the user's mounts)."""
        self._check("PROPFIND", folder, {})
        answer = await self._send(
            "PROPFIND",
            dav_target(folder, folder=True),
            headers=[(b"depth", b"1"), (b"content-type", b"application/xml; charset=utf-8")],
            body=PROPFIND_BODY,
        )
        if answer.status != 207:
            raise refusal(answer.status, "list", shown(folder), "read permission on it")
        return parse_multistatus(bytes(answer.body), folder)

    async def mkdir(self, folder: Sequence[str], name: str) -> None:
        path = [*folder, name]
        self._check("MKCOL", path, {})
        answer = await self._send("MKCOL", dav_target(path))
        if answer.status not in (200, 201):
            raise refusal(
                answer.status,
                "create the folder",
                shown(path),
                f"write permission on the folder {shown(folder)}",
            )

    async def move(self, folder: Sequence[str], name: str, new_name: str) -> None:
        source, dest = [*folder, name], [*folder, new_name]
        self._check("MOVE", source, {})
        self._check("PUT", dest, {})
        answer = await self._send(
            "MOVE",
            dav_target(source),
            headers=[(b"destination", dav_target(dest)), (b"overwrite", b"F")],
        )
        if answer.status not in (200, 201, 204):
            raise refusal(
                answer.status,
                f"rename {shown(source)} to",
                new_name,
                f"write permission on the folder {shown(folder)}",
            )

    async def delete(self, folder: Sequence[str], name: str) -> None:
        path = [*folder, name]
        self._check("DELETE", path, {})
        answer = await self._send("DELETE", dav_target(path))
        if answer.status not in (200, 204):
            raise refusal(
                answer.status,
                "delete",
                shown(path),
                f"write permission on the folder {shown(folder)}",
            )

    async def put(self, folder: Sequence[str], name: str, chunks: AsyncIterator[bytes]) -> None:
        """Store a file from ``chunks`` as they arrive (chunked to the file server)."""
        path = [*folder, name]
        self._check("PUT", path, {})
        answer = await self._send(
            "PUT",
            dav_target(path),
            headers=[
                (b"transfer-encoding", b"chunked"),
                (b"content-type", b"application/octet-stream"),
            ],
            receive=stream_receive(chunks),
        )
        if answer.status not in (200, 201, 204):
            raise refusal(
                answer.status,
                "upload",
                shown(path),
                f"write permission on the folder {shown(folder)}",
            )

    async def download(
        self,
        path: Sequence[str],
        method: str,
        headers: Sequence[tuple[bytes, bytes]],
        receive: Receive,
        send: Send,
    ) -> None:
        """Stream the file (``GET``/``HEAD``) to the browser as an attachment; a refusal is
        raised, not sent."""
        self._check(method, path, {})
        gate = DownloadSend(send, path[-1] if path else "download")
        await self.ctx.forward(
            self.principal.identity,
            dav_address,
            method=method,
            target=dav_target(path),
            headers=[(n, v) for n, v in headers if n.lower() in _DOWNLOAD_HEADERS],
            receive=receive,
            send=gate,
            transfer=Transfer(),
        )
        if gate.refused is not None:
            raise refusal(gate.refused, "download", shown(path), "read permission on it")


#: Request headers a download passes on (ranges and cache validators; nothing else).
_DOWNLOAD_HEADERS = frozenset({b"range", b"if-range", b"if-none-match", b"if-modified-since"})


def content_disposition(name: str) -> bytes:
    """``attachment`` with the name as RFC 6266 allows (ASCII fallback and UTF-8 form)."""
    return attachment(name or "download")


class DownloadSend:
    """Passes a successful answer on as user content: always ``Content-Disposition:
    attachment``, ``nosniff`` and a sandbox policy (:mod:`kubepie.router.content_security`),
    since it is served from the origin that holds the session; keeps a refusal (status >= 400)
    back so the page can explain it."""

    def __init__(self, send: Send, name: str) -> None:
        self.send = send
        self.name = name
        self.refused: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400:
                self.refused = message["status"]
                return
            headers = [
                (n, v) for n, v in message.get("headers", []) if n.lower() != b"content-disposition"
            ]
            headers.append((b"content-disposition", content_disposition(self.name)))
            headers = secure_head(
                headers, method="GET", status=message["status"], path="", listings=False
            )
            message = {**message, "headers": headers}
        elif self.refused is not None:
            return
        await self.send(message)
