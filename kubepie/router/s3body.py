"""Request bodies the S3 listener must read before it can decide: DeleteObjects' keys.

A DeleteObjects request names the objects it removes in its XML body, so the router reads that
body (bounded, decoded and checked as the file server would: ``aws-chunked`` chunk signatures,
``Content-MD5``), checks every key like the path of any other request, and forwards the very
bytes it read (:func:`replay`).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Message, Receive

from kubepie.router.paths import StoragePath, Target
from kubepie.s3 import errors, sigv4
from kubepie.s3.body import ClientDisconnected, plan_body, read_small_body
from kubepie.s3.sources import object_segments
from kubepie.s3.xml import parse_delete

#: Largest decoded DeleteObjects body the router reads (bytes): the file server's own default
#: limit (``S3Settings.max_xml_body``); 1000 keys of 1 KiB fit.
MAX_DELETE_BODY = 2 << 20
#: Largest body as sent (bytes), ``aws-chunked`` framing included.
MAX_RAW_BODY = 4 * MAX_DELETE_BODY


async def read_delete_keys(
    receive: Receive, headers: Mapping[str, str], verified: sigv4.Verified
) -> tuple[bytes, list[str]]:
    """The request body as received and the keys it names (1 to 1000, as S3 allows)."""
    raw = bytearray()

    async def recording() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            raw.extend(message.get("body", b""))
            if len(raw) > MAX_RAW_BODY:
                raise errors.InvalidRequest("the request body is too large")
        return message

    plan = plan_body(headers, verified)
    try:
        decoded = await read_small_body(recording, plan, MAX_DELETE_BODY)
    except ClientDisconnected as exc:
        raise errors.IncompleteBody("the client went away before the body ended") from exc
    keys, _ = parse_delete(decoded)
    return bytes(raw), keys


def key_targets(bucket: str, keys: list[str]) -> tuple[Target, ...]:
    """What DeleteObjects needs of each key: ``modify``. A key no object can have (``..``,
    an empty segment) is left out: the file server refuses it with the same rule
    (:func:`kubepie.s3.sources.object_segments`) in that key's own ``<Error>``."""
    targets: list[Target] = []
    for key in keys:
        try:
            segments = object_segments(bucket, key)
        except errors.S3Error:
            continue
        targets.append(Target(StoragePath(segments), ("modify",)))
    return tuple(targets)


def replay(body: bytes, receive: Receive) -> Receive:
    """An ASGI ``receive`` that hands over ``body`` whole, then what ``receive`` says (the
    client going away)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def check_presigned_copy(query: Mapping[str, str], headers: Mapping[str, str]) -> None:
    """A SigV4 presigned URL lets a client add ``x-amz-*`` headers the presigner never signed;
    ``x-amz-copy-source*`` would turn an upload into a copy of another object: refused unless
    signed."""
    signed = query.get("X-Amz-SignedHeaders")
    if signed is None:
        return
    names = {n.strip().lower() for n in signed.split(";")}
    unsigned = sorted(n for n in headers if n.startswith("x-amz-copy-source") and n not in names)
    if unsigned:
        raise errors.AccessDenied(f"a presigned URL must sign {', '.join(unsigned)}")
