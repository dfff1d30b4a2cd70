"""The S3 listener: verify SigV4 with app credentials, then forward to the user's S3 server.

For each request: parse the signature (header or presigned query, :mod:`kubepie.s3.sigv4`;
boto3's default SigV2 presigned URLs too, through :class:`kubepie.s3.auth.SigV4Authenticator`),
find the credential by access key id, verify the signature with its secret and the current
time (15 minutes of skew, presigned expiry), re-resolve the owner's identity, check the
credential's prefix and read-only flag on every object the request names
(:func:`kubepie.router.paths.s3_targets`: the bucket/key path, an ``x-amz-copy-source`` of
CopyObject and UploadPartCopy, each key of DeleteObjects, read from its body by
:mod:`kubepie.router.s3body`), and forward with the per-server secret (the file server
trusts the router and does not verify again). The headers forwarded are computed first
(:func:`kubepie.router.headers.prepare`) and every decision but the signature reads them.
``aws-chunked`` bodies with signed chunks are verified *while they stream*: a chunk whose
signature does not match stops the upload before its end reaches the file server. Errors are
S3 XML documents.
"""

from __future__ import annotations

import secrets

from starlette.types import Receive, Scope, Send

from kubepie.credentials.errors import UnknownAccessKey
from kubepie.credentials.models import ActiveCredential
from kubepie.fileserver.auth import CREATE_ONLY_HEADER
from kubepie.router.access import AuthMethod, Principal, authorize
from kubepie.router.accounting import RequestRecord
from kubepie.router.context import RouterContext
from kubepie.router.errors import BadRequest
from kubepie.router.headers import prepare
from kubepie.router.paths import (
    is_delete_objects,
    s3_path,
    s3_targets,
    split_segments,
)
from kubepie.router.proxy import BodyCheck, Transfer
from kubepie.router.responses import close_if_body_announced, is_known, message_of, status_of
from kubepie.router.s3body import check_presigned_copy, key_targets, read_delete_keys, replay
from kubepie.router.servers import s3_address
from kubepie.s3 import errors as s3_errors
from kubepie.s3 import sigv4, xml
from kubepie.s3.auth import SigV4Authenticator
from kubepie.s3.chunked import AwsChunkedDecoder

LISTENER = "s3"
CREATE_ONLY = CREATE_ONLY_HEADER.encode("latin-1")
_CODES = {400: "InvalidRequest", 401: "AccessDenied", 403: "AccessDenied", 404: "NoSuchBucket"}


def as_s3_error(exc: BaseException) -> s3_errors.S3Error:
    """Any error of the request path as the S3 error a client understands (pure)."""
    if isinstance(exc, s3_errors.S3Error):
        return exc
    if isinstance(exc, UnknownAccessKey):
        return s3_errors.InvalidAccessKeyId(
            "The AWS Access Key Id you provided does not exist in our records."
        )
    if is_known(exc):
        status = status_of(exc)
        error = s3_errors.S3Error(message_of(exc))
        error.status = 403 if status == 401 else status
        error.code = _CODES.get(status, "ServiceUnavailable" if status == 503 else "InternalError")
        return error
    message_of(exc)  # logs the unexpected error; the client learns nothing of it
    return s3_errors.S3Error("We encountered an internal error.")


def chunk_checker(verified: sigv4.Verified) -> BodyCheck | None:
    """A body check that verifies ``aws-chunked`` chunk signatures as the body streams."""
    if verified.chunks is None:
        return None
    decoder = AwsChunkedDecoder(verified.chunks)

    def check_piece(data: bytes) -> None:
        if data:
            decoder.feed(data)
        else:
            decoder.finish()

    return check_piece


class S3Front:
    def __init__(self, ctx: RouterContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.partition(b"?")[0]

        async def exchange(record: RequestRecord, transfer: Transfer) -> None:
            await self._handle(scope, receive, send, method, raw_path, record, transfer)

        async def answer_error(exc: Exception) -> int:
            close = close_if_body_announced(scope)
            return await self._error(send, as_s3_error(exc), scope["path"], method, close)

        await self.ctx.accounted(LISTENER, scope, exchange, answer_error)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        raw_path: bytes,
        record: RequestRecord,
        transfer: Transfer,
    ) -> None:
        try:
            path_text = raw_path.decode("ascii")
        except UnicodeDecodeError as exc:
            raise BadRequest("path is not ASCII (percent-encode it)") from exc
        forwarded = prepare(scope["headers"])  # what is forwarded is what is decided on
        request = sigv4.HttpRequest(
            method=method,
            raw_path=path_text,
            raw_query=scope.get("query_string", b"").decode("latin-1"),
            headers=sigv4.headers_from_asgi(scope["headers"]),
        )
        found: list[ActiveCredential] = []

        async def lookup(access_key: str) -> str:
            active = await self.ctx.store.authenticate(access_key)
            found.append(active)
            return active.secret_access_key

        # SigV4 (header, presigned, streaming) and boto3's default SigV2 presigned URLs. The
        # signature covers the headers as sent; every other decision reads ``forwarded``.
        verified = await SigV4Authenticator(lookup).authenticate(request)
        credential = found[0].credential
        await self.ctx.store.record_use(credential)
        identity = await self.ctx.authenticator.resolver.for_owner(credential.owner)
        principal = Principal(identity, AuthMethod.SIGV4, credential=credential)
        record.principal = principal
        query = dict(sigv4.query_pairs(request.raw_query))
        headers = forwarded.joined()
        try:
            path = s3_path(path_text, query.get("prefix"))
            on_object = len(split_segments(path_text)) > 1
        except BadRequest as exc:
            raise s3_errors.AccessDenied(f"the key leaves its bucket: {exc}") from exc
        record.mount, record.path = path.mount, path.text
        check_presigned_copy(query, headers)
        targets = s3_targets(method, path, on_object, query, headers)
        body_check = chunk_checker(verified)
        if is_delete_objects(method, on_object, query):
            body, keys = await read_delete_keys(receive, headers, verified)
            receive, body_check = replay(body, receive), None  # chunks verified while read
            targets += key_targets(path.segments[0], keys)
        replace = {CREATE_ONLY: b"1"} if authorize(principal, targets) else None
        target = raw_path + (b"?" + scope["query_string"] if scope.get("query_string") else b"")
        await self.ctx.forward(
            identity,
            s3_address,
            method=method,
            target=target,
            headers=forwarded,
            receive=receive,
            send=send,
            transfer=transfer,
            replace=replace,
            body_check=body_check,
        )

    async def _error(
        self,
        send: Send,
        exc: s3_errors.S3Error,
        resource: str,
        method: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> int:
        request_id = secrets.token_hex(8).upper()
        body = b"" if method == "HEAD" else xml.error(exc.code, exc.message, resource, request_id)
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/xml"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-amz-request-id", request_id.encode()),
                    *extra_headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return exc.status
