"""Multipart operations: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts and
ListMultipartUploads (storage in :mod:`kubepie.s3.multipart`). A create-only request (see
:func:`kubepie.s3.object_ops.create_only`) completes only onto a key that does not exist."""

from __future__ import annotations

import hashlib
import os

from kubepie.s3 import errors, multipart, objects
from kubepie.s3.body import plan_body, read_small_body, stream_body
from kubepie.s3.conditions import check_preconditions
from kubepie.s3.context import Context, Response, in_thread, user_metadata
from kubepie.s3.models import UploadInfo
from kubepie.s3.object_ops import copy_source, create_only
from kubepie.s3.xml import (
    complete_upload,
    copy_result,
    initiate_upload,
    list_parts,
    list_uploads,
    parse_complete,
)


async def create_upload(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    obj = objects.resolve(mount, ctx.key)
    if obj.is_marker:
        raise errors.InvalidArgument("a key ending in '/' is a folder and holds no data")
    upload_id = await in_thread(
        multipart.create,
        mount,
        obj,
        ctx.settings,
        content_type=ctx.header("content-type") or objects.DEFAULT_CONTENT_TYPE,
        metadata=user_metadata(ctx.headers),
    )
    return Response.xml(initiate_upload(ctx.bucket, ctx.key, upload_id))


async def upload_part(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    number = multipart.check_part_number(ctx.query.get("partNumber", ""))
    upload = await in_thread(multipart.load, mount, ctx.settings, ctx.query["uploadId"], ctx.key)
    if ctx.header("x-amz-copy-source") is not None:
        return await _upload_part_copy(ctx, upload, number)
    plan = plan_body(ctx.request.headers, ctx.verified)
    pending = await in_thread(multipart.part_file, mount, ctx.settings, upload)
    try:
        await stream_body(ctx.receive, plan, pending.write_all, ctx.settings.chunk_size)
        md5 = plan.digests.md5
        assert md5 is not None  # parts always hash: the multipart ETag is built from them
        part = await in_thread(multipart.commit_part, pending, number, md5.hexdigest(), ctx.key)
    except OSError as exc:
        pending.discard()
        raise errors.from_oserror(exc, ctx.key) from exc
    except BaseException:
        pending.discard()
        raise
    headers = [("etag", part.etag)]
    if plan.digests.algorithm and plan.digests.checksum_value:
        headers.append((f"x-amz-checksum-{plan.digests.algorithm}", plan.digests.checksum_value))
    return Response(200, headers)


def _source_range(header: str | None, size: int) -> tuple[int, int]:
    if header is None:
        return 0, size
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    try:
        start, end = int(first), int(last)
    except ValueError:
        raise errors.InvalidArgument("x-amz-copy-source-range must be bytes=first-last") from None
    if unit != "bytes" or start > end or end >= size:
        raise errors.InvalidRange("The x-amz-copy-source-range is not satisfiable")
    return start, end - start + 1


async def _upload_part_copy(ctx: Context, upload: UploadInfo, number: int) -> Response:
    mount = ctx.writable_mount()
    _, src = copy_source(ctx)
    src_fd, info = await in_thread(objects.open_object, src)
    try:
        check_preconditions(
            ctx.request.headers, info.etag, info.mtime, prefix="x-amz-copy-source-if-"
        )
        offset, length = _source_range(ctx.header("x-amz-copy-source-range"), info.size)
        pending = await in_thread(multipart.part_file, mount, ctx.settings, upload)
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            await in_thread(objects.copy_range, src_fd, pending, offset, length, md5)
            part = await in_thread(multipart.commit_part, pending, number, md5.hexdigest(), ctx.key)
        except BaseException:
            pending.discard()
            raise
    finally:
        os.close(src_fd)
    return Response.xml(copy_result("CopyPartResult", part.etag, part.mtime))


async def complete_multipart(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    upload = await in_thread(multipart.load, mount, ctx.settings, ctx.query["uploadId"], ctx.key)
    plan = plan_body(ctx.request.headers, ctx.verified)
    requested = parse_complete(await read_small_body(ctx.receive, plan, ctx.settings.max_xml_body))
    etag, _ = await in_thread(
        multipart.complete, mount, ctx.settings, upload, requested, exclusive=create_only(ctx)
    )
    body = complete_upload(f"/{ctx.bucket}/{ctx.key}", ctx.bucket, ctx.key, etag)
    return Response.xml(body)


async def abort_upload(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    upload = await in_thread(multipart.load, mount, ctx.settings, ctx.query["uploadId"], ctx.key)
    await in_thread(multipart.abort, mount, ctx.settings, upload)
    return Response(204)


async def list_upload_parts(ctx: Context) -> Response:
    mount = ctx.mount()
    upload = await in_thread(multipart.load, mount, ctx.settings, ctx.query["uploadId"], ctx.key)
    try:
        marker = int(ctx.query.get("part-number-marker", "0"))
        max_parts = min(int(ctx.query.get("max-parts", "1000")), 1000)
    except ValueError:
        raise errors.InvalidArgument("part-number-marker and max-parts are numbers") from None
    parts = await in_thread(multipart.list_parts, mount, ctx.settings, upload)
    after = [p for p in parts if p.number > marker]
    page = after[:max_parts]
    body = list_parts(
        ctx.bucket,
        upload,
        page,
        marker=marker,
        max_parts=max_parts,
        is_truncated=len(after) > len(page),
        owner=ctx.settings.owner,
    )
    return Response.xml(body)


async def list_bucket_uploads(ctx: Context) -> Response:
    mount = ctx.mount()
    prefix = ctx.query.get("prefix", "")
    try:
        max_uploads = min(int(ctx.query.get("max-uploads", "1000")), 1000)
    except ValueError:
        raise errors.InvalidArgument("max-uploads is a number") from None
    uploads = await in_thread(multipart.list_uploads, mount, ctx.settings, prefix)
    page = uploads[:max_uploads]
    body = list_uploads(
        ctx.bucket,
        page,
        prefix=prefix,
        max_uploads=max_uploads,
        is_truncated=len(uploads) > len(page),
        owner=ctx.settings.owner,
    )
    return Response.xml(body)
