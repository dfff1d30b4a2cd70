"""Object operations: Get, Head, Put, Copy, Delete (and the per-key part of DeleteObjects).

A request carrying the router's create-only header (:func:`create_only`) never replaces or
deletes an existing key: PutObject and CopyObject over one, a metadata self-copy and
DeleteObject of one answer ``AccessDenied``; new objects are renamed into place with
``RENAME_NOREPLACE``, so of two racing creates exactly one wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
from collections.abc import Sequence

from starlette.types import Send

from kubepie.fileserver.auth import CREATE_ONLY_HEADER
from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mount
from kubepie.fileserver.uploads import Buffer, Upload
from kubepie.s3 import errors, objects
from kubepie.s3.body import BodyPlan, plan_body, stream_body
from kubepie.s3.conditions import NotModified, check_preconditions, http_date, parse_range
from kubepie.s3.context import Context, Response, in_thread, user_metadata
from kubepie.s3.models import ObjectInfo
from kubepie.s3.sources import COPY_SOURCE, parse_copy_source
from kubepie.s3.xml import copy_result

_RESPONSE_OVERRIDES = (
    "content-type",
    "content-language",
    "expires",
    "cache-control",
    "content-disposition",
    "content-encoding",
)


def create_only(ctx: Context) -> bool:
    """Whether this request may only create keys (never replace or delete one)."""
    return (ctx.header(CREATE_ONLY_HEADER) or "").strip() == "1"


def _object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    headers = [
        ("etag", info.etag),
        ("last-modified", http_date(info.mtime)),
        ("accept-ranges", "bytes"),
        ("content-type", info.content_type),
    ]
    headers.extend((f"x-amz-meta-{name}", value) for name, value in info.metadata.items())
    return headers


def _apply_overrides(ctx: Context, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for name in _RESPONSE_OVERRIDES:
        value = ctx.query.get(f"response-{name}")
        if value is not None:
            headers = [(k, v) for k, v in headers if k != name]
            headers.append((name, value))
    return headers


async def get_object(ctx: Context, *, head: bool) -> Response:
    obj = objects.resolve(ctx.mount(), ctx.key)
    fd = -1
    data: bytes | None = b""
    if obj.is_marker:
        _, info = await in_thread(objects.stat_object, obj)
    else:
        limit = 0 if head else ctx.settings.chunk_size
        fd, info, data = await in_thread(objects.read_small, obj, limit)
    try:
        headers = _object_headers(info)
        try:
            check_preconditions(ctx.request.headers, info.etag, info.mtime)
        except NotModified:
            return Response(304, [h for h in headers if h[0] in ("etag", "last-modified")])
        span = parse_range(ctx.header("range"), info.size)
        status = 200
        start, length = 0, info.size
        if span is not None:
            status = 206
            start, length = span[0], span[1] - span[0] + 1
            headers.append(("content-range", f"bytes {span[0]}-{span[1]}/{info.size}"))
        elif (ctx.header("x-amz-checksum-mode") or "").upper() == "ENABLED":
            headers.extend((f"x-amz-checksum-{a}", v) for a, v in info.checksums.items())
        headers.append(("content-length", str(length)))
        headers = _apply_overrides(ctx, headers)
        if head or length == 0:
            return Response(status, headers)
        if data is not None:
            return Response(status, headers, data[start : start + length])
        stream = _FileStream(fd, start, length, ctx.settings.chunk_size)
        fd = -1  # the stream owns it now
        return Response(status, headers, stream=stream)
    finally:
        if fd >= 0:
            os.close(fd)


class _FileStream:
    """Sends a file range in ``chunk_size`` reads, each done off the event loop."""

    def __init__(self, fd: int, start: int, length: int, chunk_size: int) -> None:
        self._fd = fd
        self._start = start
        self._length = length
        self._chunk = chunk_size

    async def __call__(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        pos, end = self._start, self._start + self._length
        try:
            while pos < end:
                want = min(self._chunk, end - pos)
                data = await loop.run_in_executor(None, os.pread, self._fd, want, pos)
                if not data:
                    break  # the file shrank under us; the client sees a short body
                pos += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": pos < end})
            if pos < end:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            os.close(self._fd)


async def put_object(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    obj = objects.resolve(mount, ctx.key)
    plan = plan_body(ctx.request.headers, ctx.verified, md5=ctx.settings.md5_etags)
    if obj.is_marker:
        return await _put_marker(ctx, obj, plan)
    content_type = ctx.header("content-type") or objects.DEFAULT_CONTENT_TYPE
    metadata = user_metadata(ctx.headers)
    upload = await in_thread(
        objects.open_upload, obj, fsync=ctx.settings.fsync, exclusive=create_only(ctx)
    )
    try:
        await stream_body(ctx.receive, plan, upload.write_all, ctx.settings.chunk_size)
        md5 = plan.digests.md5
        etag = f'"{md5.hexdigest()}"' if md5 is not None else objects.derived_etag(upload.stat())
        checksums = {}
        if plan.digests.algorithm and plan.digests.checksum_value:
            checksums[plan.digests.algorithm] = plan.digests.checksum_value
        xattrs = objects.xattrs_for(
            etag=etag,
            st=upload.stat(),
            content_type=content_type,
            checksums=checksums,
            metadata=metadata,
        )
        await in_thread(objects.commit_upload, upload, xattrs, ctx.key)
    except OSError as exc:
        upload.discard()
        raise errors.from_oserror(exc, ctx.key) from exc
    except BaseException:
        upload.discard()
        raise
    headers = [("etag", etag)]
    headers.extend((f"x-amz-checksum-{a}", v) for a, v in checksums.items())
    return Response(200, headers, after=upload.release_old)


async def _put_marker(ctx: Context, obj: objects.ObjectPath, plan: BodyPlan) -> Response:
    def refuse(batch: Sequence[Buffer]) -> None:
        if any(len(data) for data in batch):
            raise errors.InvalidArgument("a key ending in '/' is a folder and holds no data")

    await stream_body(ctx.receive, plan, refuse, ctx.settings.chunk_size)
    await in_thread(objects.make_parents, obj, obj.segments)
    return Response(200, [("etag", objects.EMPTY_ETAG)])


def copy_source(ctx: Context) -> tuple[Mount, objects.ObjectPath]:
    bucket, key = parse_copy_source(ctx.header(COPY_SOURCE) or "")
    mount = ctx.mount(bucket)
    return mount, objects.resolve(mount, key)


def _copy_into(src_fd: int, info: ObjectInfo, upload: Upload, offset: int, length: int) -> str:
    """Copy a byte range; reuse a stored plain MD5 for whole-object copies, else hash."""
    plain_md5 = "-" not in info.etag and len(info.etag.strip('"')) == 32
    if plain_md5 and offset == 0 and length == info.size:
        objects.copy_range(src_fd, upload, offset, length, None)
        return info.etag
    md5 = hashlib.md5(usedforsecurity=False)
    objects.copy_range(src_fd, upload, offset, length, md5)
    return f'"{md5.hexdigest()}"'


async def copy_object(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    dst = objects.resolve(mount, ctx.key)
    src_mount, src = copy_source(ctx)
    src_fd, info = await in_thread(objects.open_object, src)
    try:
        check_preconditions(
            ctx.request.headers, info.etag, info.mtime, prefix="x-amz-copy-source-if-"
        )
        replace = (ctx.header("x-amz-metadata-directive") or "COPY").upper() == "REPLACE"
        content_type = info.content_type
        metadata = dict(info.metadata)
        if replace:
            content_type = ctx.header("content-type") or objects.DEFAULT_CONTENT_TYPE
            metadata = user_metadata(ctx.headers)
        if src_mount.name == mount.name and src.segments == dst.segments:
            if not replace:
                raise errors.InvalidRequest(
                    "This copy request is illegal because it is trying to copy an object to "
                    "itself without changing the object's metadata."
                )
            if create_only(ctx):
                raise errors.AccessDenied("create only: the key exists", resource=ctx.key)
            st = os.fstat(src_fd)
            values = objects.xattrs_for(
                etag=info.etag,
                st=st,
                content_type=content_type,
                checksums=info.checksums,
                metadata=metadata,
            )
            await in_thread(objects.set_xattrs, src_fd, values, replace_meta=True)
            return Response.xml(copy_result("CopyObjectResult", info.etag, st.st_mtime))
        upload = await in_thread(
            objects.open_upload, dst, fsync=ctx.settings.fsync, exclusive=create_only(ctx)
        )
        try:
            etag = await in_thread(_copy_into, src_fd, info, upload, 0, info.size)
            values = objects.xattrs_for(
                etag=etag,
                st=upload.stat(),
                content_type=content_type,
                checksums=info.checksums,
                metadata=metadata,
            )
            st = await in_thread(objects.commit_upload, upload, values, ctx.key)
        except BaseException:
            upload.discard()
            raise
    finally:
        os.close(src_fd)
    response = Response.xml(copy_result("CopyObjectResult", etag, st.st_mtime))
    response.after = upload.release_old
    return response


def delete_key(mount: Mount, key: str, *, keep_existing: bool = False) -> None:
    """Remove one object (blocking); a missing key is not an error, as in S3. With
    ``keep_existing`` (create-only requests) an existing key is ``AccessDenied`` instead."""
    obj = objects.resolve(mount, key)
    try:
        directory = mount.open_dir(obj.parent)
    except FileServerError as exc:
        raise errors.from_fileserver(exc, key) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise errors.from_oserror(exc, key) from exc
    try:
        if keep_existing:
            with contextlib.suppress(FileNotFoundError):
                os.stat(obj.name, dir_fd=directory, follow_symlinks=False)
                raise errors.AccessDenied("create only: the key exists", resource=key)
            return
        if obj.is_marker:
            os.rmdir(obj.name, dir_fd=directory)
        else:
            os.unlink(obj.name, dir_fd=directory)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY):
            raise errors.from_oserror(exc, key) from exc
        return
    finally:
        os.close(directory)
    objects.remove_empty_parents(mount, obj.parent)


async def delete_object(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    await in_thread(delete_key, mount, ctx.key, keep_existing=create_only(ctx))
    return Response(204)
