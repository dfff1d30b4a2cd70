"""The fast path for a plain PUT: the body goes straight from the event loop to a temp file.

Through the WSGI adapter every received body message costs a round trip between the worker
thread and the event loop, which halves upload speed. A *plain* PUT (no conditional or range
headers, an existing parent directory, a writable mount, no lock in the way) is therefore
handled here: the body is gathered into blocks of ``block_size`` bytes, each written by a worker
thread (:class:`kubepie.fileserver.uploads.BlockWriter`), into a temporary file next to the
target, which is renamed into place only when the whole body has arrived (same contract as
:class:`kubepie.fileserver.dav_provider.DavFile`).
Anything else returns ``None`` from :meth:`PlainPut.plan` and goes to wsgidav, which then
produces the full WebDAV answer (412, 423 with its error body, 409, 405...).

The parent directory is resolved once, in :meth:`PlainPut.plan`, beneath the mount root; the
plan keeps its descriptor and the upload works relative to it, so a directory swapped for a
symlink after the check cannot redirect the write. With the router's create-only header
(:data:`kubepie.fileserver.auth.CREATE_ONLY_HEADER`) an existing target is refused (403) and the
final rename never replaces a name.

Locks: the target URL is held in wsgidav's lock manager as "being written" for the duration
(:meth:`LockManager.write_transaction`), so no LOCK can slip in between check and rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from wsgidav.dav_error import DAVError

from kubepie.fileserver.asgi import ClientDisconnected, Receive, Scope, Send, header, send_plain
from kubepie.fileserver.auth import CREATE_ONLY_HEADER
from kubepie.fileserver.dav_provider import etag_of
from kubepie.fileserver.errors import FileServerError, from_oserror
from kubepie.fileserver.mounts import Mounts, split_url_path
from kubepie.fileserver.uploads import BlockWriter, Upload, check_replaceable

#: Requests carrying any of these need wsgidav's full precondition handling.
_DECLINE_HEADERS = (
    "if",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "content-range",
    "content-encoding",
    "x-oc-mtime",
)


def create_only(scope: Scope) -> bool:
    """Whether the request may only create names (never replace or delete one)."""
    return (header(scope, CREATE_ONLY_HEADER) or "").strip() == "1"


@dataclass(frozen=True, slots=True)
class PutPlan:
    directory: int
    name: str
    url: str
    parent_url: str
    existed: bool
    length: int | None
    exclusive: bool


class PlainPut:
    """Decides whether a PUT is plain (:meth:`plan`) and performs it (:meth:`run`)."""

    def __init__(self, mounts: Mounts, lock_manager: Any, username: str, block_size: int) -> None:
        self.mounts = mounts
        self.locks = lock_manager
        self.username = username
        self.block_size = block_size

    def plan(self, scope: Scope, dav_path: str) -> PutPlan | None:
        """A plan for a plain PUT of ``dav_path`` (raw, below /dav), or None to decline."""
        if any(header(scope, name) is not None for name in _DECLINE_HEADERS):
            return None
        length_text = header(scope, "content-length")
        chunked = "chunked" in (header(scope, "transfer-encoding") or "").lower()
        if length_text is None and not chunked:
            return None
        length = int(length_text) if length_text and length_text.isdigit() else None
        if length_text is not None and length is None:
            return None
        exclusive = create_only(scope)
        try:
            segments = split_url_path(dav_path)
            if len(segments) < 2 or segments[0] not in self.mounts:
                return None
            mount = self.mounts[segments[0]]
            mount.check_writable()
            directory, name = mount.open_parent(segments[1:])
        except (FileServerError, OSError):
            return None
        try:
            try:
                st = os.stat(name, dir_fd=directory, follow_symlinks=False)
                existed = stat.S_ISREG(st.st_mode)
                if not existed or exclusive:
                    # a symlink, directory or special file, or create-only over an existing
                    # name: wsgidav answers (with 403 for the last)
                    raise FileExistsError
            except FileNotFoundError:
                existed = False
            check_replaceable(directory, name)
        except OSError:
            os.close(directory)
            return None
        url = quote("/" + "/".join(segments))
        parent_url = quote("/" + "/".join(segments[:-1]))
        try:
            self.locks.check_write_permission(
                url=url, depth="0", token_list=[], principal=self.username
            )
            if not existed:
                self.locks.check_write_permission(
                    url=parent_url, depth="0", token_list=[], principal=self.username
                )
        except DAVError:
            os.close(directory)
            return None
        return PutPlan(directory, name, url, parent_url, existed, length, exclusive)

    @contextlib.contextmanager
    def _transaction(self, plan: PutPlan) -> Iterator[None]:
        with self.locks.write_transaction(
            url=plan.url, token_list=[], principal=self.username, depth="0"
        ):
            yield

    async def run(self, plan: PutPlan, receive: Receive, send: Send) -> None:
        """Stream the body to a temp file, rename it into place, answer 201 or 204."""
        try:
            with self._transaction(plan):
                upload, st = await self._store(plan, receive)
        except DAVError:  # a lock appeared since plan(): same answer wsgidav would give
            await send_plain(send, 423, "locked\n")
            return
        except ClientDisconnected:
            return
        except OSError as exc:
            error = from_oserror(exc, "PUT")
            await send_plain(send, error.status, f"{error}\n")
            return
        except ValueError as exc:
            await send_plain(send, 400, f"{exc}\n")
            return
        finally:
            os.close(plan.directory)  # the upload kept its own duplicate
        try:
            etag = etag_of(st).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 204 if plan.existed else 201,
                    "headers": [(b"etag", b'"' + etag + b'"'), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
        finally:
            await asyncio.to_thread(upload.release_old)

    async def _store(self, plan: PutPlan, receive: Receive) -> tuple[Upload, os.stat_result]:
        upload = Upload(plan.directory, plan.name, exclusive=plan.exclusive)
        try:
            written = await self._copy_body(upload, receive)
            if plan.length is not None and written != plan.length:
                raise ValueError("body shorter than its Content-Length")
            st = await asyncio.to_thread(upload.commit)
        except BaseException:
            upload.discard()
            raise
        return upload, st

    async def _copy_body(self, upload: Upload, receive: Receive) -> int:
        """Receive into blocks; write each in a worker thread while the next one arrives."""
        async with BlockWriter(upload.write_all, block_size=self.block_size) as writer:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected("client disconnected during PUT")
                await writer.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    return await writer.finish()
