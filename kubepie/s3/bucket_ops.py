"""Bucket operations: ListBuckets, HeadBucket, GetBucketLocation, ListObjects v1/v2,
DeleteObjects and CreateBucket (which only acknowledges an existing mount)."""

from __future__ import annotations

import base64
import binascii

from kubepie.s3 import errors
from kubepie.s3.body import plan_body, read_small_body
from kubepie.s3.context import Context, Response, in_thread
from kubepie.s3.listing import list_page
from kubepie.s3.models import DeleteOutcome, ListQuery
from kubepie.s3.object_ops import create_only, delete_key
from kubepie.s3.xml import (
    delete_result,
    list_buckets,
    list_objects_v1,
    list_objects_v2,
    location,
    parse_delete,
)


async def list_all_buckets(ctx: Context) -> Response:
    def describe() -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for name, mount in ctx.mounts.items():
            try:
                found.append((name, mount.stat([]).st_mtime))
            except OSError:
                continue
        return found

    return Response.xml(list_buckets(await in_thread(describe), ctx.settings.owner))


async def head_bucket(ctx: Context) -> Response:
    mount = ctx.mount()
    try:
        await in_thread(mount.stat, [])
    except FileNotFoundError as exc:
        raise errors.NoSuchBucket(
            "The specified bucket does not exist", resource=ctx.bucket
        ) from exc
    except OSError as exc:
        raise errors.from_oserror(exc, ctx.bucket) from exc
    return Response(200, [("x-amz-bucket-region", ctx.settings.region)])


async def get_location(ctx: Context) -> Response:
    ctx.mount()
    return Response.xml(location(ctx.settings.region))


async def create_bucket(ctx: Context) -> Response:
    """Buckets are the configured mounts: "creating" one that exists succeeds, others do not."""
    if ctx.bucket not in ctx.mounts:
        raise errors.AccessDenied("buckets are the configured storage mounts", resource=ctx.bucket)
    return Response(200, [("location", f"/{ctx.bucket}")])


def _max_keys(ctx: Context, name: str = "max-keys") -> int:
    text = ctx.query.get(name)
    if text is None:
        return ctx.settings.max_keys
    try:
        value = int(text)
    except ValueError:
        raise errors.InvalidArgument(f"{name} is not a number") from None
    if value < 0:
        raise errors.InvalidArgument(f"{name} is negative")
    return min(value, ctx.settings.max_keys)


def _encoding(ctx: Context) -> bool:
    kind = ctx.query.get("encoding-type")
    if kind is None:
        return False
    if kind != "url":
        raise errors.InvalidArgument("encoding-type must be 'url'")
    return True


def _token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidArgument("The continuation token provided is incorrect") from exc


async def list_objects(ctx: Context) -> Response:
    mount = ctx.mount()
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    max_keys = _max_keys(ctx)
    url_encode = _encoding(ctx)
    if ctx.query.get("list-type") == "2":
        token = ctx.query.get("continuation-token")
        start_after = ctx.query.get("start-after", "")
        marker = _untoken(token) if token is not None else start_after
        query = ListQuery(prefix, delimiter, marker, max_keys)
        page = await in_thread(list_page, mount, query)
        owner = ctx.settings.owner if ctx.query.get("fetch-owner") == "true" else ""
        body = list_objects_v2(
            ctx.bucket,
            page,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            start_after=start_after,
            continuation_token=token,
            next_token=_token(page.last) if page.is_truncated else None,
            url_encode=url_encode,
            owner=owner,
        )
        return Response.xml(body)
    marker = ctx.query.get("marker", "")
    page = await in_thread(list_page, mount, ListQuery(prefix, delimiter, marker, max_keys))
    body = list_objects_v1(
        ctx.bucket,
        page,
        prefix=prefix,
        delimiter=delimiter,
        marker=marker,
        max_keys=max_keys,
        url_encode=url_encode,
        owner=ctx.settings.owner,
    )
    return Response.xml(body)


async def delete_objects(ctx: Context) -> Response:
    mount = ctx.writable_mount()
    plan = plan_body(ctx.request.headers, ctx.verified)
    body = await read_small_body(ctx.receive, plan, ctx.settings.max_xml_body)
    keys, quiet = parse_delete(body)
    keep_existing = create_only(ctx)

    def delete_all() -> list[DeleteOutcome]:
        outcomes: list[DeleteOutcome] = []
        for key in keys:
            try:
                delete_key(mount, key, keep_existing=keep_existing)
            except errors.S3Error as exc:
                outcomes.append(DeleteOutcome(key, exc.code, exc.message))
            else:
                outcomes.append(DeleteOutcome(key))
        return outcomes

    return Response.xml(delete_result(await in_thread(delete_all), quiet))
