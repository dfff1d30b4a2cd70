"""The S3 listener: verify SigV4 with app credentials, then forward to the user's S3 server.

For each request: parse the signature (header or presigned query, :mod:`kubepie.s3.sigv4`;
boto3's default SigV2 presigned URLs too, through :class:`kubepie.s3.auth.SigV4Authenticator`),
find the credential by access key id, verify the signature with its secret and the current
time (15 minutes of skew, presigned expiry), re-resolve the owner's identity, check the
credential's prefix and read-only flag on the bucket/key path, and forward with the per-server
secret (the file server trusts the router and does not verify again). ``aws-chunked`` bodies
with signed chunks are verified *while they stream*: a chunk whose signature does not match
stops the upload before its end reaches the file server. Errors are S3 XML documents.
"""

from __future__ import annotations

import secrets

from starlette.types import Receive, Scope, Send

from kubepie.credentials.errors import UnknownAccessKey
from kubepie.credentials.models import ActiveCredential
from kubepie.router.access import AuthMethod, Principal, check
from kubepie.router.accounting import RequestRecord
from kubepie.router.context import RouterContext
from kubepie.router.errors import BadRequest
from kubepie.router.paths import is_write, s3_path
from kubepie.router.proxy import BodyCheck, Transfer
from kubepie.router.responses import close_if_body_announced, is_known, message_of, status_of
from kubepie.router.servers import s3_address
from kubepie.s3 import errors as s3_errors
from kubepie.s3 import sigv4, xml
from kubepie.s3.auth import SigV4Authenticator
from kubepie.s3.chunked import AwsChunkedDecoder

LISTENER = "s3"
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

        # SigV4 (header, presigned, streaming) and boto3's default SigV2 presigned URLs.
        verified = await SigV4Authenticator(lookup).authenticate(request)
        credential = found[0].credential
        await self.ctx.store.record_use(credential)
        identity = await self.ctx.authenticator.resolver.for_owner(credential.owner)
        principal = Principal(identity, AuthMethod.SIGV4, credential=credential)
        record.principal = principal
        query = dict(sigv4.query_pairs(request.raw_query))
        try:
            path = s3_path(path_text, query.get("prefix"))
        except BadRequest as exc:
            raise s3_errors.AccessDenied(f"the key leaves its bucket: {exc}") from exc
        record.mount, record.path = path.mount, path.text
        check(principal, path, ("modify",) if is_write(method) else ("read",))
        target = raw_path + (b"?" + scope["query_string"] if scope.get("query_string") else b"")
        await self.ctx.forward(
            identity,
            s3_address,
            method=method,
            target=target,
            headers=scope["headers"],
            receive=receive,
            send=send,
            transfer=transfer,
            body_check=chunk_checker(verified),
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
